"""Faults the way AWS fails, injected through botocore's public event hooks.

A FaultInjector registers handlers on a client's (or a session's) ``meta.events`` for
DynamoDB, DynamoDB Streams and EventBridge. For each call its plan may pick one fault
among those that can happen to that operation:

before the request (nothing is written; the caller sees the error):
  throttling            ProvisionedThroughputExceededException / ThrottlingException
                        (a transaction: also TransactionCanceledException, ThrottlingError);
                        EventBridge ThrottlingException; Streams LimitExceededException
  transaction-conflict  TransactionCanceledException with a TransactionConflict reason
                        (transactions), TransactionConflictException (single-item writes)
  internal-error        500 InternalServerError (EventBridge: InternalException)
  connection-reset      ConnectionClosedError: the connection dropped, no answer
  connect-error         EndpointConnectionError: no connection at all

after the write committed (writes only; a write that failed is left alone):
  timeout-after-commit  ReadTimeoutError: committed, but the answer never arrived
  reset-after-commit    ConnectionClosedError after the commit
  error-after-commit    500 InternalServerError after the commit ("may have succeeded")
  resend-after-commit   the SDK sends the committed request again (as it does after a
                        lost answer) and the caller gets the second answer

partial answers (what was not done is really not done):
  unprocessed-keys      BatchGetItem: some keys are left out of the request and handed
                        back as UnprocessedKeys
  partial-failure       EventBridge PutEvents: some entries are left out of the request and
                        answered as failed entries (FailedEntryCount)

The rate is the share of calls whose caller sees a fault: the faults are injected
above botocore's own retries (before-call/after-call), so they are what reaches the
product's code, as when AWS keeps failing beyond the SDK's attempts.

Self-contained (stdlib and botocore only): scripts/localstack.py ships this very file as
a test-only Lambda layer when FUNDROUTER_FAULTS is set, never in layers/fundrouter.
In a Lambda, ``install_from_environment()`` (run by the layer's .pth file before the
handler module is imported) registers it on boto3's default session and logs one JSON
line per injected fault: {"fundrouterFault": kind, "service": ..., "operation": ...}.
"""

import json
import os
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from botocore.awsrequest import AWSResponse
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

ENV: Final = "FUNDROUTER_FAULTS"
LOG_KEY: Final = "fundrouterFault"
SERVICES: Final = ("dynamodb", "dynamodb-streams", "eventbridge")
CONTEXT_KEY: Final = "fundrouter_fault"

BEFORE: Final = frozenset(
    {"throttling", "transaction-conflict", "internal-error", "connection-reset", "connect-error"}
)
AFTER_COMMIT: Final = frozenset(
    {"timeout-after-commit", "reset-after-commit", "error-after-commit", "resend-after-commit"}
)
PARTIAL: Final = frozenset({"unprocessed-keys", "partial-failure"})
KINDS: Final = tuple(sorted(BEFORE | AFTER_COMMIT | PARTIAL))

WRITES: Final = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem", "PutEvents"}
)
TRANSACTIONS: Final = frozenset({"TransactWriteItems", "TransactGetItems"})
SINGLE_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


def applicable(service: str, operation: str) -> frozenset[str]:
    """The faults AWS can answer this operation with."""
    kinds = {"throttling", "internal-error", "connection-reset", "connect-error"}
    if operation in WRITES:
        kinds |= AFTER_COMMIT
    if service == "dynamodb" and operation in TRANSACTIONS | SINGLE_WRITES:
        kinds.add("transaction-conflict")
    if service == "dynamodb" and operation == "BatchGetItem":
        kinds.add("unprocessed-keys")
    if service == "eventbridge" and operation == "PutEvents":
        kinds.add("partial-failure")
    return frozenset(kinds)


class Plan(Protocol):
    def choose(self, service: str, operation: str, kinds: frozenset[str]) -> str | None:
        """The fault for this call, among `kinds`, or None."""

    def settle(self, operation: str, kind: str | None, injected: bool, committed: bool) -> None:
        """After each call that got an answer: what happened."""


