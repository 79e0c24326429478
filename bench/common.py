"""What the bench's sections share: moto with Lambda's dummy settings, the template's
tables, a line and orders holding capacity on it, the API's answers timed, latency
figures by the CLI's statistics, and one way to print a table."""

import copy
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3
import pytest
from fundrouter.domain.clock import utc_now
from fundrouter.domain.lifecycle import EventType, OrderEvent, apply_event, matched
from fundrouter.domain.lines import LineConfig, LineRecord
from fundrouter.domain.orders import OrderStatus
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.orders import ORDER_SK, order_item, order_pk
from fundrouter.persistence.retries import batch_get
from fundrouter_cli.stats import summarize
from moto import mock_aws

from tests.support import factories, template
from tests.support.api import api, serve
from tests.support.aws import put_all
from tests.support.handlers import LAMBDA_ENV
from tests.support.moto_speed import speed_up_moto
from tests.support.orders import DECISION, received

AMOUNT = 10_000


def line_config(**changes: Any) -> LineConfig:
    """events/api/put_line.json's line, with room for every order of a run."""
    return factories.line_config(
        factories.API_EXAMPLE, {"limit": 10**12, "dailyLimit": None}, **changes
    )


def order_key(tenant_id: str, order_id: str) -> dict[str, Any]:
    return {"pk": {"S": order_pk(tenant_id, order_id)}, "sk": {"S": ORDER_SK}}


def create_tables(client: Any, **names: str) -> None:
    """Tables of template.yaml by logical id, e.g. OrdersTable="bench-orders"."""
    for logical, name in names.items():
        client.create_table(**template.create_table_kwargs(logical, name))


@contextmanager
def moto(faster: bool = False, **tables: str) -> Iterator[Any]:
    """A DynamoDB client of moto with `tables` (create_tables), in Lambda's environment
    with dummy credentials and no profile or endpoint override (nothing may reach a real
    one, nothing leaks into the local stack's scripts afterwards); `faster`:
    tests/support/moto_speed's shortcuts."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "LAMBDA_TASK_ROOT"):
                patch.delenv(name)
        for setting in [*LAMBDA_ENV.split(), "AWS_EC2_METADATA_DISABLED=true"]:
            patch.setenv(*setting.split("=", 1))
        if faster:
            speed_up_moto(patch)
        client = boto3.client("dynamodb")
        create_tables(client, **tables)
        yield client


def timed(event: dict[str, Any], status: int, **services: object) -> int:
    """Nanoseconds the ApiFunction's app took to answer `event`, with `status`."""
    start = time.perf_counter_ns()
    response = serve(copy.deepcopy(event), **services)
    took = time.perf_counter_ns() - start
    api.metrics.clear_metrics()  # log_metrics would flush and clear them per invocation
    if response["statusCode"] != status:
        raise SystemExit(f"{event['rawPath']}: expected {status}, got {response}")
    return took


def spread(nanoseconds: Sequence[float]) -> list[str]:
    """Median, p90, min and max, in ms."""
    found = summarize(nanoseconds, (50.0, 90.0))
    if found is None:
        raise SystemExit("no latencies")
    values = (*found.percentiles.values(), found.minimum, found.maximum)
    return [f"{v / 1e6:8.1f} ms" for v in values]


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows under a head, as wide as their widest cells: the first column aligned left,
    the middle ones right, the last as it is; a short row's last cell runs on."""
    cells = [[str(c) for c in row] for row in [head, *rows]]
    full = [r for r in cells if len(r) == len(head)]
    widths = [max(len(r[i]) for r in full) for i in range(len(head))]
    for row in cells:
        last = len(row) - 1
        parts = [
            c.ljust(widths[i]) if i == 0 else c if i == last else c.rjust(widths[i])
            for i, c in enumerate(row)
        ]
        print("  ".join(parts).rstrip())


def header(title: str) -> None:
    print(f"\n{title}\n{'=' * len(title)}")


def holding(
    client: Any,
    tables: dict[str, str],
    record: LineRecord,
    names: list[str],
    disbursed: bool = False,
) -> list[dict[str, Any]]:
    """Orders named `names` on the line, MATCHED with holds that expired a minute ago
    (or then DISBURSED), written straight in as the matcher and the lifecycle leave
    them, and added to the line's counters, counts and day. Their keys."""
    line, now = record.line, utc_now()
    then, day = now - timedelta(minutes=16), line.day_of(now)
    event = OrderEvent(event_id="bench", type=EventType.DISBURSED, amount=AMOUNT)
    orders = []
    for name in names:
        order = matched(received(name, AMOUNT, then), line_id=line.line_id, now=then,
                        funder_id=line.config.funder_id, claim_day=day,
                        hold_expires_at=now - timedelta(minutes=1), decision=DECISION)  # fmt: skip
        orders.append(apply_event(order, event, now).order if disbursed else order)
    put_all(client, tables["OrdersTable"], [order_item(order) for order in orders])
    total, count = len(names) * AMOUNT, len(names)
    added = (
        {"drawn": total, "nDisbursed": count}
        if disbursed
        else {"reserved": total, "nMatched": count}
    )
    keys = [({"pk": {"S": line_pk(line.line_id)}, "sk": {"S": LINE_SK}}, added | {"held": total})]
    keys += [] if disbursed else [(day_key(line.line_id, day), {"used": total})]
    for key, numbers in keys:
        client.update_item(
            TableName=tables["LinesTable"],
            Key=key,
            UpdateExpression="SET lineId = :id ADD " + ", ".join(f"#{k} :{k}" for k in numbers),
            ExpressionAttributeNames={f"#{name}": name for name in numbers},
            ExpressionAttributeValues={f":{name}": {"N": str(n)} for name, n in numbers.items()}
            | {":id": {"S": line.line_id}},
        )
    return [order_key(o.tenant_id, o.order_id) for o in orders]


def expired_holds(
    client: Any, tables: dict[str, str], line_id: str, holds: int
) -> Callable[..., tuple[int, int, int]]:
    """`holds` expired holds on a new line; what is left of them, when asked: orders
    not EXPIRED (if `orders`), the line's reserved and MATCHED count."""
    lines = DynamoLineRepository(client, tables["LinesTable"])
    record = lines.put_config(line_id, line_config(limit=10**15, minAmount=AMOUNT), utc_now())
    keys = holding(client, tables, record, [f"expiry-{i:06d}" for i in range(holds)])

    def left(orders: bool = True) -> tuple[int, int, int]:
        items = batch_get(client, tables["OrdersTable"], keys) if orders else []
        expired = sum(item["status"]["S"] == "EXPIRED" for item in items)
        if (line := lines.get(line_id)) is None:
            raise SystemExit(f"{line_id} is gone")
        held = line.orders.get(OrderStatus.MATCHED, 0)
        return len(keys) - expired, line.line.counters.reserved, held

    return left
