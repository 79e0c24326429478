"""What the bench's sections share: dummy AWS settings for moto, its tables, a line
and its counters, a backlog of expired holds, latency figures by the CLI's
statistics, and one way to print a table."""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fundrouter.domain.clock import utc_now
from fundrouter.domain.lifecycle import matched
from fundrouter.domain.lines import LineConfig, LineRecord
from fundrouter.domain.orders import OrderStatus
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.orders import ORDER_SK, order_item, order_pk
from fundrouter.persistence.retries import batch_get
from fundrouter_cli.stats import summarize

from tests.support import factories, template
from tests.support.aws import put_all
from tests.support.orders import DECISION, received

REGION = "ap-east-1"


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
def offline_aws() -> Iterator[None]:
    """Dummy credentials and region, no profile or endpoint override, while moto runs:
    nothing may reach a real endpoint, and nothing of this leaks into the local stack's
    scripts afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "LAMBDA_TASK_ROOT"):
                patch.delenv(name)
        settings = "AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN"
        for name in settings.split():
            patch.setenv(name, "testing")
        for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            patch.setenv(name, REGION)
        patch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("POWERTOOLS_SERVICE_NAME", "fundrouter")
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "fundrouter")
        yield


def ms(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e6:8.1f} ms"


def spread(nanoseconds: Sequence[float]) -> list[str]:
    """Median, p90, min and max, in ms."""
    found = summarize(nanoseconds, (50.0, 90.0))
    if found is None:
        raise SystemExit("no latencies")
    return [ms(v) for v in (*found.percentiles.values(), found.minimum, found.maximum)]


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


def set_counters(client: Any, lines_table: str, line_id: str, **numbers: int) -> None:
    """The line item's counters and counts (by attribute name) set as its orders would."""
    client.update_item(
        TableName=lines_table,
        Key={"pk": {"S": line_pk(line_id)}, "sk": {"S": LINE_SK}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in numbers),
        ExpressionAttributeNames={f"#{name}": name for name in numbers},
        ExpressionAttributeValues={f":{name}": {"N": str(n)} for name, n in numbers.items()},
    )


@dataclass
class Backlog:
    """Expired holds on lines (expired_holds), and what is left of them."""

    client: Any
    tables: dict[str, str]
    line_ids: list[str]
    keys: list[dict[str, Any]]

    def lines(self) -> list[LineRecord]:
        found = map(DynamoLineRepository(self.client, self.tables["LinesTable"]).get, self.line_ids)
        return [record for record in found if record is not None]

    def reserved(self) -> int:
        return sum(record.line.counters.reserved for record in self.lines())

    def left(self) -> tuple[int, int, int]:
        """Orders not EXPIRED, the lines' reserved and MATCHED count."""
        items = batch_get(self.client, self.tables["OrdersTable"], self.keys)
        expired = sum(item["status"]["S"] == "EXPIRED" for item in items)
        matched = sum(record.orders.get(OrderStatus.MATCHED, 0) for record in self.lines())
        return len(self.keys) - expired, self.reserved(), matched


def expired_holds(client: Any, tables: dict[str, str], line_ids: list[str], holds: int) -> Backlog:
    """`holds` MATCHED orders over the lines whose holds expired a minute ago, as the
    matcher writes them, and each line's counters and day holding exactly their sum."""
    now, amount = utc_now(), 10_000
    lines = DynamoLineRepository(client, tables["LinesTable"])
    config = line_config(limit=10**15, minAmount=amount)
    records = [lines.put_config(line_id, config, now).line for line_id in line_ids]
    then, day = now - timedelta(minutes=16), records[0].day_of(now)

    orders = []
    for n in range(holds):
        line, order = records[n % len(records)], received(f"expiry-{n:06d}", amount, then)
        expires = now - timedelta(minutes=1)
        orders.append(
            matched(order, line_id=line.line_id, funder_id=line.config.funder_id, now=then,
                    hold_expires_at=expires, claim_day=day, decision=DECISION)
        )  # fmt: skip
    put_all(client, tables["OrdersTable"], [order_item(o) for o in orders])
    for line in records:
        total = amount * (count := sum(o.line_id == line.line_id for o in orders))
        set_counters(
            client, tables["LinesTable"], line.line_id, reserved=total, held=total, nMatched=count
        )
        used = {"used": {"N": str(total)}, "lineId": {"S": line.line_id}}
        client.put_item(TableName=tables["LinesTable"], Item=day_key(line.line_id, day) | used)
    return Backlog(client, tables, line_ids, [order_key(o.tenant_id, o.order_id) for o in orders])
