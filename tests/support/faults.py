"""DynamoDB faults injected into a real (moto) client through botocore's public
``before-call`` hook: a planned answer replaces the call before it reaches moto, the
way DynamoDB answers under contention or load (moto never does)."""

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

# A planned answer: a parsed response (an error when it has "Error"), one built from
# the call's parameters, or None to let the call through to moto.
Answer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None


def error(code: str, reasons: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A parsed error response; `reasons` for TransactionCanceledException."""
    status = 500 if code == "InternalServerError" else 400
    parsed: dict[str, Any] = {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if reasons is not None:
        parsed["CancellationReasons"] = reasons
    return parsed


def cancelled(*codes: str | None) -> dict[str, Any]:
    """A transaction cancelled with these reason codes (None: a reason without one)."""
    reasons = [{"Code": code} if code else {"Message": "no code"} for code in codes]
    return error("TransactionCanceledException", reasons)


def conflict(items: int, at: int = 0) -> dict[str, Any]:
    """What DynamoDB answers when a concurrent transaction holds item `at`."""
    codes: list[str | None] = ["None"] * items
    codes[at] = "TransactionConflict"
    return cancelled(*codes)


class Injected:
    """Answers calls of `operation` on `client` from a plan, in order, while `when`
    holds for the call's parameters (as sent, in DynamoDB's JSON); then (or when it
    does not) they reach moto.
    `calls` counts the calls seen, `answered` the planned answers given."""

    def __init__(
        self,
        client: Any,
        operation: str,
        plan: list[Answer],
        when: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> None:
        self.plan = list(plan)
        self.when = when
        self.calls = 0
        self.answered = 0
        client.meta.events.register(f"before-call.dynamodb.{operation}", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        self.calls += 1
        request = json.loads(params["body"])  # the operation's parameters, as sent
        if not self.plan or not self.when(request):
            return None
        answer = self.plan.pop(0)
        if answer is None:
            return None
        if callable(answer):
            answer = answer(request)
        self.answered += 1
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        return SimpleNamespace(status_code=status, headers={}), answer


def always(answer: Answer, times: int = 50) -> list[Answer]:
    return [answer] * times


def unprocessed(params: dict[str, Any]) -> dict[str, Any]:
    """A BatchGetItem answer that read none of the keys asked for (DynamoDB may, at
    any size, when a partition is busy)."""
    tables = params["RequestItems"]
    return {"Responses": {table: [] for table in tables}, "UnprocessedKeys": tables}
