"""What the bench's sections share: the repository's sample events, its tables on moto,
one counter of DynamoDB requests, batch writes, and one way to print a table."""

import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fundrouter.domain.lines import LineConfig

from tests.support import template
from tests.support.requests import Requests
from tests.support.template import ROOT

EVENTS = ROOT / "events"
REGION = "ap-east-1"


def event(relative: str) -> Any:
    return json.loads((EVENTS / relative).read_text())


def line_body(**changes: Any) -> dict[str, Any]:
    """events/api/put_line.json's body, with room for every order of a run."""
    body: dict[str, Any] = json.loads(event("api/put_line.json")["body"])
    return body | {"limit": 10**12, "dailyLimit": None} | changes


def line_config(**changes: Any) -> LineConfig:
    return LineConfig.model_validate(line_body(**changes))


def order_body(order_id: str) -> dict[str, Any]:
    """events/api/submit_order.json's body under another orderId."""
    body: dict[str, Any] = json.loads(event("api/submit_order.json")["body"])
    return body | {"orderId": order_id}


def create_tables(client: Any, **names: str) -> None:
    """Tables of template.yaml by logical id, e.g. OrdersTable="bench-orders"."""
    for logical, name in names.items():
        client.create_table(**template.create_table_kwargs(logical, name))


def put_all(client: Any, table: str, items: Sequence[dict[str, Any]]) -> None:
    """BatchWriteItem, 25 at a time, unprocessed items sent again (bounded)."""
    for start in range(0, len(items), 25):
        batch = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        for _ in range(20):
            batch = dict(client.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {})
            if not batch:
                break


class Calls(Requests):
    """tests/support's request counter, plus the errors the calls got back (a cancelled
    transaction with its cancellation reasons) and the retries botocore needed."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.errors: Counter[str] = Counter()
        self.retries = 0
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.retries += parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        code = parsed.get("Error", {}).get("Code")
        if code:
            reasons = {r.get("Code") for r in parsed.get("CancellationReasons", [])} - {None}
            detail = f" ({', '.join(sorted(reasons - {'None'}))})" if reasons - {"None"} else ""
            self.errors[f"{model.name} {code}{detail}"] += 1

    def counts(self) -> Counter[str]:
        return Counter(self.names) + self.errors

    def reset(self) -> None:
        self.names.clear()
        self.tables.clear()
        self.errors.clear()
        self.retries = 0


@dataclass
class Context:
    """The Lambda context a handler's decorators read."""

    function_name: str = "fundrouter-ApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        f"arn:aws:lambda:{REGION}:123456789012:function:fundrouter-ApiFunction"
    )
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"


@contextmanager
def offline_aws() -> Iterator[None]:
    """Dummy credentials and region, no profile or endpoint override, while moto runs:
    nothing may reach a real endpoint, and nothing of this leaks into the local stack's
    scripts afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "LAMBDA_TASK_ROOT"):
                patch.delenv(name)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "fundrouter",
            "POWERTOOLS_METRICS_NAMESPACE": "fundrouter",
        }.items():
            patch.setenv(name, value)
        yield


def ms(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e6:8.1f} ms"


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows under a head, as wide as their widest cells: the first column aligned left,
    the middle ones right, the last as it is; a short row's last cell runs on."""
    cells = [[str(c) for c in row] for row in [head, *rows]]
    full = [r for r in cells if len(r) == len(head)]
    widths = [max(len(r[i]) for r in full) for i in range(len(head))]
    for row in cells:
        parts = [
            cell.ljust(widths[i])
            if i == 0
            else cell
            if i == len(row) - 1
            else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(parts).rstrip())


def header(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))
