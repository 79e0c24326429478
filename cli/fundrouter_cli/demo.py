"""`fundrouter demo`: a realistic afternoon on a funding router.

Seven funders (banks, trusts, a consumer-finance company) offer eight lines with
different limits, prices, amount ranges, terms, grades, regions and daily caps (one
is paused for review). A few hundred orders from an instalment shop, a cash-loan
app, a car dealer and an SME platform arrive; the matcher routes them; the funders
approve, disburse (sometimes less than asked), get repaid, cancel or decline (and the
order is routed again). The run ends with every line's utilization and the outcomes.
"""

import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from rich.table import Table

from fundrouter_cli import render, workload
from fundrouter_cli.ui import Runtime, progress

YUAN: Final = 100  # fen per yuan: amounts below are in yuan, sent in fen

# The demo's lines, one row a line, in three tables (one would be too wide) whose
# columns are the fields of PUT /v1/lines/{lineId}: amounts in yuan (line_configs()
# sends fen), lists comma-separated, "-" where a line sets no such rule.
_WHO: Final = """
lineId              funderId        name                                   status  holdSeconds
icbc-consumer       icbc            ICBC consumer instalments              -       3600
nbcb-regional       bank-of-ningbo  Bank of Ningbo Yangtze delta retail    -       3600
cmb-auto            cmb             CMB auto finance                       -       3600
huaxia-trust-auto   huaxia-trust    Huaxia Trust auto (paused for review)  PAUSED  3600
cmb-sme             cmb             CMB SME working capital                -       7200
pingan-trust-sme    pingan-trust    Ping An Trust SME                      -       7200
citic-trust-retail  citic-trust     CITIC Trust retail instalments         -       3600
mashang-cash        mashang-cf      Mashang Consumer Finance cash loans    -       1800
"""
_MONEY: Final = """
lineId              limit     dailyLimit  minAmount  maxAmount  aprBps  priority  weight
icbc-consumer       8000000   3000000     1000       200000     980     10        35
nbcb-regional       1500000   -           5000       300000     1080    15        10
cmb-auto            6000000   2000000     30000      500000     1150    20        20
huaxia-trust-auto   3000000   -           20000      400000     1650    25        5
cmb-sme             10000000  -           50000      1500000    1380    30        15
pingan-trust-sme    6000000   -           100000     2000000    1590    35        10
citic-trust-retail  4000000   800000      500        80000      1790    40        5
mashang-cash        2500000   600000      500        50000      2350    50        5
"""
_RULES: Final = """
lineId              terms        products                   regions         creditGrades
icbc-consumer       3,6,12,24    installment,consumer-cash  -               A,B
nbcb-regional       6,12,24,36   installment,auto-loan      ZJ,JS,SH        A,B,C
cmb-auto            12,24,36,60  auto-loan                  -               A,B,C
huaxia-trust-auto   12,24,36     auto-loan                  -               -
cmb-sme             6,12,24      sme-working-capital        GD,ZJ,JS,SH,BJ  A,B
pingan-trust-sme    12,24,36     sme-working-capital        -               A,B,C
citic-trust-retail  3,6,12       installment,consumer-cash  -               A,B,C,D
mashang-cash        3,6,9,12     consumer-cash,installment  -               B,C,D
"""
_NUMBERS: Final = frozenset(
    {"limit", "dailyLimit", "minAmount", "maxAmount", "aprBps", "priority", "weight", "holdSeconds"}
)
_LISTS: Final = frozenset({"terms", "products", "regions", "creditGrades"})


def _table(text: str) -> dict[str, dict[str, Any]]:
    """Each row's fields by its lineId (cells are split at two or more spaces)."""
    header, *rows = (re.split(r"\s{2,}", row.strip()) for row in text.strip().splitlines())
    return {
        cells[0]: {
            name: _value(name, cell)
            for name, cell in zip(header[1:], cells[1:], strict=True)
            if cell != "-"
        }
        for cells in rows
    }


def _value(name: str, cell: str) -> Any:
    if name in _LISTS:
        items = cell.split(",")
        return [int(item) for item in items] if name == "terms" else items
    return int(cell) if name in _NUMBERS else cell


def _demo_lines() -> tuple[tuple[str, Mapping[str, Any]], ...]:
    who, money, rules = _table(_WHO), _table(_MONEY), _table(_RULES)
    if not list(who) == list(money) == list(rules):
        raise ValueError("the demo's line tables list different lines")
    return tuple((line_id, who[line_id] | money[line_id] | rules[line_id]) for line_id in who)


# (lineId, configuration); amounts in yuan, converted by line_configs().
LINES: Final = _demo_lines()
_MONEY_FIELDS: Final = ("limit", "dailyLimit", "minAmount", "maxAmount")


