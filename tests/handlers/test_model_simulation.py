"""A seeded model simulation of the whole order flow, on moto, with the real code.

Each sequence starts from fresh tables built from template.yaml, 2 to 4 random lending
lines (limits, daily caps, amount ranges, hold times, product and grade rules, time
zones) and three tenants with random routing policies. Then it takes random steps:

- orders submitted through the API handler, again with the same content (a retried
  intake) and again with different content (409);
- the Orders stream, read from moto's own stream shard and filtered as the template's
  MatcherFunction filter says, delivered to the matcher handler in small batches,
  sometimes with a duplicate, sometimes lost (the reconciler must then re-drive the
  order), and old images redelivered after the order moved on;
- order events through the API handler: valid ones with random partial amounts,
  ones the state does not allow, amounts above what is held, events for unknown
  orders, an earlier eventId again (same answer, nothing written) and an earlier
  eventId with other content (409);
- time passing, past holds, with and without the scheduled reconciler;
- lines reconfigured through the API (limit lowered, even below what is held, or
  raised, paused, resumed, daily cap changed);
- and faults (tests/faults, on the client's botocore event hooks) where a write
  commits but its caller does not learn it: the response is lost (InternalServerError,
  a read timeout, a closed connection), or no connection is made at all, and the
  caller retries (the API client resends, Lambda redelivers the stream batch, the
  schedule runs the reconciler again), or the SDK itself resends the committed write.

A model follows every change the Orders stream shows (old and new image of every
write, in commit order) and refuses any that the design does not allow. After every
step the stored items are compared with the model and with docs/design.md's invariant:

- each line's `reserved` is the sum of its MATCHED and APPROVED orders' reservations,
  its `drawn` the sum of its DISBURSED orders' outstanding principal, `held` is
  their sum, and `reserved + drawn <= limit` unless an operator lowered the limit
  below it (tracked until it fits again);
- each order holds at most one line, and only in MATCHED, APPROVED, DISBURSED;
- a claim fits the line's limit, daily cap (on the claim's local day), amount range,
  rules and status at claim time; with freshly read lines, the matcher's choice is
  the line the tenant's policy ranks first, and UNMATCHED only when no line fits;
- statuses move only along docs/design.md's arrows, one version at a time, and history
  only grows: the order item keeps its newest entries (the bound made small here, so
  entries move out often) and each older one is an item of its own, exactly once;
- no accepted order is lost, and nothing is stored that the model does not expect;
- money is conserved per order: everything ever reserved for it is still reserved,
  outstanding, repaid, or released, as its history says;
- holds past their time are expired, and waiting orders re-driven, by the next
  reconciler run, whose audit never reports drift.

Every answer is checked too: 202/200/409/404/422 as docs/api.md says, a 500 or a failed
stream record only ever right after an injected fault, a repeated event answered
with the order as it stands (its event record keeps the version the event made).

A failure names its seed and step and the steps before it; FUNDROUTER_SIM_SEED=<seed>
replays that sequence alone. FUNDROUTER_SIM_STEPS sets the total number of steps
(default 10,000), FUNDROUTER_SIM_STEPS_PER_SEED the length of one sequence, and
FUNDROUTER_SIM_FIRST_SEED where the seeds start, to explore new ones.

The service code runs as it is. moto is made cheaper in three places (see
speed_up_moto), and a test below runs one sequence with and without that and
finds the same steps and the same stored items. The bug it found (a daily cap
lowered under a warm matcher) has its own regression test at the end of the module.
"""

import contextlib
import copy
import json
import logging
import math
import os
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Final
from zoneinfo import ZoneInfo

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore import UNSIGNED
from botocore.config import Config
from fundrouter.domain import orders as domain_orders
from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import HistoryEntry, Order, OrderRequest
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.codec import from_item
from fundrouter.persistence.history import HIST_PREFIX
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import (
    REDRIVE_AFTER,
    DynamoOrderIndexes,
    DynamoOrderRepository,
    order_from_item,
    order_ids,
)
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.lines import LineService
from fundrouter.service.matching import LineCatalog, MatchOutcome, MatchReport, MatchService
from fundrouter.service.orders import OrderService
from fundrouter.service.reconciling import Reconciler
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from tests.faults import ArmedPlan, FaultInjector
from tests.support.aws import FakeLambdaContext
from tests.support.events import load_event
from tests.support.handlers import handler_module
from tests.support.moto_speed import speed_up_moto
from tests.support.template import create_table_kwargs, resources
from tests.support.world import NO_WAIT, Clock, api

matcher_handler = handler_module("matcher", "matcher_handler")
reconciler_handler = handler_module("reconciler", "reconciler_handler")

TOTAL_STEPS: Final = int(os.environ.get("FUNDROUTER_SIM_STEPS", "10000"))
STEPS_PER_SEED: Final = int(os.environ.get("FUNDROUTER_SIM_STEPS_PER_SEED", "250"))
FIRST_SEED: Final = int(os.environ.get("FUNDROUTER_SIM_FIRST_SEED", "0"))
ONE_SEED: Final = os.environ.get("FUNDROUTER_SIM_SEED")
SHORTCUT_SEED: Final = 3
SHORTCUT_STEPS: Final = 100
REPLAY: Final = (
    "FUNDROUTER_SIM_SEED={seed} .venv/bin/pytest tests/handlers/test_model_simulation.py -q"
)

START: Final = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
TENANTS: Final = ("tenant-a", "tenant-b", "tenant-c")
HOLDING: Final = frozenset({"MATCHED", "APPROVED", "DISBURSED"})
RESERVING: Final = frozenset({"MATCHED", "APPROVED"})
LIVE: Final = frozenset({"RECEIVED", "MATCHED", "APPROVED", "DISBURSED"})
# docs/design.md's arrows, plus MATCHED/APPROVED -> UNMATCHED (a decline with no line
# left), which this implementation takes in two writes, through RECEIVED.
ARROWS: Final[dict[str, frozenset[str]]] = {
    "RECEIVED": frozenset({"MATCHED", "UNMATCHED", "CANCELLED"}),
    "MATCHED": frozenset(
        {"APPROVED", "RECEIVED", "UNMATCHED", "CANCELLED", "EXPIRED", "DISBURSED"}
    ),
    "APPROVED": frozenset({"RECEIVED", "UNMATCHED", "CANCELLED", "EXPIRED", "DISBURSED"}),
    "DISBURSED": frozenset({"DISBURSED", "REPAID"}),
    "UNMATCHED": frozenset(),
    # A late disbursement: money lent just before the hold was given back.
    "CANCELLED": frozenset({"DISBURSED"}),
    "EXPIRED": frozenset({"DISBURSED"}),
    "REPAID": frozenset(),
}
# docs/api.md's order events table: allowed from, and the status each leads to.
ALLOWED_FROM: Final[dict[str, frozenset[str]]] = {
    "APPROVED": frozenset({"MATCHED"}),
    "DECLINED": frozenset({"MATCHED", "APPROVED"}),
    "CANCELLED": frozenset({"RECEIVED", "MATCHED", "APPROVED"}),
    "DISBURSED": frozenset({"MATCHED", "APPROVED"}),
    "REPAID": frozenset({"DISBURSED"}),
}
# DISBURSED is also taken this long after EXPIRED or CANCELLED, for an order that held
# a line. Half a second off the service's default, so no step lands on the boundary.
LATE_FROM: Final = frozenset({"EXPIRED", "CANCELLED"})
LATE_GRACE: Final = timedelta(seconds=3599, milliseconds=500)
LEADS_TO: Final[dict[str, frozenset[str]]] = {
    "APPROVED": frozenset({"APPROVED"}),
    "DECLINED": frozenset({"RECEIVED"}),
    "CANCELLED": frozenset({"CANCELLED"}),
    "DISBURSED": frozenset({"DISBURSED"}),
    "REPAID": frozenset({"DISBURSED", "REPAID"}),
}
API_ATTEMPTS: Final = 4
FAULT_RATE: Final = 0.15
# tests/faults: one write is followed by a fault the caller sees. After its commit,
# the answer is lost (a 500 InternalServerError, which DynamoDB documents as "may have
# succeeded", a read timeout, a closed connection) or the SDK sends the same request
# again and the caller gets the second answer; or no connection is made at all.
FAULT_KINDS: Final = (
    "error-after-commit",
    "timeout-after-commit",
    "reset-after-commit",
    "connect-error",
    "resend-after-commit",
)


