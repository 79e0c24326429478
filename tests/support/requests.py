"""DynamoDB requests counted as a client makes them, with botocore's event hooks."""

from collections import Counter
from typing import Any


class Requests:
    """Each request's operation (`names`) and the tables it names (`tables`)."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        self.tables: list[set[str]] = []
        events = client.meta.events
        events.register("before-call.dynamodb.*", lambda model, **_: self.names.append(model.name))
        # The call's own arguments, before they are serialized.
        events.register("before-parameter-build.dynamodb.*", self._tables)

    def _tables(self, params: dict[str, Any], **_: Any) -> None:
        named = {params["TableName"]} if "TableName" in params else set()
        named |= set(params.get("RequestItems", {}))
        for write in params.get("TransactItems", []):
            named |= {operation["TableName"] for operation in write.values()}
        self.tables.append(named)


class Answers(Requests):
    """Requests, and what each got back: `calls` (operation, parameters, parsed answer),
    the errors by operation and code (a cancelled transaction with its reasons) and the
    retries botocore needed. The benches' one counter."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.errors: Counter[str] = Counter()
        self.retries = 0
        self._params: dict[str, Any] = {}
        client.meta.events.register("before-parameter-build.dynamodb.*", self._asked)
        client.meta.events.register("after-call.dynamodb.*", self._answered)

    def _asked(self, params: dict[str, Any], **_: Any) -> None:
        self._params = params

    def _answered(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, self._params, parsed))
        self.retries += parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if code := parsed.get("Error", {}).get("Code"):
            reasons = {r.get("Code") for r in parsed.get("CancellationReasons", [])} - {
                None,
                "None",
            }
            detail = f" ({', '.join(sorted(reasons))})" if reasons else ""
            self.errors[f"{model.name} {code}{detail}"] += 1

    def counts(self) -> Counter[str]:
        return Counter(self.names) + self.errors

    def reset(self) -> None:
        self.names.clear()
        self.tables.clear()
        self.calls.clear()
        self.errors.clear()
        self.retries = 0
