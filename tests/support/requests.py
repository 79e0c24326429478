"""DynamoDB requests counted as a client makes them, with botocore's event hooks."""

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