class SimulationFailure(AssertionError):
    pass


def expect(condition: object, message: str | Callable[[], str]) -> None:
    if not condition:
        raise SimulationFailure(message() if callable(message) else message)


# ---------------------------------------------------------------- moto's tables


def moto_table(client: Any, name: str) -> Any:
    """moto's table object. Looked up each time: a cancelled transaction puts back a
    copy of the table, so an old reference goes stale."""
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][client.meta.region_name].get_table(name)


def drain_stream(client: Any, table: str) -> list[dict[str, Any]]:
    """Take the records written since the last call off the table's stream shard, in
    commit order. Read in-process (GetRecords would serialize every image), and taken
    off because moto keeps the shard forever and copies it with the table on every
    transaction."""
    shard = moto_table(client, table).stream_shard
    records = [record.to_json() for record in shard.items]
    shard.starting_sequence_number += len(shard.items)
    shard.items = []
    return records


def stored_items(client: Any, table: str) -> Iterator[Any]:
    """Every item of a moto table (with a sort key), in no particular order."""
    for bucket in moto_table(client, table).items.values():
        yield from bucket.values()


def plain(value: Any) -> Any:
    """A scalar attribute of a moto item as a Python value."""
    if value is None:
        return None
    return int(value.value) if value.type == "N" else value.value


def matcher_filter() -> dict[str, Any]:
    """The MatcherFunction's stream filter, from template.yaml."""
    for event in resources()["MatcherFunction"]["Properties"]["Events"].values():
        filters = event["Properties"].get("FilterCriteria", {}).get("Filters", [])
        if filters:
            pattern: dict[str, Any] = json.loads(filters[0]["Pattern"])
            return pattern
    raise AssertionError("MatcherFunction has no stream filter")  # pragma: no cover


def matches_filter(pattern: Any, value: Any) -> bool:
    """EventBridge-style matching, for the exact-value patterns the template uses."""
    if isinstance(pattern, list):
        return value in pattern
    return isinstance(value, dict) and all(
        key in value and matches_filter(inner, value[key]) for key, inner in pattern.items()
    )


def lambda_record(record: dict[str, Any], region: str) -> dict[str, Any]:
    """A moto stream record as Lambda hands it to the function."""
    stream = record["dynamodb"]
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            "ApproximateCreationDateTime": 1795514400,
            "Keys": stream["Keys"],
            "NewImage": stream["NewImage"],
            "SequenceNumber": stream["SequenceNumber"],
            "SizeBytes": stream["SizeBytes"],
            "StreamViewType": stream["StreamViewType"],
        }
        | ({"OldImage": stream["OldImage"]} if "OldImage" in stream else {}),
        "eventSourceARN": f"arn:aws:dynamodb:{region}:123456789012:table/orders/stream/x",
    }


# ---------------------------------------------------------------- observed matcher


class WatchedCatalog(LineCatalog):
    """The real catalog, noting whether each ranking read the lines just now."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[bool] = []

    def lines(self) -> Any:
        records, fresh = super().lines()
        self.reads.append(fresh)
        return records, fresh


class WatchedMatcher(MatchService):
    """The real matcher; for each order version it was asked to match, whether its
    first attempt ranked freshly read lines. Only then is the choice exactly the
    model's; with cached configuration (seconds old, as designed) it is only legal."""

    def __init__(self, catalog: WatchedCatalog, *args: Any, log: dict[Any, bool]) -> None:
        super().__init__(catalog, *args)
        self._watched = catalog
        self._log = log

    def match(self, order: Order) -> MatchReport:
        before = len(self._watched.reads)
        try:
            return super().match(order)
        finally:
            if len(self._watched.reads) > before:
                key = (order.tenant_id, order.order_id, order.version)
                self._log.setdefault(key, self._watched.reads[before])


# ---------------------------------------------------------------- the model


@dataclass
class ModelLine:
    line_id: str
    config: dict[str, Any]
    reserved: int = 0
    drawn: int = 0
    matched_total: int = 0
    daily: dict[str, int] = field(default_factory=dict)
    # An operator lowered the limit below what was held; cleared once it fits again.
    over_limit_by_operator: bool = False
    # A late disbursement was drawn beyond the limit; cleared once it fits again.
    over_limit_by_late_draw: bool = False

    @property
    def held(self) -> int:
        return self.reserved + self.drawn

    @property
    def available(self) -> int:
        return int(self.config["limit"]) - self.held

    def day(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.config["timezone"])).date().isoformat()

    def window_refusal(self, moment: datetime) -> str | None:
        """Why the line takes no claim at `moment`: outside [activeFrom, activeUntil)."""
        opens, closes = self.config.get("activeFrom"), self.config.get("activeUntil")
        if opens is not None and moment < datetime.fromisoformat(opens):
            return f"opens {opens}"
        if closes is not None and moment >= datetime.fromisoformat(closes):
            return f"closed {closes}"
        return None

    def daily_refusal(self, day: str, amount: int) -> str | None:
        cap = self.config.get("dailyLimit")
        if cap is not None and self.daily.get(day, 0) + amount > cap:
            return f"daily cap {cap} on {day}: used {self.daily.get(day, 0)} + {amount}"
        return None


@dataclass
class Ledger:
    """Where everything ever reserved for an order went."""

    claimed: int = 0
    released: int = 0
    disbursed: int = 0
    repaid: int = 0


@dataclass
class ModelOrder:
    tenant: str
    order_id: str
    request: dict[str, Any]
    updated_at: datetime
    status: str = "RECEIVED"
    version: int = 1
    line_id: str | None = None
    reserved: int = 0
    outstanding: int = 0
    claim_day: str | None = None
    hold_expires_at: datetime | None = None
    declined: list[str] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    # Every history entry, as the stream showed them: the order item keeps the newest.
    history: list[HistoryEntry] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.order_id)

    @property
    def amount(self) -> int:
        return int(self.request["amount"])


