"""No customer data in logs or traces (issue 9, item 10). Each Lambda entry point
handles orders whose customer fields are distinctive strings, good ones and a
malformed one, its own loggers at DEBUG; everything it writes (stdout, log records), what it raises
(Lambda logs it) and what its tracer records for X-Ray must not contain any of them.
Tenant and order ids are allowed: they are how an operator finds an order."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fundrouter import bootstrap
from fundrouter.persistence.orders import order_item

from tests.support.api import BUILDERS, DEFAULTS
from tests.support.aws import FakeLambdaContext
from tests.support.bus import Bus
from tests.support.events import load_event
from tests.support.handlers import handler_module
from tests.support.world import ORDER_ID, TENANT, World, api

matcher = handler_module("matcher", "matcher_handler")
tracker = handler_module("tracker", "tracker_handler")
reconciler = handler_module("reconciler", "reconciler_handler")

CUSTOMER = {"id": "cust-PII-7731", "region": "PIIRG42", "creditGrade": "PIIG8"}
METADATA = {"note": "pii-metadata-7731"}
BAD_REGION = "PII-REGION-WAY-TOO-LONG"  # fails validation: its error would quote it
SECRETS = (*CUSTOMER.values(), *METADATA.values(), BAD_REGION)


class Subsegment:
    def __init__(self, recorded: list[Any]) -> None:
        self._recorded = recorded

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self._recorded.append((key, value, namespace))

    def put_annotation(self, key: str, value: Any) -> None:
        self._recorded.append((key, value))

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        self._recorded.append((exception, stack, remote))


class Recorder:
    """A tracer provider keeping everything the handler's tracer would send to X-Ray."""

    def __init__(self) -> None:
        self.recorded: list[Any] = []

    @contextmanager
    def in_subsegment(self, name: str, **_: Any) -> Iterator[Subsegment]:
        self.recorded.append(name)
        yield Subsegment(self.recorded)


class Leaks:
    """What the handlers wrote, raised and traced, searched for customer values."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: Any
    ) -> None:
        self._capsys = capsys
        self._caplog = caplog
        self.raised: list[str] = []
        self.recorder = Recorder()
        # Other libraries at INFO, as Lambda's JSON log format sets the root logger
        # (botocore's DEBUG lines quote whole requests; Lambda never emits them).
        caplog.set_level(logging.INFO)
        for module in (api, matcher, tracker, reconciler):
            monkeypatch.setattr(module.tracer, "provider", self.recorder)
            module.logger.setLevel(logging.DEBUG)

    def call(self, module: ModuleType, event: dict[str, Any]) -> Any:
        try:
            return module.handler(event, FakeLambdaContext())
        except BatchProcessingError as error:  # Lambda logs it, with its chain
            self.raised.append(repr(error) + str(error))
            return None

    def found(self) -> list[str]:
        out = self._capsys.readouterr()
        text = "\n".join(
            [out.out, out.err, self._caplog.text, *self.raised, repr(self.recorder.recorded)]
        )
        return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def leaks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: Any
) -> Iterator[Leaks]:
    found = Leaks(monkeypatch, capsys, caplog)
    yield found
    for module in (api, matcher, tracker, reconciler):
        module.logger.setLevel(logging.INFO)
        module.metrics.clear_metrics()


@pytest.fixture
def world(orders_table: str, monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(orders_table)
    orders, lines, events = world.services
    given = {"orders": orders, "lines": lines, "events": events, "history": world.history}
    overrides = {BUILDERS[name]: (lambda s=s: s) for name, s in given.items()}
    overrides |= {BUILDERS[name]: build for name, build in DEFAULTS.items()}  # the tenant gate
    monkeypatch.setattr(api.app, "dependency_overrides", overrides)
    monkeypatch.setattr(bootstrap, "match_service", lambda: world.matcher)
    monkeypatch.setattr(bootstrap, "reconciler", lambda: world.reconciler)
    return world


def submit_event() -> dict[str, Any]:
    event = load_event("api/submit_order.json")
    body = json.loads(event["body"]) | {"customer": CUSTOMER, "metadata": METADATA}
    event["body"] = json.dumps(body)
    return event


def stream_batch(world: World, bad: bool) -> dict[str, Any]:
    """The order's INSERT record as the table wrote it; `bad`: with a region that
    does not validate."""
    order = world.orders.get(TENANT, ORDER_ID)
    assert order is not None
    item = order_item(order)
    if bad:
        item["customer"]["M"]["region"] = {"S": BAD_REGION}
    record = load_event("matcher/new_order.json")["Records"][0]
    record["dynamodb"] |= {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "NewImage": item}
    return {"Records": [record]}


def test_the_api_writes_and_traces_no_customer_data(world: World, leaks: Leaks) -> None:
    submitted = leaks.call(api, submit_event())
    read = leaks.call(api, load_event("api/get_order.json"))
    listed = leaks.call(api, load_event("api/list_orders.json"))

    assert [r["statusCode"] for r in (submitted, read, listed)] == [202, 200, 200]
    assert CUSTOMER["id"] in read["body"]  # the caller gets the data back; nobody else
    assert leaks.found() == []


def test_the_matcher_writes_raises_and_traces_no_customer_data(world: World, leaks: Leaks) -> None:
    assert world.call(submit_event())[0] == 202
    malformed = stream_batch(world, bad=True)
    good = stream_batch(world, bad=False)

    leaks.call(matcher, malformed)
    assert leaks.call(matcher, good) == {"batchItemFailures": []}

    assert leaks.raised, "the malformed record alone must fail its batch"
    assert leaks.found() == []


def test_the_tracker_writes_traces_and_dead_letters_no_customer_data(
    world: World, leaks: Leaks, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = Bus()
    monkeypatch.setattr(bootstrap, "event_publisher", bus.publisher)
    monkeypatch.setattr(bootstrap, "dead_letters", bus.dead_letters)
    assert world.call(submit_event())[0] == 202
    event = stream_batch(world, bad=False)
    malformed = stream_batch(world, bad=True)["Records"][0]
    malformed["dynamodb"]["SequenceNumber"] = "999"
    event["Records"].append(malformed)

    assert leaks.call(tracker, event) == {"batchItemFailures": []}

    letters = bus.letters()
    assert [letter["orderId"] for letter in letters] == [ORDER_ID]
    assert [s for s in SECRETS if s in json.dumps(letters)] == []
    assert leaks.found() == []


def test_the_reconciler_writes_and_traces_no_customer_data(world: World, leaks: Leaks) -> None:
    assert world.call(submit_event())[0] == 202
    world.match()
    world.clock.advance(3600)

    summary = leaks.call(reconciler, load_event("reconciler/schedule.json"))

    assert summary["expired"]
    assert leaks.found() == []
