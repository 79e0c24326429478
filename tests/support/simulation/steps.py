"""The random steps: intake, the stream, order events, time, line changes."""

from datetime import datetime, timedelta
from typing import Any

from fundrouter.persistence.orders import REDRIVE_AFTER

from tests.support.simulation.driver import record_key
from tests.support.simulation.inputs import API_EVENTS, amount_around, random_request
from tests.support.simulation.model import (
    ALLOWED_FROM,
    HOLDING,
    LATE_FROM,
    LATE_GRACE,
    LIVE,
    RESERVING,
    TENANTS,
    ModelLine,
    ModelOrder,
    expect,
)


class Steps:
    """The random steps; each returns what it did, for the trace."""

    # ------------------------------------------------------------ steps: intake

    def _new_order_id(self, tenant: str) -> str:
        self.numbers += 1
        others = [
            oid for (t, oid) in self.orders if t != tenant and (tenant, oid) not in self.orders
        ]
        if others and self.rng.random() < 0.1:
            return self.rng.choice(others)  # another tenant's id: a different order
        return f"o-{self.numbers}"

    def _at_the_edge(self, tenant: str, body: dict[str, Any]) -> None:
        """Make `body` an order one of the tenant's lines may take, of an amount that
        just fits, or just misses, what is left on the line or on its day."""
        policy = self.policies[tenant]
        now = self.clock.now
        lines = [
            line
            for line in self.lines.values()
            if (policy is None or not policy["lineIds"] or line.line_id in policy["lineIds"])
            and line.config["status"] == "ACTIVE"
            and line.window_refusal(now) is None
        ]
        if not lines:
            return
        line = self.rng.choice(lines)
        config = line.config
        rooms = [line.available]
        if config.get("dailyLimit") is not None:
            rooms.append(config["dailyLimit"] - line.daily.get(line.day(now), 0))
        amount = self.rng.choice(rooms) + self.rng.choice([-1, 0, 0, 1])
        if config["minAmount"] <= amount <= config["maxAmount"]:
            body["amount"], body["currency"] = amount, config["currency"]
            body["termMonths"] = (config["terms"] or [body["termMonths"]])[0]
            body["product"] = (config["products"] or [body["product"]])[0]
            customer = body["customer"]
            customer["region"] = (config["regions"] or [customer.get("region", "GD")])[0]
            grade = customer.get("creditGrade", "A")
            customer["creditGrade"] = (config["creditGrades"] or [grade])[0]

    def step_submit(self, at_the_edge: bool = False) -> str:
        tenant = self.rng.choice(TENANTS)
        body = random_request(self.rng, self._new_order_id(tenant))
        if at_the_edge:
            self._at_the_edge(tenant, body)
        key = (tenant, body["orderId"])
        self.expected_inserts[key] = body
        status, answer = self.call_api(API_EVENTS.submit(tenant, body))
        expect(
            status == 202 or (self.faulted and status == 200),
            lambda: f"new order answered {status}: {answer}",
        )
        changes = self.absorb({"insert"})
        expect(changes.inserted == [key], lambda: f"intake wrote {changes.inserted}")
        self.expect_resource(answer, self.orders[key])
        return f"submit {key} {body['amount']} {body['product']}"

    def step_order_at_the_edge(self) -> str:
        """An order sized to just fit, or just miss, a line's room, matched at once,
        while the room is still what it was sized for."""
        submitted = self.step_submit(at_the_edge=True)
        key = next(reversed(self.orders))
        mine = [r for r in self.pending if record_key(r)[0] == key]
        if not mine:
            return submitted
        self.pending.remove(mine[0])
        self.deliver(mine)
        changes = self.absorb({"match", "unmatched"})
        expect([k for k, *_ in changes.moved] == [key], lambda: f"the edge order moved {changes}")
        return f"{submitted}, {changes.moved[0][2]} at once"

    def _some_order(self, statuses: frozenset[str] | None = None) -> ModelOrder | None:
        orders = [o for o in self.orders.values() if statuses is None or o.status in statuses]
        return self.rng.choice(orders) if orders else None

    def step_resubmit(self) -> str:
        order = self._some_order()
        if order is None:
            return self.step_submit()
        status, answer = self.call_api(API_EVENTS.submit(order.tenant, order.request))
        expect(status == 200, lambda: f"the same order again answered {status}: {answer}")
        self.expect_nothing_written()
        self.expect_resource(answer, order)
        return f"resubmit {order.key}"

    def step_conflicting_submit(self) -> str:
        order = self._some_order()
        if order is None:
            return self.step_submit()
        changed = order.request | {"amount": order.amount + 1}
        status, answer = self.call_api(API_EVENTS.submit(order.tenant, changed))
        expect(
            (status, answer.get("error", {}).get("code")) == (409, "order_conflict"),
            lambda: f"same id, other content answered {status}: {answer}",
        )
        self.expect_nothing_written()
        return f"conflicting submit {order.key}"

    def step_read(self) -> str:
        tenant = self.rng.choice(TENANTS)
        some = self._some_order()
        order_id = some.order_id if some is not None else "o-none"
        order = self.orders.get((tenant, order_id))
        status, answer = self.call_api(API_EVENTS.get_order(tenant, order_id))
        if order is None:
            expect(status == 404, lambda: f"another tenant's order answered {status}")
        else:
            expect(status == 200, lambda: f"GET answered {status}: {answer}")
            self.expect_resource(answer, order)
        self.expect_nothing_written()
        return f"read {tenant}/{order_id}"

    # ------------------------------------------------------------ steps: the stream

    def step_deliver(self) -> str:
        if not self.pending:
            return self.step_submit()
        count = min(len(self.pending), self.rng.randint(1, 3))
        batch = [self.pending.pop(self.rng.randrange(len(self.pending))) for _ in range(count)]
        if self.rng.random() < 0.1:
            batch.append(batch[0])  # delivered twice in one batch
        waiting = set()
        for key, version in map(record_key, batch):
            order = self.orders[key]
            if (order.version, order.status) == (version, "RECEIVED"):
                waiting.add(key)
        self.deliver(batch)
        self.delivered.extend(batch)
        changes = self.absorb({"match", "unmatched"})
        moved = {key for key, *_ in changes.moved}
        expect(moved <= {key for key, _ in map(record_key, batch)}, f"matched others: {moved}")
        expect(waiting <= moved, lambda: f"orders left waiting: {sorted(waiting - moved)}")
        return self.doing

    def step_redeliver(self) -> str:
        if not self.delivered:
            return self.step_deliver()
        record = self.rng.choice(self.delivered)
        key, version = record_key(record)
        stale = self.orders[key].version != version
        self.deliver([record])
        changes = self.absorb({"match", "unmatched"})
        expect(not stale or changes.empty, lambda: f"an old image of {key} changed {changes}")
        return f"re{self.doing}"

    def step_lose_record(self) -> str:
        if not self.pending:
            return self.step_advance()
        key, version = record_key(self.pending.pop(self.rng.randrange(len(self.pending))))
        return f"stream record of {key} v{version} lost"

    # ------------------------------------------------------------ steps: order events

    def _new_event(self, order: ModelOrder) -> dict[str, Any]:
        valid = [kind for kind, sources in ALLOWED_FROM.items() if order.status in sources]
        if self._late(order):
            valid.append("DISBURSED")
        kind = self.rng.choice(valid if valid and self.rng.random() < 0.85 else list(ALLOWED_FROM))
        self.numbers += 1
        body: dict[str, Any] = {"eventId": f"e-{self.numbers}", "type": kind}
        if kind == "DISBURSED":
            body["amount"] = amount_around(self.rng, order.reserved or order.amount)
        elif kind == "REPAID":
            body["amount"] = amount_around(self.rng, order.outstanding)
        elif self.rng.random() < 0.03:
            body["amount"] = 100  # only DISBURSED and REPAID carry one
        if self.rng.random() < 0.2:
            body["reason"] = self.rng.choice(["customer request", "risk check", ""])
        return body

    def _late(self, order: ModelOrder) -> bool:
        """Whether DISBURSED is still taken from the order's EXPIRED or CANCELLED, at
        the service's next clock reading (a second on)."""
        age = self.clock.now + timedelta(seconds=1) - order.updated_at
        return order.status in LATE_FROM and order.line_id is not None and age <= LATE_GRACE

    def _predicted(self, order: ModelOrder, body: dict[str, Any]) -> tuple[int, str | None]:
        kind, amount = body["type"], body.get("amount")
        if (kind in {"DISBURSED", "REPAID"}) != (amount is not None):
            return 422, "validation_failed"
        late = kind == "DISBURSED" and order.status in LATE_FROM
        allowed = self._late(order) if late else order.status in ALLOWED_FROM[kind]
        if not allowed:
            return 409, "transition_not_allowed"
        if late:
            return (422, "amount_exceeds_held") if amount > order.amount else (200, None)
        held = {"DISBURSED": order.reserved, "REPAID": order.outstanding}.get(kind)
        if held is not None and amount > held:
            return 422, "amount_exceeds_held"
        return 200, None

    def step_event(self) -> str:
        roll = self.rng.random()
        wanted = (
            HOLDING if roll < 0.7 else LATE_FROM if roll < 0.75 else LIVE if roll < 0.9 else None
        )
        order = self._some_order(wanted) or self._some_order()
        if order is None or self.rng.random() < 0.02:
            tenant = self.rng.choice(TENANTS)
            event = {"eventId": "e-nobody", "type": "APPROVED"}
            status, answer = self.call_api(API_EVENTS.order_event(tenant, "o-nobody", event))
            expect(status == 404, lambda: f"an event for no order answered {status}")
            self.expect_nothing_written()
            return "event for an unknown order"
        body = self._new_event(order)
        key = (order.tenant, order.order_id, body["eventId"])
        self.sent_events[key] = body
        predicted = self._predicted(order, body)
        status, answer = self.call_api(API_EVENTS.order_event(order.tenant, order.order_id, body))
        if predicted[0] != 200:
            code = answer.get("error", {}).get("code")
            expect(
                (status, code) == predicted, lambda: f"expected {predicted}, got {status} {answer}"
            )
            self.expect_nothing_written()
            return f"{body} on {order.key} refused: {code}"
        expect(status == 200, lambda: f"expected 200, got {status} {answer}")
        changes = self.absorb({"event"})
        expect(
            [(k, c.event, c.amount) for k, _, _, c in changes.moved]
            == [(order.key, body["type"], body.get("amount"))]
            and changes.events == [key],
            lambda: f"the event wrote {changes}",
        )
        expect(answer["version"] == self.recorded[key]["version"], "the record's version differs")
        self.expect_resource(answer, order)
        return f"{body} on {order.key}: {order.status}"

    def step_repeat_event(self) -> str:
        if not self.recorded:
            return self.step_event()
        key, recorded = self.rng.choice(list(self.recorded.items()))
        status, answer = self.call_api(API_EVENTS.order_event(key[0], key[1], recorded["body"]))
        expect(status == 200, lambda: f"a repeated event answered {status} {answer}")
        self.expect_nothing_written()
        self.expect_resource(answer, self.orders[key[:2]])  # the order as it stands
        return f"repeat {recorded['body']} on {key[:2]}"

    def step_conflicting_event(self) -> str:
        if not self.recorded:
            return self.step_event()
        key, recorded = self.rng.choice(list(self.recorded.items()))
        other = "CANCELLED" if recorded["body"]["type"] != "CANCELLED" else "APPROVED"
        body = {"eventId": key[2], "type": other}
        status, answer = self.call_api(API_EVENTS.order_event(key[0], key[1], body))
        expect(
            (status, answer.get("error", {}).get("code")) == (409, "event_conflict"),
            lambda: f"an event id reused for other content answered {status} {answer}",
        )
        self.expect_nothing_written()
        return f"reuse {key[2]} on {key[:2]} for {other}"

    # ------------------------------------------------------------ steps: time, lines

    def step_advance(self) -> str:
        seconds = self.rng.choice([5, 30, 61, 300, 1200])
        self.clock.advance(seconds)
        return f"{seconds}s pass"

    def step_reconcile(self) -> str:
        seconds = self.rng.choice([1, 30, 61, 200, 600, 1800, 3600, 4 * 3600])
        self.clock.advance(seconds)
        run_at, summary = self.reconcile()
        changes = self.absorb({"expire", "match", "unmatched"})
        expect(summary["drift"] == [], lambda: f"the audit found drift: {summary['drift']}")
        expired = {key[1] for key, _, after, _ in changes.moved if after == "EXPIRED"}
        expect(set(summary["expired"]) <= expired, lambda: f"reported expired: {summary}")
        for order in self.orders.values():
            self._expect_reconciled(order, run_at)
        return f"{seconds}s pass, reconciler: {summary['expired']} {summary['redriven']}"

    @staticmethod
    def _expect_reconciled(order: ModelOrder, run_at: datetime) -> None:
        """A run leaves no hold past its time and no order waiting past REDRIVE_AFTER."""
        if order.status in RESERVING:
            assert order.hold_expires_at is not None
            expect(order.hold_expires_at > run_at, lambda: f"{order.key}'s hold outlived it")
        if order.status == "RECEIVED":
            expect(
                order.updated_at + REDRIVE_AFTER > run_at,
                lambda: f"{order.key} still waits after the reconciler ran",
            )

    def _line_change(self, line: ModelLine) -> dict[str, Any]:
        limit, held = int(line.config["limit"]), line.held
        options: list[dict[str, Any]] = [
            {"limit": limit + self.rng.choice([10_000, 50_000, 100_000])},
            {"limit": max(1_000, limit - self.rng.choice([10_000, 30_000, 60_000]))},
            {"status": "PAUSED"},
            {"status": "ACTIVE"},
            {"status": "ACTIVE"},
            {"status": "ACTIVE"},
            {"dailyLimit": self.rng.choice([None, 20_000, 60_000])},
        ]
        if held > 1:
            options.append({"limit": self.rng.randint(max(1, held // 2), held - 1)})
        return self.rng.choice(options)

    def step_reconfigure(self) -> str:
        line = self.rng.choice(list(self.lines.values()))
        change = self._line_change(line)
        status, answer = self.call_api(API_EVENTS.patch_line(line.line_id, change))
        expect(status == 200, lambda: f"PATCH answered {status}: {answer}")
        self.expect_nothing_written()
        line.config |= change
        limit = int(line.config["limit"])
        if line.held > limit:
            line.over_limit_by_operator = True
        shown = {k: answer[k] for k in ("limit", "dailyLimit", "status", "reserved", "drawn")}
        wanted = {k: line.config[k] for k in ("limit", "dailyLimit", "status")}
        expect(
            shown == wanted | {"reserved": line.reserved, "drawn": line.drawn},
            lambda: f"PATCH shows {shown}, the model has {wanted} {line}",
        )
        warned = any(w["code"] == "limit_below_held" for w in answer["warnings"])
        expect(warned == (line.held > limit), lambda: f"warnings {answer['warnings']}")
        return f"patch {line.line_id} {change} (held {line.held})"
