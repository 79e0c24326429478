"""The bank test: many clients over HTTP against a local stack whose AWS calls fail
as AWS's do (tests/faults), then a count of the money through the API only.

Clients are the product's own (fundrouter_cli.client.ApiClient, which retries 429,
502-504, 409 order_busy and dropped connections, waiting the Retry-After it is given);
every HTTP answer they receive, retried or not, is recorded on the way in.
"""

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from fundrouter_cli.client import ApiClient
from fundrouter_cli.config import Settings
from fundrouter_cli.errors import ApiError, Unreachable
from fundrouter_cli.workload import parallel
from fundrouter_client.transport import Reply, urllib_transport

from tests.faults import LOG_KEY
from tests.support.factories import API_EXAMPLE, line_body
from tests.support.stack import LocalStack

CLIENTS: Final = 8
HOLDING: Final = {"MATCHED", "APPROVED"}
SAMPLES: Final = 5
# Listings taken again, at most, while the reconciler is still expiring holds.
STEADY_LISTINGS: Final = 10
# Lifecycles and their weights: what each order's business system does once matched.
SCRIPTS: Final = {
    "disburse": 3,  # APPROVED, DISBURSED (maybe in part), maybe REPAID (in part or in full)
    "disburse-or-cancel": 2,  # DISBURSED and CANCELLED at once: one wins
    "declined-twice": 2,  # two DECLINEDs with different event ids at once
    "same-event-twice": 2,  # one APPROVED sent twice at once: one effect, one answer
    "cancel": 1,
    "hold": 1,  # nothing: the order keeps its reservation
}


@dataclass
class Tally:
    """What the run saw: every HTTP status, the server errors that broke the
    contract, the checks that failed, the calls repeated after a lost connection."""

    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    repeated: int = 0
    relisted: int = 0  # listings taken again at the end (Bank.steady)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