def line_configs() -> list[tuple[str, dict[str, Any]]]:
    """The demo's lines as PUT bodies: CNY, amounts in fen."""
    configs = []
    for line_id, config in LINES:
        body = {"currency": "CNY", **config}
        for name in _MONEY_FIELDS:
            if name in body:
                body[name] = body[name] * YUAN
        configs.append((line_id, body))
    return configs


@dataclass(frozen=True)
class Product:
    name: str
    share: float
    median_yuan: int
    low_yuan: int
    high_yuan: int
    step_yuan: int
    terms: tuple[int, ...]
    channel: str


PRODUCTS: Final = (
    Product("installment", 0.45, 25_000, 1_000, 180_000, 100, (3, 6, 12, 24), "shop"),
    Product("consumer-cash", 0.20, 12_000, 500, 80_000, 100, (3, 6, 9, 12), "cash-app"),
    Product("auto-loan", 0.20, 160_000, 30_000, 600_000, 1_000, (12, 24, 36, 60), "dealer"),
    Product(
        "sme-working-capital", 0.15, 450_000, 50_000, 3_000_000, 10_000, (6, 12, 24, 36), "sme"
    ),
)
REGIONS: Final = ("GD", "ZJ", "JS", "SH", "BJ", "SC", "HB", "SD", "FJ", "HN")
REGION_WEIGHTS: Final = (18, 14, 13, 12, 10, 8, 7, 7, 6, 5)
GRADES: Final = ("A", "B", "C", "D", "E")
GRADE_WEIGHTS: Final = (25, 35, 24, 11, 5)