class RandomPlan:
    """A fault on a `rate` share of calls, chosen evenly among the allowed kinds that
    can happen to the call; the same seed gives the same sequence of choices."""

    def __init__(self, seed: int | str, rate: float, kinds: Iterable[str] = KINDS) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(KINDS)
        if unknown or not 0 <= rate <= 1:
            raise ValueError(f"fault kinds {sorted(unknown)} or rate {rate} not understood")

    def choose(self, service: str, operation: str, kinds: frozenset[str]) -> str | None:
        allowed = sorted(kinds & self.kinds)
        if not allowed or self.rng.random() >= self.rate:
            return None
        return self.rng.choice(allowed)

    def settle(self, operation: str, kind: str | None, injected: bool, committed: bool) -> None:
        return None


class ArmedPlan:
    """One fault on demand: after `skip` committed writes, the next write that can take
    `kind` gets it; a write that does not commit leaves the plan armed."""

    def __init__(self) -> None:
        self._armed: tuple[str, int] | None = None

    def arm(self, kind: str, skip: int) -> None:
        self._armed = (kind, skip)

    def disarm(self) -> None:
        self._armed = None

    def choose(self, service: str, operation: str, kinds: frozenset[str]) -> str | None:
        if self._armed is None or operation not in WRITES:
            return None
        kind, skip = self._armed
        return kind if skip == 0 and kind in kinds else None

    def settle(self, operation: str, kind: str | None, injected: bool, committed: bool) -> None:
        if self._armed is None or operation not in WRITES:
            return
        if injected:
            self._armed = None
        elif committed and self._armed[1] > 0:
            self._armed = (self._armed[0], self._armed[1] - 1)


