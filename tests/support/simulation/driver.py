"""The adapters under the simulation: moto's tables and stream, the matcher whose
readings are watched, and the handlers called as Lambda calls them."""

import json
import random
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final

import boto3
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import Order
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.persistence.audit import DynamoAudit
from fundrouter.persistence.lifecycle import DynamoOrderEvents
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import DynamoOrderIndexes, DynamoOrderRepository
from fundrouter.service.lifecycle import OrderEventService
from fundrouter.service.lines import LineService
from fundrouter.service.matching import LineCatalog, MatchReport, MatchService
from fundrouter.service.orders import OrderService
from fundrouter.service.reconciling import Reconciler
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from tests.faults import ArmedPlan, FaultInjector
from tests.support.api import serve
from tests.support.aws import FakeLambdaContext
from tests.support.fakes import Clock
from tests.support.handlers import handler_module
from tests.support.simulation.inputs import random_line
from tests.support.simulation.model import (
    LATE_GRACE,
    START,
    TENANTS,
    ModelLine,
    ModelOrder,
    SimulationFailure,
    expect,
)
from tests.support.template import create_table_kwargs, resources
from tests.support.world import NO_WAIT

matcher_handler = handler_module("matcher", "matcher_handler")
reconciler_handler = handler_module("reconciler", "reconciler_handler")

REPLAY: Final = (
    "FUNDROUTER_SIM_SEED={seed} .venv/bin/pytest tests/handlers/test_model_simulation.py -q"
)


API_ATTEMPTS: Final = 4
PAGE: Final = 1000  # GetRecords' most records a call
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


# ---------------------------------------------------------------- moto's tables


def moto_table(client: Any, name: str) -> Any:
    """moto's table object. Looked up each time: a cancelled transaction puts back a
    copy of the table, so an old reference goes stale."""
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][client.meta.region_name].get_table(name)


class Stream:
    """A table's stream, read through the DynamoDB Streams API as Lambda's event
    source mapping reads it."""

    def __init__(self, client: Any, table: str) -> None:
        self._streams = boto3.client(
            "dynamodbstreams", region_name=client.meta.region_name, config=client.meta.config
        )
        self._arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        self._shard = shards[0]["ShardId"]
        self._last: str | None = None

    def new_records(self) -> list[dict[str, Any]]:
        """The records written since the last call, in commit order. A new iterator
        each time: moto undoes a cancelled transaction by putting back a copy of the
        table, and of its shard, which an older iterator would not see."""
        position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
        if self._last is not None:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._last}
        iterator = self._streams.get_shard_iterator(
            StreamArn=self._arn, ShardId=self._shard, **position
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while True:
            page = self._streams.get_records(ShardIterator=iterator, Limit=PAGE)
            records += page["Records"]
            if len(page["Records"]) < PAGE:
                break
            iterator = page["NextShardIterator"]
        if records:
            self._last = records[-1]["dynamodb"]["SequenceNumber"]
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


def record_key(record: dict[str, Any]) -> tuple[tuple[str, str], int]:
    image = record["dynamodb"]["NewImage"]
    key = (image["tenantId"]["S"], image["orderId"]["S"])
    return key, int(image["version"]["N"])


# How often each step is taken.
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


class Driver:
    """The real code on its own pair of moto tables, and how the simulation calls it:
    the API handler, the matcher handler on stream batches, the scheduled reconciler."""

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
        self.stream = Stream(client, self.orders_table)
        start = START + timedelta(minutes=self.rng.randrange(24 * 60))
        self.clock = Clock(start, tick=timedelta(seconds=1))  # a second a reading
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
            response = serve(
                event, **dict(zip(("orders", "lines", "events"), self.services, strict=True))
            )
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
