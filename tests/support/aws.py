"""What a handler test needs of AWS besides moto: a Lambda context, and a table read
back whole."""

from dataclasses import dataclass
from typing import Any


@dataclass
class FakeLambdaContext:
    function_name: str = "fundrouter-ApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:ap-east-1:123456789012:function:fundrouter-ApiFunction"
    )
    aws_request_id: str = "5b2f6f9a-1c1e-4b8a-9d0e-2f5f1a3b4c5d"
    remaining_millis: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def put_all(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    """BatchWriteItem, 25 at a time, unprocessed items sent again (bounded)."""
    for start in range(0, len(items), 25):
        batch = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        for _ in range(20):
            batch = dict(client.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {})
            if not batch:
                break
