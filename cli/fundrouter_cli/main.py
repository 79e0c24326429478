"""The `fundrouter` command: lines, orders, watch, demo and load over the HTTP API.

Settings come from flags, then FUNDROUTER_* environment variables, then
.fundrouter/local.env (found from the current directory upward; `make up` writes it)
or the file --env-file names.
"""

import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import typer
from rich.table import Table

from fundrouter_cli import __version__, render
from fundrouter_cli import watch as watching
from fundrouter_cli.config import (
    ADMIN_CLIENT_ID,
    ADMIN_CLIENT_SECRET,
    API_URL,
    TENANT_CLIENT_ID,
    TENANT_CLIENT_SECRET,
    TOKEN_URL,
)
from fundrouter_cli.demo import run_demo, seed_lines
from fundrouter_cli.errors import BadInput, CliError
from fundrouter_cli.load import CAPACITY_SHARE, run_load
from fundrouter_cli.ui import Runtime, command, runtime

app = typer.Typer(
    name="fundrouter",
    help="Operate a fundrouter stack through its HTTP API: lines, orders, watch, demo, load.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
line_app = typer.Typer(help="Create, replace, pause, resume and show lending lines (admin).")
order_app = typer.Typer(help="Submit orders, show them, report what happened to them.")
app.add_typer(line_app, name="line")
app.add_typer(order_app, name="order")

# Parameters several commands take, declared once (typer copies them per command).
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
Id = Annotated[str, typer.Argument(metavar="ID")]
Seed = Annotated[int | None, typer.Option(help="same seed, same orders")]
DecisionTimeout = Annotated[float, typer.Option(help="seconds to wait for decisions")]
Yes = Annotated[bool, typer.Option("--yes", help="write to a non-local stack")]

# The event types of POST /v1/orders/{id}/events as the HTTP contract names them: the
# CLI speaks the contract and does not import the layer's domain.
EventType = Literal["APPROVED", "DECLINED", "CANCELLED", "DISBURSED", "REPAID"]
AMOUNT_EVENTS: Final = frozenset({"DISBURSED", "REPAID"})

# Fields GET /v1/lines/{id} serves that are not configuration: dropped from `line put`
# input, so a line read back can be edited and put again.
READ_ONLY_LINE_FIELDS = frozenset(
    {
        "lineId",
        "reserved",
        "drawn",
        "available",
        "usedToday",
        "availableToday",
        "day",
        "warnings",
        "configVersion",
        "createdAt",
        "updatedAt",
        "orders",
    }
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"fundrouter {__version__}")
        raise typer.Exit


def _setting(help_text: str) -> Any:
    """A flag for one setting: none means the environment or the settings file."""
    return typer.Option(help=help_text, show_default=False)


@app.callback()
def main(
    ctx: typer.Context,
    *,
    api_url: Annotated[str | None, _setting(f"API base URL (env: {API_URL})")] = None,
    token_url: Annotated[str | None, _setting(f"OAuth2 token URL (env: {TOKEN_URL})")] = None,
    tenant_client_id: Annotated[str | None, _setting(f"(env: {TENANT_CLIENT_ID})")] = None,
    tenant_client_secret: Annotated[
        str | None, _setting(f"better: env {TENANT_CLIENT_SECRET}")
    ] = None,
    admin_client_id: Annotated[str | None, _setting(f"(env: {ADMIN_CLIENT_ID})")] = None,
    admin_client_secret: Annotated[
        str | None, _setting(f"better: env {ADMIN_CLIENT_SECRET}")
    ] = None,
    env_file: Annotated[
        Path | None, _setting("settings file (default: .fundrouter/local.env here or above)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each HTTP answer")] = 30.0,
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Operate a fundrouter stack through its HTTP API.

    Settings: flags, then FUNDROUTER_* environment variables, then
    .fundrouter/local.env (written by `make up`) or --env-file.
    """
    ctx.obj = Runtime(
        flags={
            API_URL: api_url,
            TOKEN_URL: token_url,
            TENANT_CLIENT_ID: tenant_client_id,
            TENANT_CLIENT_SECRET: tenant_client_secret,
            ADMIN_CLIENT_ID: admin_client_id,
            ADMIN_CLIENT_SECRET: admin_client_secret,
        },
        env_file=env_file,
        timeout=timeout,
    )


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------- config
@command(app)
def config(
    ctx: typer.Context,
    *,
    check: Annotated[
        bool, typer.Option("--check", help="get both tokens and call the API once each")
    ] = False,
) -> None:
    """Show the settings in use and where each comes from (secrets masked)."""
    rt = runtime(ctx)
    settings = rt.settings
    table = Table(title="Settings", header_style="bold", show_edge=False)
    for name in ("Setting", "Value", "From"):
        table.add_column(name, overflow="fold")
    for name, value, source in settings.describe():
        table.add_row(name, value, source)
    rt.console.print(table)
    if not check:
        return
    lines = rt.client.list_lines()
    rt.console.print(f"[green]✓[/] admin client: token issued, {len(lines)} lines listed")
    orders, _ = rt.client.list_orders(limit=1)
    rt.console.print(f"[green]✓[/] tenant client: token issued, orders listed ({len(orders)})")


# ---------------------------------------------------------------------- lines
@command(app)
def lines(
    ctx: typer.Context,
    *,
    exact: Annotated[bool, typer.Option(help="full amounts instead of 12.5K / 3.00M")] = False,
    as_json: AsJson = False,
) -> None:
    """Every line: limit, reserved, drawn, available, today's usage, utilization."""
    rt = runtime(ctx)
    items = rt.client.list_lines()
    if as_json:
        _print_json(items)
        return
    rt.console.print(render.lines_table(items, exact=exact))
    for line in items:
        _print_warnings(rt, line, f"{line.get('lineId')}:")


def _print_warnings(rt: Runtime, line: dict[str, Any], label: str = "warning:") -> None:
    for warning in line.get("warnings") or []:
        rt.console.print(f"[yellow]{label}[/] {warning.get('message')}")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {path}: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None


def _line_bodies(
    document: Any, line_id: str | None, path: Path
) -> list[tuple[str, dict[str, Any]]]:
    items = document if isinstance(document, list) else [document]
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        items = document["items"]  # the output of `fundrouter lines --json` wrapped as the API
    if line_id is not None and len(items) != 1:
        raise BadInput("--id names one line, but the file holds several")
    bodies = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadInput(f"{path}: entry {index} is not a JSON object")
        chosen = line_id or item.get("lineId")
        if not isinstance(chosen, str) or not chosen:
            raise BadInput(
                f"{path}: entry {index} has no lineId",
                'add "lineId": "..." to the file or pass --id',
            )
        bodies.append((chosen, {k: v for k, v in item.items() if k not in READ_ONLY_LINE_FIELDS}))
    if not bodies:
        raise BadInput(f"{path} holds no line")
    return bodies


@command(line_app, "put")
def line_put(
    ctx: typer.Context,
    *,
    file: Annotated[Path, typer.Argument(help="a line as JSON (or a list of lines)")],
    line_id: Annotated[
        str | None, typer.Option("--id", help="line id, if the file has no lineId")
    ] = None,
) -> None:
    """Create or replace lines from FILE.json (the body of PUT /v1/lines/{lineId}).

    Output of `fundrouter line show ID --json` can be edited and put back."""
    rt = runtime(ctx)
    stored = []
    for chosen, body in _line_bodies(_read_json(file), line_id, file):
        try:
            line, created = rt.client.put_line(chosen, body)
        except CliError as error:
            error.message = f"line {chosen}: {error.message}"
            raise
        stored.append(line)
        rt.console.print(f"{'created' if created else 'replaced'} line [bold]{chosen}[/]")
        _print_warnings(rt, line)
    rt.console.print(render.lines_table(stored, title=""))
    rt.console.print(
        "[grey50]the matcher sees new configuration within 5 s (its line catalog cache)[/]"
    )


def _set_status(ctx: typer.Context, line_id: str, status: str) -> None:
    rt = runtime(ctx)
    line = rt.client.patch_line(line_id, {"status": status})
    rt.console.print(f"line [bold]{line_id}[/] is now {line.get('status')}")
    rt.console.print(render.lines_table([line], title=""))


@command(line_app, "pause")
def line_pause(ctx: typer.Context, line_id: Id) -> None:
    """Stop new claims on a line (what it holds stays held)."""
    _set_status(ctx, line_id, "PAUSED")


@command(line_app, "resume")
def line_resume(ctx: typer.Context, line_id: Id) -> None:
    """Let a paused line take claims again."""
    _set_status(ctx, line_id, "ACTIVE")


@command(line_app, "show")
def line_show(
    ctx: typer.Context,
    *,
    line_id: Id,
    as_json: AsJson = False,
) -> None:
    """One line's configuration and utilization."""
    rt = runtime(ctx)
    line = rt.client.get_line(line_id)
    if as_json:
        _print_json(line)
        return
    rt.console.print(render.line_detail(line))
    _print_warnings(rt, line)


# ---------------------------------------------------------------------- status events
@command(app)
def republish(
    ctx: typer.Context,
    *,
    limit: Annotated[int, typer.Option(min=1, max=500, help="letters to read per API call")] = 100,
    as_json: AsJson = False,
) -> None:
    """Publish again the status events the tracker could not publish (admin).

    Each letter on the unpublished-events queue names an order; its status is read
    from the table now and published with the current version. Repeats while the
    queue has more; exits 1 if the bus refused some (they stay queued: run it again).
    """
    rt = runtime(ctx)
    runs: list[dict[str, Any]] = []
    while True:
        report = rt.client.republish_status_events(limit)
        runs.append(report)
        if not report.get("more") or not report.get("republished"):
            break
    failed = [f for r in runs for f in r.get("failed") or []]
    if as_json:
        _print_json(runs)
    else:
        for done in (e for r in runs for e in r.get("republished") or []):
            rt.console.print(
                f"republished {done['tenantId']}/{done['orderId']} "
                f"{done['status']} (version {done['version']})"
            )
        for gone in (m for r in runs for m in r.get("missing") or []):
            rt.console.print(f"[yellow]no such order:[/] {gone['tenantId']}/{gone['orderId']}")
        for refused in failed:
            rt.console.print(
                f"[red]not published:[/] {refused['tenantId']}/{refused['orderId']} "
                f"({refused['reason']})"
            )
        letters = sum(int(r.get("letters") or 0) for r in runs)
        rt.console.print(f"{letters} letters read, {len(failed)} left on the queue")
    if failed:
        raise CliError(
            f"{len(failed)} status events were not published",
            hint="they stay on the queue: run `fundrouter republish` again later",
        )


# ---------------------------------------------------------------------- orders
def _metadata(pairs: list[str]) -> dict[str, str]:
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"--meta {pair!r}: expected KEY=VALUE")
        metadata[key] = value
    return metadata


def _order_body(
    file: Path | None,
    flags: dict[str, Any],
    person: dict[str, str | None],
    metadata: dict[str, str],
) -> dict[str, Any]:
    """The order from FILE (if any), its fields overridden by the flags given, and
    defaults for what neither says."""
    body: dict[str, Any] = {}
    if file is not None:
        loaded = _read_json(file)
        if not isinstance(loaded, dict):
            raise BadInput(f"{file}: expected one order as a JSON object")
        body = loaded
    if flags.get("amount") is None and "amount" not in body:
        raise BadInput("--amount is required (minor units: 1250000 CNY is 12,500.00 yuan)")
    customer = dict(body.get("customer") or {})
    customer.update({k: v for k, v in person.items() if v is not None})
    customer.setdefault("id", f"c-{uuid.uuid4().hex[:8]}")
    body = body | {k: v for k, v in flags.items() if v is not None} | {"customer": customer}
    body.setdefault("orderId", f"cli-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
    body.setdefault("currency", "CNY")
    body.setdefault("termMonths", 12)
    body.setdefault("product", "installment")
    if metadata:
        body["metadata"] = dict(body.get("metadata") or {}) | metadata
    return body


@command(order_app, "submit")
def order_submit(
    ctx: typer.Context,
    *,
    file: Annotated[
        Path | None, typer.Argument(help="an order as JSON; flags override its fields")
    ] = None,
    order_id: Annotated[
        str | None, typer.Option("--order-id", help="your id (default: generated)")
    ] = None,
    amount: Annotated[
        int | None, typer.Option(help="in minor units (fen, cents): 1250000 = 12,500.00")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217, default CNY")] = None,
    term: Annotated[int | None, typer.Option(help="term in months, default 12")] = None,
    product: Annotated[str | None, typer.Option(help="default installment")] = None,
    customer: Annotated[str | None, typer.Option(help="customer id, default generated")] = None,
    region: Annotated[str | None, typer.Option(help="customer's region, e.g. GD")] = None,
    grade: Annotated[str | None, typer.Option(help="customer's credit grade, e.g. B")] = None,
    meta: Annotated[list[str] | None, typer.Option(help="KEY=VALUE metadata, repeatable")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the matcher's decision")] = True,
    wait_seconds: Annotated[float, typer.Option("--wait-seconds", help="how long")] = 15.0,
    as_json: AsJson = False,
) -> None:
    """Submit an order (POST /v1/orders) and show where it went."""
    rt = runtime(ctx)
    person = {"id": customer, "region": region, "creditGrade": grade}
    flags = {
        "orderId": order_id,
        "amount": amount,
        "currency": currency,
        "termMonths": term,
        "product": product,
    }
    body = _order_body(file, flags, person, _metadata(meta or []))
    order, created = rt.client.submit_order(body)
    if not as_json:
        rt.console.print(
            f"{'submitted' if created else 'already submitted (same content)'}:"
            f" order [bold]{order.get('orderId')}[/]"
        )
    if wait:
        order = _await_decision(rt, order, wait_seconds)
    if as_json:
        _print_json(order)
        return
    rt.console.print(render.order_view(order))
    if order.get("status") == "RECEIVED" and wait:
        rt.console.print(f"[yellow]no decision within {wait_seconds:g} s[/]: is the matcher up?")


def _await_decision(rt: Runtime, order: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The order as read again until the matcher has decided it or `seconds` pass."""
    if order.get("status") != "RECEIVED":
        return order
    deadline = time.monotonic() + seconds
    with rt.console.status("waiting for the matcher's decision"):
        while order.get("status") == "RECEIVED" and time.monotonic() < deadline:
            time.sleep(0.25)
            order = rt.client.get_order(str(order["orderId"]))
    return order


@command(order_app, "show")
def order_show(
    ctx: typer.Context,
    *,
    order_id: Id,
    tenant: Annotated[
        str | None, typer.Option(help="another tenant's order (admin client)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Status, line, decision with each candidate's reason, and history."""
    rt = runtime(ctx)
    order = rt.client.get_order(order_id, tenant)
    if as_json:
        _print_json(order)
    else:
        rt.console.print(render.order_view(order))


@command(order_app, "event")
def order_event(
    ctx: typer.Context,
    *,
    order_id: Id,
    event_type: Annotated[
        EventType, typer.Argument(metavar="TYPE", case_sensitive=False, help="what happened")
    ],
    amount: Annotated[
        int | None,
        typer.Argument(metavar="[AMOUNT]", help="minor units; DISBURSED and REPAID only"),
    ] = None,
    event_id: Annotated[
        str | None, typer.Option(help="idempotency key (default: generated)")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="free text, e.g. why declined")] = None,
    as_json: AsJson = False,
) -> None:
    """Report APPROVED, DECLINED, CANCELLED, DISBURSED AMOUNT or REPAID AMOUNT."""
    rt = runtime(ctx)
    needs_amount = event_type in AMOUNT_EVENTS
    if needs_amount and amount is None:
        raise BadInput(f"{event_type} needs an AMOUNT (minor units)")
    if not needs_amount and amount is not None:
        raise BadInput(f"{event_type} takes no AMOUNT (only DISBURSED and REPAID do)")
    event: dict[str, Any] = {
        "eventId": event_id or f"cli-{uuid.uuid4().hex[:16]}",
        "type": event_type,
    }
    if amount is not None:
        event["amount"] = amount
    if reason is not None:
        event["reason"] = reason
    before = rt.client.get_order(order_id)
    if isinstance(before.get("lineId"), str):
        # The event is for the line the order is on now: if it is re-routed meanwhile,
        # the API refuses it (409 line_mismatch) rather than move the other line's order.
        event["lineId"] = before["lineId"]
    order = rt.client.post_event(order_id, event)
    if as_json:
        _print_json(order)
        return
    rt.console.print(
        f"{order_id}: {before.get('status')} → [bold]{order.get('status')}[/]"
        f" (version {order.get('version')}, event {event['eventId']})"
    )
    if event_type == "DECLINED":
        rt.console.print("[grey50]the matcher routes it again, to any line but this one[/]")
    rt.console.print(render.order_view(order))


@command(order_app, "list")
def order_list(
    ctx: typer.Context,
    *,
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    tenant: Annotated[str | None, typer.Option(help="another tenant (admin client)")] = None,
) -> None:
    """The newest orders."""
    rt = runtime(ctx)
    items, cursor = rt.client.list_orders(
        limit=limit, status=status.upper() if status else None, tenant=tenant
    )
    table = Table(title=f"Newest {len(items)} orders", header_style="bold", show_edge=False)
    for name in ("Order", "Status", "Amount", "Line", "Product", "Created"):
        table.add_column(name, justify="right" if name == "Amount" else "left", no_wrap=True)
    for order in items:
        currency = str(order.get("currency", ""))
        table.add_row(
            str(order.get("orderId")),
            render.styled_status(str(order.get("status"))),
            f"{render.money(order.get('amount'), currency)} {currency}",
            str(order.get("lineId") or "-"),
            str(order.get("product")),
            str(order.get("createdAt")),
        )
    rt.console.print(table)
    if cursor:
        rt.console.print("[grey50]more: use --limit or `fundrouter watch`[/]")


# ---------------------------------------------------------------------- watch
@command(app)
def watch(
    ctx: typer.Context,
    *,
    limit: Annotated[int, typer.Option(min=1, max=100, help="how many newest orders")] = 100,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between polls")] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--for", help="stop after this many seconds")
    ] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many changes")] = None,
    tenant: Annotated[str | None, typer.Option(help="another tenant (admin client)")] = None,
) -> None:
    """Print status changes of the newest orders as they happen (Ctrl-C stops).

    Polls GET /v1/orders newest first: changes of orders older than the newest
    LIMIT are not seen."""
    rt = runtime(ctx)
    items, _ = rt.client.list_orders(limit=limit, tenant=tenant)
    seen = watching.snapshot(items)
    stop = f" for {duration:g} s" if duration is not None else "; Ctrl-C stops"
    rt.console.print(
        f"[grey50]watching the newest {limit} orders (now {len(items)}), every {interval:g} s"
        f"{stop}[/]"
    )
    deadline = None if duration is None else time.monotonic() + duration
    printed = 0
    while deadline is None or time.monotonic() < deadline:
        time.sleep(
            interval if deadline is None else max(0, min(interval, deadline - time.monotonic()))
        )
        items, _ = rt.client.list_orders(limit=limit, tenant=tenant)
        found, seen = watching.changes(seen, items)
        for change in found:
            rt.console.print(watching.describe(change))
            printed += 1
            if count is not None and printed >= count:
                return
    rt.console.print(f"[grey50]{printed} changes[/]")


# ---------------------------------------------------------------------- demo, load
@command(app)
def demo(
    ctx: typer.Context,
    *,
    orders: Annotated[int, typer.Option(min=1, max=5000, help="how many orders")] = 300,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="parallel requests")] = 8,
    seed: Seed = None,
    timeout: DecisionTimeout = 120.0,
    yes: Yes = False,
    lines_only: Annotated[
        bool, typer.Option("--lines-only", help="seed the funders' lines and stop (make up)")
    ] = False,
) -> None:
    """Seed funders and lines, submit varied orders, drive them through their lifecycle."""
    rt = runtime(ctx)
    rt.confirm_writes("demo", yes)
    if lines_only:
        seed_lines(rt)
        return
    code = run_demo(rt, orders, concurrency, seed, timeout)
    if code:
        raise typer.Exit(code)


@command(app)
def load(
    ctx: typer.Context,
    *,
    orders: Annotated[int, typer.Option(min=1, max=100_000, help="how many orders")] = 500,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="parallel requests")] = 8,
    events: Annotated[
        bool, typer.Option(help="also approve, disburse, repay, cancel and decline")
    ] = True,
    rate: Annotated[
        float | None, typer.Option(min=0.1, help="orders a second (default: as fast as they go)")
    ] = None,
    capacity: Annotated[
        float,
        typer.Option(
            min=0.1, max=10.0, help="the run's lines hold this share of its orders' amount"
        ),
    ] = CAPACITY_SHARE,
    seed: Seed = None,
    timeout: DecisionTimeout = 180.0,
    yes: Yes = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the figures as JSON (the report on stderr)")
    ] = False,
) -> None:
    """Generate load; report throughput and latency; audit the invariant (exit 1 if broken)."""
    rt = runtime(ctx)
    rt.confirm_writes("load", yes)
    if as_json:
        rt.console = rt.err
    code, figures = run_load(
        rt,
        orders,
        concurrency,
        timeout,
        seed,
        events=events,
        rate=rate,
        capacity=capacity,
    )
    if as_json:
        _print_json(figures)
    if code:
        raise typer.Exit(code)