@dataclass
class Changes:
    """What one step wrote to the Orders table, as the stream showed it."""

    inserted: list[tuple[str, str]] = field(default_factory=list)
    moved: list[tuple[tuple[str, str], str, str, HistoryEntry]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    spilled: list[tuple[tuple[str, str], str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.inserted or self.moved or self.events or self.spilled)


def static_refusal(
    line: ModelLine, order: ModelOrder, policy: dict[str, Any] | None, declined: list[str]
) -> str | None:
    """Why `line` may not take `order` whatever its counters (docs/design.md, docs/api.md)."""
    config, request = line.config, order.request
    customer = request["customer"]
    checks = (
        (policy is None or not policy["lineIds"] or line.line_id in policy["lineIds"], "policy"),
        (line.line_id not in declined, "declined it before"),
        (config["status"] == "ACTIVE", "paused"),
        (request["currency"] == config["currency"], "currency"),
        (config["minAmount"] <= request["amount"] <= config["maxAmount"], "amount range"),
        (not config["terms"] or request["termMonths"] in config["terms"], "term"),
        (not config["products"] or request["product"] in config["products"], "product"),
        (not config["regions"] or customer.get("region") in config["regions"], "region"),
        (
            not config["creditGrades"] or customer.get("creditGrade") in config["creditGrades"],
            "credit grade",
        ),
    )
    return next((reason for ok, reason in checks if not ok), None)


def ranked(lines: list[ModelLine], strategy: str) -> list[ModelLine]:
    """docs/api.md's strategies; ties go to the lower priority number, then the lineId."""

    def weighted(line: ModelLine) -> tuple[Any, ...]:
        total_weight = sum(other.config["weight"] for other in lines)
        total_volume = sum(other.matched_total for other in lines)
        deficit = Fraction(0)
        if line.config["weight"]:
            deficit = Fraction(line.config["weight"], total_weight)
            if total_volume:
                deficit -= Fraction(line.matched_total, total_volume)
        return (line.config["weight"] == 0, -deficit)

    keys: dict[str, Callable[[ModelLine], tuple[Any, ...]]] = {
        "PRIORITY": lambda _: (),
        "LOWEST_COST": lambda line: (line.config["aprBps"],),
        "BEST_FIT": lambda line: (line.available,),
        "WEIGHTED": weighted,
    }
    key = keys[strategy]
    return sorted(lines, key=lambda line: (*key(line), line.config["priority"], line.line_id))


# ---------------------------------------------------------------- random inputs


def random_window(rng: random.Random) -> tuple[str | None, str | None]:
    """Mostly always open; sometimes opening late, closing early, or both."""
    if rng.random() < 0.8:
        return None, None
    opens = START + timedelta(hours=rng.randrange(0, 30))
    closes = opens + timedelta(hours=rng.choice([6, 24, 48]))
    opening, closing = opens.strftime("%Y-%m-%dT%H:%M:%SZ"), closes.strftime("%Y-%m-%dT%H:%M:%SZ")
    return rng.choice([(opening, None), (None, closing), (opening, closing)])


def random_line(rng: random.Random, index: int) -> dict[str, Any]:
    limit = rng.choice([40_000, 80_000, 150_000, 300_000])
    active_from, active_until = random_window(rng)
    return {
        "funderId": f"funder-{index % 3}",
        "name": f"line {index}",
        "currency": "CNY" if rng.random() < 0.9 else "USD",
        "limit": limit,
        "dailyLimit": rng.choice([None, None, limit // 2, limit // 4]),
        "minAmount": rng.choice([100, 500, 2_000]),
        "maxAmount": rng.choice([30_000, 60_000, 100_000]),
        "terms": rng.choice([[], [], [], [6, 12, 24]]),
        "products": rng.choice([[], [], ["installment"], ["installment", "loan"]]),
        "regions": rng.choice([[], [], [], ["GD", "SH"]]),
        "creditGrades": rng.choice([[], [], [], ["A", "B"]]),
        "aprBps": rng.choice([900, 1200, 1500]),
        "priority": rng.randint(1, 4),
        "weight": rng.choice([0, 20, 50]),
        "holdSeconds": rng.choice([60, 600, 1800, 3600, 4 * 3600]),
        "activeFrom": active_from,
        "activeUntil": active_until,
        "status": rng.choice(["ACTIVE"] * 5 + ["PAUSED"]),
        "timezone": rng.choice(["Asia/Shanghai", "Asia/Shanghai", "UTC", "America/New_York"]),
    }


def random_request(rng: random.Random, order_id: str) -> dict[str, Any]:
    customer: dict[str, Any] = {"id": f"c-{rng.randrange(1000)}"}
    if rng.random() < 0.95:
        customer["region"] = rng.choice(["GD", "GD", "SH", "BJ"])
    if rng.random() < 0.95:
        customer["creditGrade"] = rng.choice(["A", "B", "B", "C"])
    return {
        "orderId": order_id,
        "amount": int(10 ** rng.uniform(2.5, 5.0)),
        "currency": "CNY" if rng.random() < 0.97 else "USD",
        "termMonths": rng.choice([3, 6, 12, 12, 24]),
        "product": rng.choice(["installment", "installment", "installment", "loan", "bnpl"]),
        "customer": customer,
        "metadata": rng.choice([{}, {"channel": "app"}]),
    }


def amount_around(rng: random.Random, held: int) -> int:
    """Mostly a valid part of `held`, sometimes all of it, sometimes too much."""
    options = [held + rng.randint(1, 5_000)]
    if held > 0:
        options += [held, held, rng.randint(1, held), rng.randint(1, held)]
    return rng.choice(options)


# ---------------------------------------------------------------- API events


class Requests:
    """API Gateway events for the API handler, from the samples in events/api."""

    def __init__(self) -> None:
        self._samples = {
            name: load_event(f"api/{name}.json")
            for name in ("submit_order", "order_event_approved", "get_order", "patch_line_pause")
        }

    def _event(
        self, sample: str, path: str, params: dict[str, str] | None, body: Any, caller: str | None
    ) -> dict[str, Any]:
        event = copy.deepcopy(self._samples[sample])
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        if params is not None:
            event["pathParameters"] = params
        event["body"] = None if body is None else json.dumps(body)
        if caller is not None:
            claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
            claims["client_id"] = claims["sub"] = caller
        return event

    def submit(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._event("submit_order", "/v1/orders", None, body, tenant)

    def order_event(self, tenant: str, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/orders/{order_id}/events"
        return self._event("order_event_approved", path, {"orderId": order_id}, body, tenant)

    def get_order(self, tenant: str, order_id: str) -> dict[str, Any]:
        path = f"/v1/orders/{order_id}"
        return self._event("get_order", path, {"orderId": order_id}, None, tenant)

    def patch_line(self, line_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/lines/{line_id}"
        return self._event("patch_line_pause", path, {"lineId": line_id}, changes, None)


REQUESTS: Final = Requests()


# ---------------------------------------------------------------- the simulation

STEPS: Final = (
    ("submit", 14),
    ("order_at_the_edge", 3),
    ("resubmit", 3),
    ("conflicting_submit", 2),
    ("deliver", 18),
    ("redeliver", 4),
    ("lose_record", 2),
    ("event", 26),
    ("repeat_event", 5),
    ("conflicting_event", 2),
    ("reconcile", 3),
    ("advance", 4),
    ("reconfigure", 4),
    ("read", 3),
)
STEP_NAMES: Final = tuple(name for name, _ in STEPS)
STEP_WEIGHTS: Final = tuple(weight for _, weight in STEPS)


def history_ledger(history: list[HistoryEntry], amount: int) -> tuple[Ledger, int, int]:
    """What the order's whole history says it reserved, released, disbursed and repaid,
    and so what it must hold now: (ledger, reserved, outstanding)."""
    ledger, reserved, outstanding = Ledger(), 0, 0
    for entry in history[1:]:
        if entry.status.value == "MATCHED":
            ledger.claimed += amount
            reserved = amount
        elif entry.event == "DISBURSED":
            drawn = entry.amount or 0
            ledger.disbursed += drawn
            if reserved:
                ledger.released += reserved - drawn
            else:  # late: claimed again, as drawn
                ledger.claimed += drawn
            reserved, outstanding = 0, drawn
        elif entry.event == "REPAID":
            ledger.repaid += entry.amount or 0
            outstanding -= entry.amount or 0
        elif entry.status.value in {"RECEIVED", "CANCELLED", "EXPIRED"}:
            ledger.released += reserved
            reserved = 0
    return ledger, reserved, outstanding


def record_key(record: dict[str, Any]) -> tuple[tuple[str, str], int]:
    image = record["dynamodb"]["NewImage"]
    key = (image["tenantId"]["S"], image["orderId"]["S"])
    return key, int(image["version"]["N"])


class Simulation:
    """One seeded sequence on its own pair of tables."""

    def __init__(self, client: Any, seed: int, trace_length: int | None = 12) -> None:
        self.seed = seed
        self.step = -1
        self.doing = "setting up"
        self.rng = random.Random(seed)
        self.raw = self.client = client
        self.plan = ArmedPlan()
        self.faults = FaultInjector(self.plan).install(client.meta.events)
        self.region: str = client.meta.region_name
        self.orders_table = f"sim-orders-{seed}"
        self.lines_table = f"sim-lines-{seed}"
        client.create_table(**create_table_kwargs("OrdersTable", self.orders_table))
        client.create_table(**create_table_kwargs("LinesTable", self.lines_table))
        self.clock = Clock()
        self.clock.now = START + timedelta(minutes=self.rng.randrange(24 * 60))
        self.fresh: dict[tuple[str, str, int], bool] = {}
        self.lines: dict[str, ModelLine] = {}
        self.policies: dict[str, dict[str, Any] | None] = {}
        self.orders: dict[tuple[str, str], ModelOrder] = {}
        self.expected_inserts: dict[tuple[str, str], dict[str, Any]] = {}
        self.sent_events: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.recorded: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pending: list[dict[str, Any]] = []
        self.delivered: deque[dict[str, Any]] = deque(maxlen=40)
        self.trace: deque[str] = deque(maxlen=trace_length)
        self.numbers = 0
        self.faults_before_step = 0
        self.filter = matcher_filter()
        self._wire()
        self._configure()

    # ------------------------------------------------------------ setup

    def _wire(self) -> None:
        client = self.client
        self.line_repository = lines = DynamoLineRepository(client, self.lines_table, NO_WAIT)
        events = DynamoOrderEvents(client, self.orders_table, lines, NO_WAIT)
        self.services = (
            OrderService(DynamoOrderRepository(client, self.orders_table), self.clock),
            LineService(lines, self.clock),
            OrderEventService(events, self.clock, LATE_GRACE),
        )
        self._new_containers()

    def _new_containers(self) -> None:
        """The MatcherFunction and the ReconcilerFunction as one Lambda container each
        has them: its own matcher with its own line catalog, cached for a random
        number of (simulated) seconds."""
        lines = self.line_repository
        self.matcher = self._matcher(lines)
        self.reconciler = Reconciler(
            DynamoOrderIndexes(self.client, self.orders_table),
            lines,
            DynamoOrderEvents(self.client, self.orders_table, lines, NO_WAIT),
            self._matcher(lines),
            self.clock,
            audit=DynamoAudit(self.client, self.orders_table, self.lines_table, NO_WAIT),
            workers=1,  # moto is not safe under concurrent writes
        )

    def _matcher(self, lines: DynamoLineRepository) -> WatchedMatcher:
        catalog = WatchedCatalog(
            lines,
            ttl_seconds=self.rng.choice([0.0, 5.0, 30.0]),
            monotonic=self._monotonic,
        )
        store = DynamoMatchStore(self.client, self.orders_table, lines, NO_WAIT)
        return WatchedMatcher(catalog, store, self.clock, log=self.fresh)

    def _monotonic(self) -> float:
        return self.clock.now.timestamp()

    def _configure(self) -> None:
        service = self.services[1]
        for index in range(self.rng.randint(2, 4)):
            config = random_line(self.rng, index)
            line_id = f"line-{index}"
            service.put(line_id, LineConfig.model_validate(config))
            self.lines[line_id] = ModelLine(line_id, config)
        for tenant in TENANTS:
            if self.rng.random() < 0.25:
                self.policies[tenant] = None
                continue
            ids = sorted(self.lines)
            chosen = [] if self.rng.random() < 0.5 else self.rng.sample(ids, self.rng.randint(1, 2))
            policy = {
                "strategy": self.rng.choice(["PRIORITY", "LOWEST_COST", "BEST_FIT", "WEIGHTED"]),
                "lineIds": sorted(chosen),
            }
            service.put_routing(tenant, RoutingPolicy.model_validate(policy))
            self.policies[tenant] = policy

    def stored(self) -> list[str]:
        """Every item of both tables, as JSON, in a fixed order."""
        return sorted(
            json.dumps(item.to_json()["Attributes"], sort_keys=True)
            for table in (self.orders_table, self.lines_table)
            for item in stored_items(self.raw, table)
        )

    def drop(self) -> None:
        self.faults.uninstall(self.raw.meta.events)
        for table in (self.orders_table, self.lines_table):
            self.raw.delete_table(TableName=table)

    # ------------------------------------------------------------ the loop

    def run(self, steps: int) -> None:
        for step in range(steps):
            self.step = step
            name = self.rng.choices(STEP_NAMES, STEP_WEIGHTS)[0]
            self.doing = name
            if self.rng.random() < FAULT_RATE:
                self.plan.arm(self.rng.choice(FAULT_KINDS), self.rng.randrange(2))
            self.fresh.clear()
            self.faults_before_step = len(self.faults.fired)
            try:
                done = getattr(self, f"step_{name}")()
            finally:
                self.plan.disarm()
            faults = self.faults.fired[self.faults_before_step :]
            self.trace.append(f"{step}: {done}" + "".join(f" [fault: {f}]" for f in faults))
            self.check_state()

    @property
    def faulted(self) -> bool:
        return len(self.faults.fired) > self.faults_before_step

    def report(self, error: BaseException) -> str:
        kind = "" if isinstance(error, SimulationFailure) else f"{type(error).__name__}: "
        steps = "\n    ".join(self.trace) or "(none)"
        return (
            f"seed {self.seed}, step {self.step} ({self.doing}): {kind}{error}\n"
            f"  replay: {REPLAY.format(seed=self.seed)}\n"
            f"  steps before it:\n    {steps}"
        )

    # ------------------------------------------------------------ callers

    def call_api(self, event: dict[str, Any]) -> tuple[int, Any]:
        """The API handler; a 503 (only ever after an injected fault) is retried with
        the same request, as a client does. A 500 is a bug, fault or not."""
        self.doing = (
            f"{event['requestContext']['http']['method']} {event['rawPath']} {event['body']}"
        )
        for _ in range(API_ATTEMPTS):
            before = len(self.faults.fired)
            response = api.handle(event, FakeLambdaContext(), *self.services)
            status, body = response["statusCode"], json.loads(response["body"])
            if status == 500:
                raise SimulationFailure(f"500: {body}")
            if status != 503:
                return status, body
            if len(self.faults.fired) == before:
                raise SimulationFailure(f"503 without a fault: {body}")
        raise SimulationFailure("the API kept answering 503")

    def deliver(self, records: list[dict[str, Any]]) -> None:
        """One batch to the matcher handler; records it reports failed (only ever after
        an injected fault) are delivered again, as Lambda does."""
        self.doing = "deliver " + ", ".join(
            f"{k[0]}/{k[1]} v{v}" for k, v in map(record_key, records)
        )
        event = {"Records": records}
        for _ in range(API_ATTEMPTS):
            before = len(self.faults.fired)
            try:
                response = matcher_handler.handle(event, FakeLambdaContext(), self.matcher)
                failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
            except BatchProcessingError:
                failed = {record["dynamodb"]["SequenceNumber"] for record in event["Records"]}
            if not failed:
                return
            expect(
                len(self.faults.fired) > before,
                lambda: f"matcher failed without a fault: {matcher_handler.processor.exceptions}",
            )
            event = {
                "Records": [
                    r for r in event["Records"] if r["dynamodb"]["SequenceNumber"] in failed
                ]
            }
        raise SimulationFailure("the matcher kept failing")

    def reconcile(self) -> tuple[datetime, dict[str, Any]]:
        """The scheduled reconciler; a run that fails, or counts an order it could not
        finish (only ever after an injected fault), is simply followed by the next one."""
        self.doing = f"reconcile at {self.clock.now.isoformat()}"
        for _ in range(API_ATTEMPTS):
            before = len(self.faults.fired)
            run_at = self.clock.now + timedelta(seconds=1)  # its first clock reading
            try:
                summary = reconciler_handler.handle(self.reconciler)
            except Exception as error:
                expect(len(self.faults.fired) > before, f"reconciler failed: {error!r}")
                continue
            if not summary["failures"]:
                return run_at, summary
            expect(len(self.faults.fired) > before, f"reconciler failures: {summary}")
        raise SimulationFailure("the reconciler kept failing")

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
        status, answer = self.call_api(REQUESTS.submit(tenant, body))
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
        status, answer = self.call_api(REQUESTS.submit(order.tenant, order.request))
        expect(status == 200, lambda: f"the same order again answered {status}: {answer}")
        self.expect_nothing_written()
        self.expect_resource(answer, order)
        return f"resubmit {order.key}"

    def step_conflicting_submit(self) -> str:
        order = self._some_order()
        if order is None:
            return self.step_submit()
        changed = order.request | {"amount": order.amount + 1}
        status, answer = self.call_api(REQUESTS.submit(order.tenant, changed))
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
        status, answer = self.call_api(REQUESTS.get_order(tenant, order_id))
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
            status, answer = self.call_api(REQUESTS.order_event(tenant, "o-nobody", event))
            expect(status == 404, lambda: f"an event for no order answered {status}")
            self.expect_nothing_written()
            return "event for an unknown order"
        body = self._new_event(order)
        key = (order.tenant, order.order_id, body["eventId"])
        self.sent_events[key] = body
        predicted = self._predicted(order, body)
        status, answer = self.call_api(REQUESTS.order_event(order.tenant, order.order_id, body))
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
        status, answer = self.call_api(REQUESTS.order_event(key[0], key[1], recorded["body"]))
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
        status, answer = self.call_api(REQUESTS.order_event(key[0], key[1], body))
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
        status, answer = self.call_api(REQUESTS.patch_line(line.line_id, change))
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

    # ------------------------------------------------------------ expectations

    def expect_nothing_written(self) -> None:
        changes = self.absorb(set())
        expect(changes.empty, lambda: f"wrote {changes}")

    def expect_resource(self, answer: dict[str, Any], order: ModelOrder) -> None:
        shown = tuple(
            answer.get(k)
            for k in (
                "tenantId",
                "orderId",
                "status",
                "version",
                "lineId",
                "reserved",
                "outstanding",
            )
        )
        modelled = (
            order.tenant,
            order.order_id,
            order.status,
            order.version,
            order.line_id,
            order.reserved,
            order.outstanding,
        )
        expect(shown == modelled, lambda: f"the API shows {shown}, the model has {modelled}")

    # ------------------------------------------------------------ following the stream

    def absorb(self, allowed: set[str]) -> Changes:
        """Apply every change the Orders stream shows since the last step to the model,
        refusing any the design does not allow or this step could not cause; queue the
        records the matcher's filter lets through."""
        changes = Changes()
        for record in drain_stream(self.raw, self.orders_table):
            if record["eventName"] == "REMOVE":
                raise SimulationFailure(f"an item was deleted: {record['dynamodb']['Keys']}")
            sort_key = record["dynamodb"]["Keys"]["sk"]["S"]
            if sort_key == "ORDER":
                self._absorb_order(record, allowed, changes)
            elif sort_key.startswith(HIST_PREFIX):
                # Checked against the model's history by check_state, once the whole
                # transaction (whose order item may come later in the stream) is in.
                expect(record["eventName"] == "INSERT", f"{sort_key} written twice")
                keys = order_ids(record["dynamodb"]["Keys"]["pk"]["S"])
                assert keys is not None
                changes.spilled.append((keys, sort_key))
            else:
                self._absorb_event_record(record, changes)
            if matches_filter(self.filter, record):
                self.pending.append(lambda_record(record, self.region))
        return changes

    def _absorb_event_record(self, record: dict[str, Any], changes: Changes) -> None:
        values = from_item(record["dynamodb"]["NewImage"])
        expect("result" not in values, "the event record copies the order")
        order_key = order_ids(values["pk"])
        assert order_key is not None
        key = (*order_key, values["eventId"])
        expect(record["eventName"] == "INSERT", lambda: f"event {key} recorded twice")
        expect(key in self.sent_events, lambda: f"event {key} recorded but never sent")
        expect(values["type"] == self.sent_events[key]["type"], f"event {key} has another type")
        self.recorded[key] = {"body": self.sent_events[key], "version": values["version"]}
        changes.events.append(key)

    def _absorb_order(self, record: dict[str, Any], allowed: set[str], changes: Changes) -> None:
        after = order_from_item(record["dynamodb"]["NewImage"])
        key = (after.tenant_id, after.order_id)
        if record["eventName"] == "INSERT":
            request = self.expected_inserts.pop(key, None)
            expect("insert" in allowed and request is not None, f"{key} appeared unasked")
            assert request is not None
            expect(
                (after.status.value, after.version, after.amount, after.content_hash)
                == (
                    "RECEIVED",
                    1,
                    request["amount"],
                    OrderRequest.model_validate(request).content_hash(),
                )
                and key not in self.orders,
                lambda: f"intake stored {after}",
            )
            self.orders[key] = ModelOrder(
                key[0], key[1], request, updated_at=after.updated_at, history=list(after.history)
            )
            changes.inserted.append(key)
            return
        before = order_from_item(record["dynamodb"]["OldImage"])
        order = self.orders.get(key)
        expect(order is not None, f"{key} changed but was never accepted")
        assert order is not None
        cause = self._check_move(order, before, after, allowed)
        EFFECTS[cause](self, order, before, after)
        self._follow(order, after)
        changes.moved.append((key, before.status.value, after.status.value, after.history[-1]))

    def _check_move(self, order: ModelOrder, before: Order, after: Order, allowed: set[str]) -> str:
        """The write is the next version of what the model holds, along an arrow, with
        one history entry more, from a cause this step could have; returns the cause."""
        key, old, new = order.key, before.status.value, after.status.value
        expect(
            (before.version, old) == (order.version, order.status),
            lambda: f"{key} changed from v{before.version} {old}, model has v{order.version}",
        )
        expect(after.version == before.version + 1, lambda: f"{key} jumped to v{after.version}")
        expect(new in ARROWS[old], lambda: f"{key} moved {old} -> {new}: not an arrow")
        entry = after.history[-1]
        whole = [*order.history, entry]
        expect(
            after.history_total == len(whole)
            and after.history == whole[-len(after.history) :]
            and len(after.history) <= domain_orders.RECENT_HISTORY,
            lambda: f"{key}'s history was rewritten",
        )
        expect(entry.status.value == new, lambda: f"{key}'s last history entry is {entry}")
        unchanged = ("amount", "currency", "content_hash", "created_at", "product", "term_months")
        expect(
            all(getattr(after, name) == getattr(before, name) for name in unchanged),
            lambda: f"{key}'s content changed",
        )
        if entry.event is None:
            cause = {"MATCHED": "match", "UNMATCHED": "unmatched", "EXPIRED": "expire"}.get(new, "")
        else:
            cause = entry.event
            late = cause == "DISBURSED" and old in LATE_FROM
            expect(
                new in LEADS_TO.get(cause, ()) and (old in ALLOWED_FROM[cause] or late),
                lambda: f"{key}: {cause} moved it {old} -> {new}",
            )
        kind = "event" if entry.event else cause
        expect(kind in allowed, lambda: f"{key} moved {old} -> {new} ({cause}) in this step")
        return cause

    def _follow(self, order: ModelOrder, after: Order) -> None:
        order.status, order.version = after.status.value, after.version
        order.line_id, order.claim_day = after.line_id, after.claim_day
        order.reserved, order.outstanding = after.reserved, after.outstanding
        order.hold_expires_at, order.updated_at = after.hold_expires_at, after.updated_at
        order.declined = list(after.declined_line_ids)
        order.history.append(after.history[-1])
        ledger, reserved, outstanding = history_ledger(order.history, order.amount)
        expect(
            (ledger, reserved, outstanding) == (order.ledger, order.reserved, order.outstanding),
            lambda: (
                f"{order.key}: its history says {ledger} {reserved} {outstanding},"
                f" the model has {order.ledger} {order.reserved} {order.outstanding}"
            ),
        )

    # ------------------------------------------------------------ effects on lines

    def _line(self, order: ModelOrder, line_id: str | None) -> ModelLine:
        line = self.lines.get(line_id or "")
        expect(line is not None, lambda: f"{order.key} names line {line_id}")
        assert line is not None
        return line

    def on_match(self, order: ModelOrder, before: Order, after: Order) -> None:
        at, amount = after.history[-1].at, order.amount
        line = self._line(order, after.line_id)
        if self.fresh.get((order.tenant, order.order_id, before.version)):
            self._expect_choice(order, before, at, line.line_id)
        policy = self.policies[order.tenant]
        day = line.day(at)
        refusal = (
            static_refusal(line, order, policy, list(before.declined_line_ids))
            or line.window_refusal(at)
            or (
                f"limit {line.config['limit']}, held {line.held}"
                if amount > line.available
                else None
            )
            or line.daily_refusal(day, amount)
        )
        expect(
            refusal is None, lambda: f"{order.key} claimed {amount} on {line.line_id}: {refusal}"
        )
        hold = at + timedelta(seconds=line.config["holdSeconds"])
        claimed = (after.reserved, after.claim_day, after.hold_expires_at, after.funder_id)
        expect(
            claimed == (amount, day, hold, line.config["funderId"]),
            lambda: f"{order.key} matched as {claimed}, expected {(amount, day, hold)}",
        )
        line.reserved += amount
        line.daily[day] = line.daily.get(day, 0) + amount
        line.matched_total += amount
        order.ledger.claimed += amount

    def on_unmatched(self, order: ModelOrder, before: Order, after: Order) -> None:
        if self.fresh.get((order.tenant, order.order_id, before.version)):
            self._expect_choice(order, before, after.history[-1].at, None)
        expect(after.line_id is None and after.reserved == 0, f"{order.key} unmatched holding")

    def _expect_choice(
        self, order: ModelOrder, before: Order, at: datetime, chosen: str | None
    ) -> None:
        """With fresh lines the matcher ranks what the model ranks: the lines that may
        take the order and have the room (the day's usage is the claim's to check),
        in the tenant's strategy, claiming the first whose day has room."""
        policy = self.policies[order.tenant]
        amount = order.amount
        fitting = [
            line
            for line in self.lines.values()
            if static_refusal(line, order, policy, list(before.declined_line_ids)) is None
            and line.window_refusal(at) is None
            and line.available >= amount
            and (line.config.get("dailyLimit") is None or amount <= line.config["dailyLimit"])
        ]
        order_of_lines = ranked(fitting, policy["strategy"] if policy else "PRIORITY")
        best = next(
            (
                line.line_id
                for line in order_of_lines
                if line.daily_refusal(line.day(at), amount) is None
            ),
            None,
        )
        expect(
            chosen == best,
            lambda: (
                f"{order.key} ({amount}) went to {chosen}; the model ranks"
                f" {[line.line_id for line in order_of_lines]} ({policy}) and picks {best}"
            ),
        )

    def _release(self, order: ModelOrder, before: Order, after: Order) -> None:
        expect(after.reserved == after.outstanding == 0, lambda: f"{order.key} still holds")
        amount = before.reserved
        if not amount:
            return
        line = self._line(order, before.line_id)
        day = before.claim_day or ""
        line.reserved -= amount
        line.daily[day] = line.daily.get(day, 0) - amount
        expect(line.reserved >= 0 and line.daily[day] >= 0, f"{line.line_id} went negative")
        order.ledger.released += amount

    def on_expire(self, order: ModelOrder, before: Order, after: Order) -> None:
        at, hold = after.history[-1].at, before.hold_expires_at
        expect(hold is not None and at >= hold, lambda: f"{order.key} expired at {at}, hold {hold}")
        self._release(order, before, after)

    def on_declined(self, order: ModelOrder, before: Order, after: Order) -> None:
        declined = [*before.declined_line_ids, before.line_id]
        expect(
            after.line_id is None and after.declined_line_ids == declined,
            lambda: f"{order.key} declined as {after.line_id} {after.declined_line_ids}",
        )
        self._release(order, before, after)

    def on_cancelled(self, order: ModelOrder, before: Order, after: Order) -> None:
        self._release(order, before, after)

    def on_approved(self, order: ModelOrder, before: Order, after: Order) -> None:
        expect(
            (after.line_id, after.reserved) == (before.line_id, before.reserved),
            f"{order.key} approval moved capacity",
        )

    def on_disbursed(self, order: ModelOrder, before: Order, after: Order) -> None:
        drawn = after.history[-1].amount or 0
        late = before.status.value in LATE_FROM
        held = order.amount if late else before.reserved
        expect(
            0 < drawn <= held
            and (after.outstanding, after.reserved, after.line_id) == (drawn, 0, before.line_id),
            lambda: f"{order.key} disbursed {drawn} of {held} as {after}",
        )
        line = self._line(order, before.line_id)
        day = before.claim_day or ""
        # Over the limit exactly when a late disbursement found no room on the line.
        beyond = late and drawn > line.available
        expect(
            after.over_limit == beyond,
            lambda: f"{order.key} over limit {after.over_limit}; {drawn} on {line}",
        )
        if late:
            line.daily[day] = line.daily.get(day, 0) + drawn
            order.ledger.claimed += drawn
        else:
            line.daily[day] = line.daily.get(day, 0) - (before.reserved - drawn)
            order.ledger.released += before.reserved - drawn
        line.reserved -= before.reserved
        line.drawn += drawn
        line.over_limit_by_late_draw |= beyond
        order.ledger.disbursed += drawn

    def on_repaid(self, order: ModelOrder, before: Order, after: Order) -> None:
        repaid = after.history[-1].amount or 0
        expect(
            0 < repaid <= before.outstanding
            and after.outstanding == before.outstanding - repaid
            and (after.status.value == "REPAID") == (after.outstanding == 0),
            lambda: f"{order.key} repaid {repaid} of {before.outstanding} as {after}",
        )
        line = self._line(order, before.line_id)
        line.drawn -= repaid
        expect(line.drawn >= 0, f"{line.line_id} drawn went negative")
        order.ledger.repaid += repaid

    # ------------------------------------------------------------ the stored state

    def check_state(self) -> None:
        """docs/design.md's invariant on the stored items, and the stored items against the
        model, exactly. Read from moto's tables in-process: a Scan through the SDK
        would serialize every item and cost more than the step itself."""
        self.doing = "checking the stored state"
        sums = {line_id: [0, 0] for line_id in self.lines}
        seen: set[tuple[str, str]] = set()
        event_items = 0
        spilled: dict[tuple[str, str], dict[int, HistoryEntry]] = {}
        recent: dict[tuple[str, str], int] = {}
        for item in stored_items(self.raw, self.orders_table):
            attrs = item.attrs
            sort_key = plain(attrs["sk"])
            if sort_key.startswith(HIST_PREFIX):
                keys = order_ids(plain(attrs["pk"]))
                assert keys is not None
                values = {k: plain(v) for k, v in attrs.items() if k not in {"pk", "sk"}}
                number = int(sort_key.removeprefix(HIST_PREFIX))
                spilled.setdefault(keys, {})[number] = HistoryEntry.model_validate(values)
                continue
            if sort_key != "ORDER":
                event_items += 1
                continue
            order = self._check_order(attrs)
            seen.add(order.key)
            recent[order.key] = len(attrs["history"].value)
            if order.status in RESERVING:
                sums[order.line_id or ""][0] += order.reserved
            elif order.status == "DISBURSED":
                sums[order.line_id or ""][1] += order.outstanding
        expect(seen == set(self.orders), lambda: f"orders lost: {set(self.orders) - seen}")
        expect(event_items == len(self.recorded), "event records differ from the events")
        for key, order in self.orders.items():
            stored = spilled.pop(key, {})
            wanted = dict(enumerate(order.history[: len(order.history) - recent[key]]))
            expect(stored == wanted, f"{key}'s stored history is not the model's")
        expect(not spilled, lambda: f"history of unknown orders: {set(spilled)}")
        self._check_lines(sums)

    def _check_order(self, attrs: dict[str, Any]) -> ModelOrder:
        key = (plain(attrs["tenantId"]), plain(attrs["orderId"]))
        found = self.orders.get(key)
        expect(found is not None, lambda: f"{key} is stored but was never accepted")
        assert found is not None
        order = found
        stored = tuple(
            plain(attrs.get(name))
            for name in ("status", "version", "lineId", "reserved", "outstanding", "lineKey")
        )
        modelled = (order.status, order.version, order.line_id, order.reserved, order.outstanding)
        expect(stored[:5] == modelled, lambda: f"{order.key} stored {stored}, model {modelled}")
        if order.status in HOLDING:
            amounts = (order.reserved, order.outstanding)
            expected = (order.amount, 0) if order.status in RESERVING else (0, order.outstanding)
            expect(
                stored[5] == order.line_id in self.lines
                and amounts == expected
                and order.outstanding >= 0,
                lambda: f"{order.key} {order.status} holds {amounts} on {stored[5]}",
            )
        else:
            expect(
                stored[5] is None and order.reserved == order.outstanding == 0,
                lambda: f"{order.key} {order.status} still holds {stored}",
            )
        ledger = order.ledger
        expect(
            ledger.claimed == order.reserved + order.outstanding + ledger.repaid + ledger.released
            and ledger.disbursed == order.outstanding + ledger.repaid,
            lambda: f"{order.key} lost money: {ledger}, {order.reserved} {order.outstanding}",
        )
        return order

    def _check_lines(self, sums: dict[str, list[int]]) -> None:
        stored: dict[str, dict[str, Any]] = {}
        days: dict[str, dict[str, int]] = {line_id: {} for line_id in self.lines}
        for item in stored_items(self.raw, self.lines_table):
            pk, sk = plain(item.attrs["pk"]), plain(item.attrs["sk"])
            if sk == "LINE":
                stored[pk.removeprefix("LINE#")] = from_item(item.to_json()["Attributes"])
            elif plain(item.attrs.get("used")):  # a day's usage: LINE#{id}#DAY#{day} / DAY
                line_id, _, day = f"{pk}#{sk}".removeprefix("LINE#").partition("#DAY#")
                days[line_id][day.removesuffix("#DAY")] = plain(item.attrs["used"])
        expect(set(stored) == set(self.lines), lambda: f"lines stored: {sorted(stored)}")
        for line_id, line in self.lines.items():
            self._check_line(line, stored[line_id], sums[line_id], days[line_id])

    @staticmethod
    def _check_line(
        line: ModelLine, values: dict[str, Any], sums: list[int], days: dict[str, int]
    ) -> None:
        """docs/design.md's invariant on one line, then the line against the model."""
        line_id = line.line_id
        reserved, drawn, held = values["reserved"], values["drawn"], values["held"]
        limit = values["config"]["limit"]
        expect(
            [reserved, drawn] == sums and held == reserved + drawn,
            lambda: (
                f"invariant broken on {line_id}: reserved {reserved}, drawn {drawn},"
                f" held {held}; its orders hold {sums}"
            ),
        )
        if held <= limit:
            line.over_limit_by_operator = line.over_limit_by_late_draw = False
        expect(
            held <= limit or line.over_limit_by_operator or line.over_limit_by_late_draw,
            lambda: f"{line_id} holds {held} over its limit {limit}",
        )
        config = values["config"]
        shown = (reserved, drawn, values.get("matchedTotal", 0), limit, config["status"])
        modelled = (line.reserved, line.drawn, line.matched_total, line.config["limit"])
        expect(
            shown == (*modelled, line.config["status"])
            and config.get("dailyLimit") == line.config["dailyLimit"],
            lambda: f"{line_id} stored {shown}, model {line}",
        )
        used = {day: amount for day, amount in line.daily.items() if amount}
        expect(days == used, lambda: f"{line_id} days {days}, model {used}")


EFFECTS: Final[dict[str, Callable[[Simulation, ModelOrder, Order, Order], None]]] = {
    "match": Simulation.on_match,
    "unmatched": Simulation.on_unmatched,
    "expire": Simulation.on_expire,
    "APPROVED": Simulation.on_approved,
    "DECLINED": Simulation.on_declined,
    "CANCELLED": Simulation.on_cancelled,
    "DISBURSED": Simulation.on_disbursed,
    "REPAID": Simulation.on_repaid,
}


# ---------------------------------------------------------------- the test


def sequences() -> list[tuple[int, int]]:
    """(seed, steps) of every sequence to run: one when replaying."""
    if ONE_SEED is not None:
        return [(int(ONE_SEED), STEPS_PER_SEED)]
    count = math.ceil(TOTAL_STEPS / STEPS_PER_SEED)
    return [
        (FIRST_SEED + i, min(STEPS_PER_SEED, TOTAL_STEPS - i * STEPS_PER_SEED))
        for i in range(count)
    ]


@pytest.fixture
def quiet_handlers() -> Iterator[None]:
    """The handlers log every request and print their metrics; thousands of steps of
    that would bury a failure's message."""
    roots = {m.logger.name.split(".")[0] for m in (api, matcher_handler, reconciler_handler)}
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in roots
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@pytest.fixture
def client(aws: None) -> Any:
    # Unsigned: moto checks no signature, and SigV4 costs more than some steps do.
    return boto3.client("dynamodb", config=Config(signature_version=UNSIGNED))


def test_random_sequences_keep_the_invariant_after_every_step(
    client: Any, quiet_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    speed_up_moto(monkeypatch)
    # A short recent history, so entries leave the order item in most sequences.
    monkeypatch.setattr(domain_orders, "RECENT_HISTORY", 3)
    taken = 0
    for seed, steps in sequences():
        simulation = Simulation(client, seed)
        try:
            simulation.run(steps)
        except Exception as error:
            raise AssertionError(simulation.report(error)) from error
        finally:
            simulation.drop()
        taken += steps
    assert taken >= min(TOTAL_STEPS, 10_000) or ONE_SEED is not None


def test_the_moto_shortcuts_change_no_outcome(
    client: Any, quiet_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sequence, with cancelled transactions and injected faults, run on moto as
    it is and then with the shortcuts: the same steps, the same answers, the same
    items stored."""
    cancelled: list[bool] = []
    client.meta.events.register(
        "after-call.dynamodb.TransactWriteItems",
        lambda parsed, **_: cancelled.append("CancellationReasons" in parsed),
    )
    outcomes = []
    for faster in (False, True):
        if faster:
            speed_up_moto(monkeypatch)
        simulation = Simulation(client, SHORTCUT_SEED, trace_length=None)
        simulation.run(SHORTCUT_STEPS)
        outcomes.append((list(simulation.trace), simulation.stored()))
        simulation.drop()

    assert outcomes[0] == outcomes[1]
    assert any("[fault: " in step for step in outcomes[0][0]), "no fault was injected"
    assert sum(cancelled) >= 10, "too few transactions were cancelled to compare rollbacks"


# ---------------------------------------------------------------- bugs found


# Found by this simulation: a daily cap lowered under a warm matcher below the
# order's amount made the claim raise out of the matcher instead of refusing the line.
def test_a_daily_cap_lowered_under_a_warm_matcher_refuses_the_line(
    dynamodb: Any, orders_table: str
) -> None:
    dynamodb.create_table(**create_table_kwargs("LinesTable", "bug-lines"))
    lines = DynamoLineRepository(dynamodb, "bug-lines")
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    config = {
        "funderId": "bank-a",
        "name": "Bank A",
        "currency": "CNY",
        "limit": 1_000_000,
        "minAmount": 1,
        "maxAmount": 100_000,
        "aprBps": 1000,
        "priority": 1,
        "weight": 50,
        "holdSeconds": 900,
    }
    lines.put_config("capped", LineConfig.model_validate(config), now)
    catalog = LineCatalog(lines, ttl_seconds=60, monotonic=lambda: 0.0)
    catalog.lines()  # a warm container: the configuration is cached
    capped = LineConfig.model_validate(config | {"dailyLimit": 10_000})
    lines.put_config("capped", capped, now)  # the operator sets a daily cap of 10,000
    orders = DynamoOrderRepository(dynamodb, orders_table)
    request = {
        "orderId": "o-1",
        "amount": 20_000,
        "currency": "CNY",
        "termMonths": 12,
        "product": "installment",
        "customer": {"id": "c-1"},
    }
    order = Order.received("tenant-a", OrderRequest.model_validate(request), now)
    assert orders.add(order) is None
    store = DynamoMatchStore(dynamodb, orders_table, lines, NO_WAIT)

    report = MatchService(catalog, store, lambda: now).match(order)

    # The warm claim is refused, not raised; the refusal is then decided on the
    # current view (the cap change bumped the marker), where the line is ineligible.
    assert report.outcome is MatchOutcome.UNMATCHED
    assert [(c.line_id, c.outcome, c.code) for c in report.candidates] == [
        ("capped", "INELIGIBLE", "DAILY_LIMIT_REACHED")
    ]
    stored = orders.get("tenant-a", "o-1")
    assert stored is not None
    assert stored.status.value == "UNMATCHED"