def demo_orders(run: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """`count` varied orders: amounts log-normal around each product's median,
    rounded as people ask for money, clipped to the product's range."""
    orders = []
    for n in range(1, count + 1):
        product = rng.choices(PRODUCTS, weights=[p.share for p in PRODUCTS])[0]
        raw = rng.lognormvariate(math.log(product.median_yuan), 0.7)
        yuan = min(product.high_yuan, max(product.low_yuan, raw))
        yuan = max(product.low_yuan, round(yuan / product.step_yuan) * product.step_yuan)
        orders.append(
            {
                "orderId": f"{run}-{n:04d}",
                "amount": int(yuan) * YUAN,
                "currency": "CNY",
                "termMonths": rng.choice(product.terms),
                "product": product.name,
                "customer": {
                    "id": f"c-{rng.randrange(100_000, 999_999)}",
                    "region": rng.choices(REGIONS, weights=REGION_WEIGHTS)[0],
                    "creditGrade": rng.choices(GRADES, weights=GRADE_WEIGHTS)[0],
                },
                "metadata": {"channel": product.channel, "source": "fundrouter-demo", "run": run},
            }
        )
    return orders


def run_demo(rt: Runtime, count: int, concurrency: int, seed: int | None, timeout: float) -> int:
    """The whole demo; returns the exit code."""
    run = workload.run_id("demo")
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    rt.console.print(f"[bold]fundrouter demo[/] · run [cyan]{run}[/] · {rt.settings.api_url}")
    seed_lines(rt)
    submitted, accepted, decided = _submit(rt, demo_orders(run, count, rng), concurrency, timeout)
    since = workload.earliest_created(accepted.values())
    done = workload.run_lifecycle(
        rt.client,
        rt.console,
        _plan(rt, decided, rng),
        concurrency=concurrency,
        since=since,
        timeout=timeout,
        label="order events",
    )
    declined = _rerouted(rt, done, timeout)
    return _finish(rt, set(accepted), since, declined, submitted.failed)


def seed_lines(rt: Runtime) -> None:
    out = rt.console
    out.rule("1/4 Funders and lines")
    seeded = []
    created = 0
    for line_id, body in line_configs():
        stored, is_new = rt.client.put_line(line_id, body)
        created += is_new
        seeded.append(stored)
    funders = len({line["funderId"] for line in seeded})
    out.print(
        f"{len(seeded)} lines from {funders} funders ({created} new, "
        f"{len(seeded) - created} updated in place)"
    )
    # No wait: the matcher honours a line change from the next decision after it.
    out.print(render.line_rules_table(seeded, "What each line offers"))


def _submit(
    rt: Runtime, orders: list[dict[str, Any]], concurrency: int, timeout: float
) -> tuple[workload.Outcomes, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    out = rt.console
    out.rule(f"2/4 {len(orders)} orders from four business channels")
    with progress(out) as bar:
        task = bar.add_task("submitting", total=len(orders))
        started = time.monotonic()
        submitted, accepted = workload.submit_all(
            rt.client, orders, concurrency, lambda n: bar.advance(task, n)
        )
        took = time.monotonic() - started
    refused = f"; [red]{submitted.failed} refused[/]: {dict(submitted.reasons)}"
    out.print(
        f"submitted {submitted.done} orders in {took:.1f} s"
        f" ({submitted.done / max(took, 1e-9):.0f}/s) with {concurrency} workers"
        + (refused if submitted.failed else "")
    )
    since = workload.earliest_created(accepted.values())
    decided = _await(rt, set(accepted), since, timeout, "matching")
    latencies = sorted(
        ms for o in decided.values() if (ms := workload.decision_latency_ms(o)) is not None
    )
    statuses = _counts(decided.values())
    median = f", median {latencies[len(latencies) // 2]:.0f} ms from intake" if latencies else ""
    out.print(
        f"decided: {statuses.get('MATCHED', 0)} MATCHED,"
        f" {statuses.get('UNMATCHED', 0)} UNMATCHED{median}"
    )
    return submitted, accepted, decided


def _plan(
    rt: Runtime, decided: Mapping[str, Mapping[str, Any]], rng: random.Random
) -> dict[str, list[workload.Step]]:
    """What the funders do with each matched order: approve, disburse, get repaid,
    cancel or decline."""
    out = rt.console
    out.rule("3/4 Funders act on matched orders")
    plans = workload.plan_lifecycle(decided.values(), rng, workload.LifecycleMix())
    steps = workload.count_steps(plans)
    matched = sum(1 for o in decided.values() if o.get("status") == "MATCHED")
    out.print(
        f"{len(plans)} of {matched} matched orders move on: "
        + ", ".join(f"{n} {kind.lower()}" for kind, n in sorted(steps.items()))
    )
    return plans


def _rerouted(rt: Runtime, done: workload.Lifecycle | None, timeout: float) -> set[str]:
    """The ids of the declined orders, after saying where they were routed again."""
    if done is None or not done.declined:
        return set()
    _warn_waiting(rt, done.declined, done.rerouted, timeout)
    moved = _counts(done.rerouted.values())
    rt.console.print(
        f"{len(done.declined)} declined orders routed again, excluding the line that declined: "
        + ", ".join(f"{n} {s}" for s, n in sorted(moved.items()))
    )
    return done.declined


def _finish(rt: Runtime, ids: set[str], since: str | None, declined: set[str], refused: int) -> int:
    out = rt.console
    out.rule("4/4 Where the money is")
    result = workload.collect(rt.client, ids, since)
    lines = rt.client.list_lines()
    out.print(render.lines_table(lines))
    out.print(
        render.outcome_table(list(result.values()), title=f"Outcomes of {len(result)} orders")
    )
    reasons = workload.unmatched_reasons(result.values(), lines)
    if reasons:
        out.print(_reasons_table(reasons))
    _suggest(rt, result, declined)
    undecided = [i for i in ids if result.get(i, {}).get("status") == "RECEIVED"]
    missing = len(ids - set(result))
    if refused or undecided or missing:
        out.print(
            f"[red]{refused} orders refused at intake, {len(undecided)} still waiting"
            f" for a match, {missing} not found[/]"
        )
        return 1
    return 0


def _await(
    rt: Runtime, ids: set[str], since: str | None, timeout: float, label: str
) -> dict[str, dict[str, Any]]:
    with progress(rt.console) as bar:
        task = bar.add_task(label, total=len(ids))
        found = workload.await_decisions(
            rt.client, ids, since, timeout, lambda done: bar.update(task, completed=done)
        )
    _warn_waiting(rt, ids, found, timeout)
    return found


def _warn_waiting(
    rt: Runtime, ids: set[str], found: Mapping[str, Mapping[str, Any]], timeout: float
) -> None:
    waiting = [i for i in ids if found.get(i, {}).get("status", "RECEIVED") == "RECEIVED"]
    if waiting:
        rt.console.print(
            f"[yellow]{len(waiting)} orders still RECEIVED after {timeout:g} s[/]"
            " (is the matcher running? `make logs` shows the stack's log)"
        )


def _counts(orders: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for order in orders:
        status = str(order.get("status"))
        counts[status] = counts.get(status, 0) + 1
    return counts


def _reasons_table(reasons: Mapping[str, int]) -> Table:
    table = Table(
        title="Why orders fit no line",
        caption="the check that stopped the closest line offering the product",
        header_style="bold",
        show_edge=False,
    )
    table.add_column("Reason")
    table.add_column("Orders", justify="right")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(reason, str(count))
    return table


def _suggest(rt: Runtime, orders: Mapping[str, Mapping[str, Any]], declined: set[str]) -> None:
    examples: list[tuple[str, str]] = []
    rerouted = sorted(i for i in declined if orders.get(i, {}).get("status") == "MATCHED")
    if rerouted:
        examples.append((rerouted[0], "declined by one funder, then matched to another"))
    for status, why in (("REPAID", "disbursed and repaid"), ("UNMATCHED", "every line's reason")):
        match = sorted(i for i, o in orders.items() if o.get("status") == status)
        if match:
            examples.append((match[0], why))
    if examples:
        rt.console.print("Look closer:")
        for order_id, why in examples:
            rt.console.print(f"  fundrouter order show {order_id}   [grey50]# {why}[/]")
    rt.console.print("  fundrouter lines   ·   fundrouter watch   ·   fundrouter load --orders 500")