class FaultInjector:
    """Registers on an event emitter (a client's ``meta.events``, or a session's
    ``events`` before its clients are created) and injects what its plan picks."""

    def __init__(
        self,
        plan: Plan,
        log: Callable[[dict[str, str]], None] | None = None,
        seed: int | str = 0,
    ) -> None:
        self.plan = plan
        self.counts: Counter[str] = Counter()
        self.fired: list[str] = []
        self._log = log
        self._lock = threading.Lock()
        self._id = f"fundrouter-faults-{id(self)}"
        self._rng = random.Random(seed)  # the shape of a fault: which item, which code

    # ------------------------------------------------------------------ wiring
    def _handlers(self) -> list[tuple[str, Callable[..., Any]]]:
        return [
            (f"{event}.{service}", handler)
            for service in SERVICES
            for event, handler in (
                ("before-parameter-build", self._before_parameter_build),
                ("before-call", self._before_call),
                ("needs-retry", self._needs_retry),
                ("after-call", self._after_call),
            )
        ]

    def install(self, events: Any) -> "FaultInjector":
        for name, handler in self._handlers():
            events.register(name, handler, unique_id=f"{self._id}-{name}")
        return self

    def uninstall(self, events: Any) -> None:
        for name, handler in self._handlers():
            events.unregister(name, handler, unique_id=f"{self._id}-{name}")

    # ------------------------------------------------------------------ hooks
    def _before_parameter_build(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        service = model.service_model.service_id.hyphenize()
        kinds = applicable(service, model.name)
        if model.name == "BatchGetItem" and _key_count(params) < 2:
            kinds -= {"unprocessed-keys"}  # AWS answers at least one key, or throttles
        with self._lock:
            kind = self.plan.choose(service, model.name, kinds)
            if kind is None:
                return
            fault: dict[str, Any] = {
                "kind": kind,
                "service": service,
                "items": len(params.get("TransactItems", [])) or 1,
            }
            if kind == "unprocessed-keys":
                fault["withheld"] = self._withhold_keys(params)
            elif kind == "partial-failure":
                fault["withheld"], fault["short"] = self._withhold_entries(params)
        context[CONTEXT_KEY] = fault

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        fault = context.get(CONTEXT_KEY)
        if fault is None:
            return None
        kind, service = fault["kind"], fault["service"]
        url = f"https://{service}.amazonaws.com"
        if fault.get("short"):  # every entry fails: nothing is sent
            return AWSResponse(url, 200, {}, None), {"FailedEntryCount": 0, "Entries": []}
        if kind not in BEFORE:
            return None
        self._count(kind, service, model.name)
        with self._lock:
            self.plan.settle(model.name, kind, injected=True, committed=False)
        if kind == "connection-reset":
            raise ConnectionClosedError(endpoint_url=url)
        if kind == "connect-error":
            raise EndpointConnectionError(endpoint_url=url)
        status, parsed = self._error(kind, fault, model.name)
        return AWSResponse(url, status, {}, None), parsed

    def _needs_retry(
        self, response: Any, request_dict: dict[str, Any], operation: Any, **_: Any
    ) -> Any:
        fault = request_dict.get("context", {}).get(CONTEXT_KEY)
        if (
            fault is None
            or fault["kind"] != "resend-after-commit"
            or fault.get("resent")
            or response is None
            or response[0].status_code >= 300
        ):
            return None
        fault["resent"] = True
        self._count(fault["kind"], fault["service"], operation.name)
        return 0  # at once: botocore builds and sends the same request again

    def _after_call(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        fault = context.get(CONTEXT_KEY)
        ok = http_response.status_code < 300
        kind = None if fault is None else fault["kind"]
        if kind in BEFORE:
            return  # settled in before-call
        injected, committed = False, ok
        if fault is not None:
            if kind == "resend-after-commit":
                injected = bool(fault.get("resent"))
                committed = ok or injected
            else:
                injected = ok
        with self._lock:
            self.plan.settle(model.name, kind, injected, committed)
        if fault is None or not injected or kind == "resend-after-commit":
            return
        self._count(fault["kind"], fault["service"], model.name)
        if kind in PARTIAL:
            self._hand_back(fault["kind"], fault["withheld"], parsed)
            return
        url = f"https://{fault['service']}.amazonaws.com"
        if kind == "timeout-after-commit":
            raise ReadTimeoutError(endpoint_url=url)
        if kind == "reset-after-commit":
            raise ConnectionClosedError(endpoint_url=url)
        raise ClientError(self._error("internal-error", fault, model.name)[1], model.name)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ shapes
    def _error(self, kind: str, fault: dict[str, Any], operation: str) -> tuple[int, Any]:
        service = fault["service"]
        if kind == "internal-error":
            code = "InternalException" if service == "eventbridge" else "InternalServerError"
            return _error_body(500, code, "Internal server error")
        if kind == "throttling":
            return self._throttled(service, fault["items"], operation)
        if operation in TRANSACTIONS:  # a conflict, on a transaction
            return self._cancelled(fault["items"], "TransactionConflict", "Transaction is ongoing")
        return _error_body(
            400,
            "TransactionConflictException",
            "Operation was rejected because there is an ongoing transaction for the item",
        )

    def _throttled(self, service: str, items: int, operation: str) -> tuple[int, Any]:
        if service == "eventbridge":
            return _error_body(400, "ThrottlingException", "Rate exceeded")
        if service == "dynamodb-streams":
            return _error_body(400, "LimitExceededException", "Too many requests")
        if operation == "TransactWriteItems" and self._rng.random() < 0.5:
            return self._cancelled(items, "ThrottlingError", "Throughput exceeded")
        codes = ["ProvisionedThroughputExceededException", "ThrottlingException"]
        return _error_body(400, self._rng.choice(codes), "Throughput exceeds the capacity")

    def _cancelled(self, items: int, code: str, message: str) -> tuple[int, Any]:
        # One reason per item of the request, in order: one culprit, the rest None.
        culprit = self._rng.randrange(items)
        reasons = [
            {"Code": code, "Message": message} if index == culprit else {"Code": "None"}
            for index in range(items)
        ]
        status, body = _error_body(
            400,
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons"
            f" [{', '.join(reason['Code'] for reason in reasons)}]",
        )
        body["CancellationReasons"] = reasons
        return status, body

    def _withhold_keys(self, params: dict[str, Any]) -> dict[str, Any]:
        """Take some of BatchGetItem's keys out of the request (at least one stays);
        they come back as UnprocessedKeys, with each table's read options."""
        pairs = [(t, k) for t, spec in params["RequestItems"].items() for k in spec["Keys"]]
        withheld = self._rng.sample(pairs, self._rng.randint(1, len(pairs) - 1))
        out: dict[str, Any] = {}
        for table, key in withheld:
            spec = params["RequestItems"][table]
            spec["Keys"].remove(key)
            out.setdefault(table, {k: v for k, v in spec.items() if k != "Keys"} | {"Keys": []})
            out[table]["Keys"].append(key)
        for table in [t for t, spec in params["RequestItems"].items() if not spec["Keys"]]:
            del params["RequestItems"][table]
        return out

    def _withhold_entries(self, params: dict[str, Any]) -> tuple[list[int], bool]:
        """Take some of PutEvents' entries out of the request; when all of them fail,
        none is sent (the request stays whole: PutEvents needs at least one)."""
        entries = params["Entries"]
        count = self._rng.randint(1, len(entries))
        positions = sorted(self._rng.sample(range(len(entries)), count))
        if count == len(entries):
            return positions, True
        params["Entries"] = [e for i, e in enumerate(entries) if i not in positions]
        return positions, False

    @staticmethod
    def _hand_back(kind: str, withheld: Any, parsed: dict[str, Any]) -> None:
        if kind == "unprocessed-keys":
            unprocessed = parsed.setdefault("UnprocessedKeys", {})
            for table, spec in withheld.items():
                unprocessed.setdefault(table, {k: v for k, v in spec.items() if k != "Keys"})
                unprocessed[table].setdefault("Keys", []).extend(spec["Keys"])
            return
        entries = list(parsed.get("Entries", []))
        for position in withheld:
            failed = {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal failure"}
            entries.insert(position, failed)
        parsed["Entries"] = entries
        parsed["FailedEntryCount"] = parsed.get("FailedEntryCount", 0) + len(withheld)

    def _count(self, kind: str, service: str, operation: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.fired.append(f"{kind} on {operation}")
        if self._log is not None:
            self._log({LOG_KEY: kind, "service": service, "operation": operation})


def _key_count(params: dict[str, Any]) -> int:
    return sum(len(spec.get("Keys", [])) for spec in params.get("RequestItems", {}).values())


def _error_body(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
    }


# ---------------------------------------------------------------------- settings


def parse(spec: str, salt: str = "") -> RandomPlan:
    """``seed=7,rate=0.05[,kinds=throttling+transaction-conflict]``."""
    fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    unknown = set(fields) - {"seed", "rate", "kinds"}
    if unknown or "rate" not in fields:
        raise ValueError(f"{ENV}={spec!r}: expected seed=<n>,rate=<0..1>[,kinds=a+b]")
    kinds = fields["kinds"].split("+") if fields.get("kinds") else KINDS
    return RandomPlan(f"{fields.get('seed', '0')}{salt}", float(fields["rate"]), kinds)


def _stderr_log(record: dict[str, str]) -> None:
    line = record | {"function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()


def install_from_environment() -> FaultInjector | None:
    """In a Lambda: register on boto3's default session when FUNDROUTER_FAULTS is set.
    Each process has its own sequence, from the seed, the function and the process id."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    import boto3  # noqa: PLC0415 - only when faults are asked for

    salt = f"/{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', '')}/{os.getpid()}"
    injector = FaultInjector(parse(spec, salt), log=_stderr_log, seed=f"shapes{salt}")
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    return injector.install(boto3.DEFAULT_SESSION.events)