def recording(tally: Tally) -> Callable[..., Reply]:
    """urllib_transport, noting each answer: a 5xx other than 503 with Retry-After
    breaks the contract (500 is only for a bug)."""

    def transport(
        method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        reply = urllib_transport(method, url, data, headers, timeout)
        with tally.lock:
            tally.statuses[str(reply.status)] += 1
            if reply.status >= 500 and not (reply.status == 503 and reply.retry_after):
                path = url.split("/v1/", 1)[-1]
                tally.server_errors.append(
                    f"{method} /v1/{path} {reply.status} {reply.body[:200]!r}"
                )
        return reply

    return transport


def api_client(stack: LocalStack, tally: Tally) -> ApiClient:
    settings = Settings(stack.settings, dict.fromkeys(stack.settings, "local stack"))
    return ApiClient(settings, transport=recording(tally), retries=8)


def again[T](tally: Tally, call: Callable[[], T], attempts: int = 6) -> T:
    """A call repeated while the connection fails outright or the answer is a 5xx the
    client gave up on (each already recorded): every call here is idempotent (orders
    by orderId, events by eventId, lines by lineId), so the run goes on to the count."""
    for attempt in range(attempts):
        try:
            return call()
        except (Unreachable, ApiError) as error:
            if attempt == attempts - 1 or (isinstance(error, ApiError) and error.status < 500):
                raise
            with tally.lock:
                tally.repeated += 1
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Bank:
    stack: LocalStack
    orders: int
    seed: int
    tally: Tally = field(default_factory=Tally)

    def __post_init__(self) -> None:
        self.client = api_client(self.stack, self.tally)
        self.rng = random.Random(self.seed)
        self.run = f"bank{self.seed}"
        self.lines: dict[str, dict[str, Any]] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.pairs = ThreadPoolExecutor(max_workers=CLIENTS, thread_name_prefix="pair")

    # ------------------------------------------------------------------ set-up
    def open_lines(self) -> None:
        """Three lines with room for about half of the orders: some find no line,
        and what cancels and declines free is claimed again. Line b holds for a
        minute only, so its holds expire during the run (the reconciler releases them
        together) and some disbursements arrive late, all under the same faults."""
        demand = self.orders * 105_000
        lines = (("a", 0.15, 10, 900), ("b", 0.15, 20, 60), ("c", 0.2, 30, 900))
        for name, share, priority, hold in lines:
            line_id = f"{self.run}-{name}"
            body = line_body(
                API_EXAMPLE,
                funderId=f"funder-{name}",
                limit=int(demand * share),
                dailyLimit=None,
                priority=priority,
                holdSeconds=hold,
            )
            again(self.tally, lambda b=body, i=line_id: self.client.put_line(i, b))
            self.lines[line_id] = body

    # ------------------------------------------------------------------ orders
    def body(self, index: int) -> dict[str, Any]:
        return {
            "orderId": f"{self.run}-{index:05d}",
            "amount": self.rng.randrange(10_000, 200_000),
            "currency": "CNY",
            "termMonths": self.rng.choice([3, 6, 12, 24]),
            "product": "installment",
            "customer": {"id": f"c-{index}", "region": "GD", "creditGrade": "AB"[index % 2]},
        }

    def submit(self, body: dict[str, Any]) -> None:
        """POST the order; one in five at once from two clients (a retried intake)."""
        calls = 2 if random.Random(f"{self.seed}/{body['orderId']}").random() < 0.2 else 1
        futures = [self.pairs.submit(self._submit_once, body) for _ in range(calls)]
        for future in futures:
            future.result()

    def _submit_once(self, body: dict[str, Any]) -> None:
        try:
            stored, _ = again(self.tally, lambda: self.client.submit_order(body))
        except ApiError as error:
            self.tally.violation(f"{body['orderId']}: intake answered {error.status} {error.code}")
            return
        if stored.get("orderId") != body["orderId"] or stored.get("amount") != body["amount"]:
            self.tally.violation(f"{body['orderId']}: intake answered {stored}")

    # ------------------------------------------------------------------ events
    def event(self, order_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """One event; the order's answer (200), or None when refused (409 with the
        order's state: counted). Anything else is a violation."""
        try:
            return again(self.tally, lambda: self.client.post_event(order_id, event))
        except ApiError as error:
            with self.tally.lock:
                self.tally.refused[f"{event['type']} {error.status} {error.code}"] += 1
            if error.status != 409:
                self.tally.violation(f"{order_id} {event}: {error.status} {error.code}")
            return None

    def at_once(self, order_id: str, *events: dict[str, Any]) -> list[dict[str, Any] | None]:
        futures = [self.pairs.submit(self.event, order_id, event) for event in events]
        return [future.result() for future in futures]

    def live(self, order_id: str) -> None:
        """Wait for the order's first decision, then play its business system's part."""
        order = self.decided(order_id)
        if order is None or order.get("status") != "MATCHED":
            return
        rng = random.Random(f"{self.seed}/life/{order_id}")
        script = rng.choices(list(SCRIPTS), list(SCRIPTS.values()))[0]
        amount = int(order["reserved"])
        eid = f"{order_id}.{order['version']}"
        line = {"lineId": order["lineId"]}  # as every business system sends it
        if script == "disburse":
            self.disburse(order_id, eid, amount, rng, line)
        elif script == "disburse-or-cancel":
            disbursed, cancelled = self.at_once(
                order_id,
                {"eventId": f"{eid}.d", "type": "DISBURSED", "amount": amount} | line,
                {"eventId": f"{eid}.c", "type": "CANCELLED"} | line,
            )
            # One wins; a DISBURSED after the CANCELLED is a late disbursement, still
            # recorded (the money was lent), so both may answer 200, never neither.
            if disbursed is None and cancelled is None:
                self.tally.violation(f"{order_id}: neither DISBURSED nor CANCELLED was taken")
        elif script == "declined-twice":
            self.at_once(
                order_id,
                {"eventId": f"{eid}.x", "type": "DECLINED", "reason": "first"} | line,
                {"eventId": f"{eid}.y", "type": "DECLINED", "reason": "second"} | line,
            )
        elif script == "same-event-twice":
            same = {"eventId": f"{eid}.a", "type": "APPROVED"} | line
            first, second = self.at_once(order_id, same, same)
            if first is None or first != second:
                self.tally.violation(f"{order_id}: one event answered {first} and {second}")
        elif script == "cancel":
            self.event(order_id, {"eventId": f"{eid}.c", "type": "CANCELLED"} | line)

    def disburse(
        self, order_id: str, eid: str, amount: int, rng: random.Random, line: dict[str, str]
    ) -> None:
        if self.event(order_id, {"eventId": f"{eid}.a", "type": "APPROVED"} | line) is None:
            return
        drawn = amount if rng.random() < 0.6 else amount * rng.randint(50, 95) // 100
        disbursed = {"eventId": f"{eid}.d", "type": "DISBURSED", "amount": drawn} | line
        if self.event(order_id, disbursed) is None or rng.random() < 0.4:
            return
        repaid = drawn if rng.random() < 0.5 else max(1, drawn // 3)
        self.event(order_id, {"eventId": f"{eid}.r", "type": "REPAID", "amount": repaid} | line)

    def decided(self, order_id: str, seconds: float = 150.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                order = again(self.tally, lambda: self.client.get_order(order_id))
            except ApiError as error:
                self.tally.violation(f"{order_id}: GET answered {error.status} {error.code}")
                return None
            if order.get("status") != "RECEIVED" or time.monotonic() > deadline:
                return order
            time.sleep(0.25)

    # ------------------------------------------------------------------ the run
    def play(self) -> None:
        self.open_lines()
        bodies = [self.body(index) for index in range(self.orders)]
        self.bodies = {b["orderId"]: b for b in bodies}
        self.rng.shuffle(bodies)

        def one(body: dict[str, Any]) -> None:
            self.submit(body)
            self.live(body["orderId"])

        parallel(bodies, one, CLIENTS, lambda _: None)
        self.pairs.shutdown()

    def settle(self, seconds: float = 180.0) -> list[dict[str, Any]]:
        """Every order of the tenant, once no order waits for a line (declined orders
        are routed again; the reconciler re-drives what the matcher dropped)."""
        deadline = time.monotonic() + seconds
        while True:
            mine = self.listing()
            if not any(o.get("status") == "RECEIVED" for o in mine):
                return mine
            if time.monotonic() > deadline:
                return mine
            time.sleep(3.0)

    def listing(self) -> list[dict[str, Any]]:
        listed = again(self.tally, lambda: list(self.client.iter_orders(max_pages=10**4)))
        return [o for o in listed if str(o.get("orderId")).startswith(f"{self.run}-")]

    def steady(
        self, listed: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The orders and the lines as at one point. Once settled only the reconciler
        moves capacity: it expires holds (line b's within a minute or two of the end),
        and one that commits between the listing and the lines' read leaves a hold
        listed that the line no longer counts. So a listing that disagrees with the
        lines read after it is taken again, and judged once no line's counters moved
        across it (nothing then committed on them while it was taken)."""
        lines = self.read_lines()
        for _ in range(STEADY_LISTINGS):
            if holdings(listed, self.lines) == counters(lines):
                break
            before, listed = lines, self.listing()
            self.tally.relisted += 1
            lines = self.read_lines()
            if counters(lines) == counters(before):
                break
        return listed, lines

    def read_lines(self) -> dict[str, dict[str, Any]]:
        return {
            line_id: again(self.tally, lambda i=line_id: self.client.get_line(i))
            for line_id in self.lines
        }

    def audit(self, listed: list[dict[str, Any]]) -> dict[str, Any]:
        """Through the API only: each order once, each line's counters the sums of its
        orders, no line over its limit."""
        listed, lines = self.steady(listed)
        seen = Counter(str(o["orderId"]) for o in listed)
        lost = sorted(set(self.bodies) - set(seen))
        doubled = sorted(i for i, n in seen.items() if n > 1)
        strangers = sorted(set(seen) - set(self.bodies))
        waiting = sorted(str(o["orderId"]) for o in listed if o.get("status") == "RECEIVED")
        for order_id in doubled + strangers:
            self.tally.violation(f"{order_id} listed {seen[order_id]} times (or never sent)")
        for order_id in waiting:
            self.tally.violation(f"{order_id} still RECEIVED at the end")
        over_limit = {str(o.get("lineId")) for o in listed if o.get("overLimit")}
        self.check_lines(self.sums(listed), lines, over_limit)
        for text in lost:
            self.tally.violation(f"{text} was accepted and is lost")
        return {"lost": lost, "lines": lines, "statuses": Counter(o["status"] for o in listed)}

    def sums(self, listed: list[dict[str, Any]]) -> dict[str, list[int]]:
        """Per line: the amounts its MATCHED and APPROVED orders reserve, and the
        outstanding principal of its DISBURSED orders; each order checked on the way."""
        for order in listed:
            status, line_id, order_id = order.get("status"), order.get("lineId"), order["orderId"]
            if order.get("amount") != self.bodies.get(str(order_id), {}).get("amount"):
                self.tally.violation(f"{order_id} amount {order.get('amount')} is not as sent")
            if status not in HOLDING | {"DISBURSED"}:
                continue
            if line_id not in self.lines:
                self.tally.violation(f"{order_id} {status} on unknown line {line_id}")
            elif status in HOLDING and order.get("reserved") != order["amount"]:
                self.tally.violation(f"{order_id} {status} reserves {order['reserved']}")
        return holdings(listed, self.lines)

    def check_lines(
        self,
        sums: dict[str, list[int]],
        lines: dict[str, dict[str, Any]],
        over_limit: set[str],
    ) -> None:
        """`over_limit`: lines holding a late disbursement they had no room for, which
        may stand above their limit by design (the order says overLimit)."""
        for line_id, shown in counters(lines).items():
            if shown != sums[line_id]:
                self.tally.violation(
                    f"line {line_id}: reserved, drawn {shown}; its orders hold {sums[line_id]}"
                )
        for line_id, line in lines.items():
            held = int(line["reserved"]) + int(line["drawn"])
            if held > int(line["limit"]) and line_id not in over_limit:
                self.tally.violation(f"line {line_id} over its limit: {line}")


def holdings(listed: list[dict[str, Any]], line_ids: Iterable[str]) -> dict[str, list[int]]:
    """Per line: what its MATCHED and APPROVED orders reserve, and the outstanding
    principal of its DISBURSED orders."""
    sums = {line_id: [0, 0] for line_id in line_ids}
    for order in listed:
        status, line_id = order.get("status"), order.get("lineId")
        if line_id in sums and status in HOLDING:
            sums[line_id][0] += int(order["amount"])
        elif line_id in sums and status == "DISBURSED":
            sums[line_id][1] += int(order["outstanding"])
    return sums


def counters(lines: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {line_id: [line.get("reserved"), line.get("drawn")] for line_id, line in lines.items()}


def injected_faults(stack: LocalStack) -> Counter[str]:
    """The faults the stack's functions injected, by kind, from their logs (one
    structured line each, tests/faults)."""
    logs = stack.client("logs")
    counts: Counter[str] = Counter()
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    for group in groups:
        kwargs: dict[str, Any] = {
            "logGroupName": group["logGroupName"],
            "filterPattern": f'"{LOG_KEY}"',
        }
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                message = event["message"]
                start = message.find("{")
                try:
                    record = json.loads(message[start:])
                except ValueError:
                    continue
                if LOG_KEY in record:
                    counts[record[LOG_KEY]] += 1
            if not page.get("nextToken") or not page.get("events"):
                break
            kwargs["nextToken"] = page["nextToken"]
    return counts


def report(bank: Bank, audit: dict[str, Any], faults: Counter[str], seconds: float) -> str:
    tally = bank.tally
    lines = "; ".join(
        f"{i} {line['reserved']:,}+{line['drawn']:,}/{line['limit']:,}"
        for i, line in audit["lines"].items()
    )
    rows = [
        f"orders: {bank.orders} submitted by {CLIENTS} clients in {seconds:.0f} s"
        f" (seed {bank.seed}); final statuses {dict(sorted(audit['statuses'].items()))}",
        f"lines (reserved+drawn/limit): {lines}",
        f"violations: {len(tally.violations)}",
        f"lost: {len(audit['lost'])}",
        f"5xx other than 503 with Retry-After: {len(tally.server_errors)}",
        f"injected faults by kind: {dict(sorted(faults.items()))} (total {sum(faults.values())})",
        f"HTTP answers by status: {dict(sorted(tally.statuses.items()))};"
        f" client retries {bank.client.stats['retries']}, calls repeated after a lost"
        f" connection {tally.repeated}; orders listed again at the end {tally.relisted}",
        f"events refused: {dict(sorted(tally.refused.items()))}",
    ]
    rows += [f"  violation: {v}" for v in tally.violations[:SAMPLES]]
    rows += [f"  server error: {e}" for e in tally.server_errors[:SAMPLES]]
    return "\n".join(rows)
