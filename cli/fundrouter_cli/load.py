"""`fundrouter load`: many orders at once, how fast they are decided, and whether
the books still balance afterwards.

Each run creates its own four lines, reachable only by the run's own product, sized
to about 70% of what the run asks for so that lines fill, claims race for the last
capacity and some orders fall through to UNMATCHED. Priority routing sends every
order at the first line until it is full, so it is a hot line. Matched orders are
then approved, disbursed, repaid, cancelled or declined concurrently, and the
invariant of docs/design.md is audited on the run's lines against the run's orders.
"""

import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from rich.table import Table

from fundrouter_cli import render, stats, workload
from fundrouter_cli.audit import AuditReport, Violation, audit
from fundrouter_cli.config import Role
from fundrouter_cli.errors import CliError
from fundrouter_cli.ui import Runtime, progress

# Order amounts: 1,000 to 100,000 yuan in steps of 100 yuan (in fen).
AMOUNT_STEP: Final = 10_000
AMOUNT_STEPS: Final = (10, 1000)
MEAN_AMOUNT: Final = (AMOUNT_STEPS[0] + AMOUNT_STEPS[1]) * AMOUNT_STEP // 2
CAPACITY_SHARE: Final = 0.7
LINE_SHARES: Final = (0.4, 0.3, 0.2, 0.1)


def load_lines(
    run: str, count: int, room: float = CAPACITY_SHARE
) -> list[tuple[str, dict[str, Any]]]:
    """Four lines for the run's product with `room` times the expected volume between
    them; the second has a daily cap of half its limit, the fourth takes small orders
    only. The first takes every order while it has room (priority routing)."""
    capacity = int(count * MEAN_AMOUNT * room)
    top = AMOUNT_STEPS[1] * AMOUNT_STEP
    lines = []
    for n, share in enumerate(LINE_SHARES, start=1):
        limit = max(top, int(capacity * share))
        body: dict[str, Any] = {
            "funderId": f"load-funder-{n}",
            "name": f"load test line {n} ({run})",
            "currency": "CNY",
            "limit": limit,
            "minAmount": AMOUNT_STEP,
            "maxAmount": top if n < 4 else top // 2,
            "products": [run],
            "aprBps": 900 + 150 * n,
            "priority": n,
            "weight": 25,
            "holdSeconds": 3600,
        }
        if n == 2:
            body["dailyLimit"] = max(top, limit // 2)
        lines.append((f"{run}-line{n}", body))
    return lines


def load_orders(run: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "orderId": f"{run}-{n:05d}",
            "amount": rng.randint(*AMOUNT_STEPS) * AMOUNT_STEP,
            "currency": "CNY",
            "termMonths": rng.choice((3, 6, 12, 24)),
            "product": run,
            "customer": {
                "id": f"c-{rng.randrange(100_000, 999_999)}",
                "region": rng.choice(("GD", "ZJ", "JS", "SH", "BJ")),
                "creditGrade": rng.choice("ABCD"),
            },
            "metadata": {"source": "fundrouter-load", "run": run},
        }
        for n in range(1, count + 1)
    ]


@dataclass(frozen=True)
class Phase:
    key: str  # its name in --json's output
    name: str
    count: int
    seconds: float
    latencies_ms: Sequence[float]

    def figures(self) -> dict[str, float]:
        """Count, seconds, rate and latency percentiles in ms, as --json prints them."""
        summary = stats.summarize(self.latencies_ms, (50.0, 95.0, 99.0))
        rate = self.count / self.seconds if self.seconds > 0 else 0.0
        found = {"count": self.count, "seconds": round(self.seconds, 3), "perSecond": rate}
        if summary is not None:
            found |= {f"p{q:g}Ms": v for q, v in summary.percentiles.items()}
            found["maxMs"] = summary.maximum
        return found


def phase_table(phases: Sequence[Phase]) -> Table:
    table = Table(title="Throughput", header_style="bold", show_edge=False)
    table.add_column("Phase")
    for name in ("Count", "Seconds", "Per second", "p50", "p95", "p99"):
        table.add_column(name, justify="right")
    for phase in phases:
        summary = stats.summarize(phase.latencies_ms, (50.0, 95.0, 99.0))
        cells = (
            [stats.duration(summary.percentiles[q]) for q in (50.0, 95.0, 99.0)]
            if summary
            else ["-", "-", "-"]
        )
        rate = phase.count / phase.seconds if phase.seconds > 0 else 0.0
        table.add_row(phase.name, str(phase.count), f"{phase.seconds:.2f}", f"{rate:.1f}", *cells)
    return table


def decision_span_seconds(orders: Sequence[Mapping[str, Any]]) -> float:
    """From the first intake to the last first-decision, by the server's clocks."""
    created = [t for o in orders if (t := workload.parse_time(o.get("createdAt")))]
    decided = [
        t
        for o in orders
        if (entry := workload.first_decision(o)) and (t := workload.parse_time(entry.get("at")))
    ]
    if not created or not decided:
        return 0.0
    return max(0.0, (max(decided) - min(created)).total_seconds())


def audit_lines(report: AuditReport, out: Any) -> None:
    if report.ok:
        out.print(
            f"[bold green]audit: OK[/] — invariant holds on {report.lines_checked} lines over"
            f" {report.orders_checked} orders (reserved, drawn, limits, one line per order)"
        )
    else:
        out.print(
            f"[bold red]audit: FAILED[/] — {len(report.violations)} violations on"
            f" {report.lines_checked} lines over {report.orders_checked} orders"
        )
        for violation in report.violations[:50]:
            out.print(f"  [red]✗[/] {violation}")
        if len(report.violations) > 50:
            out.print(f"  … and {len(report.violations) - 50} more")
    for note in report.notes:
        out.print(f"  [yellow]note:[/] {note}")


def _check_routing(rt: Runtime, line_ids: Sequence[str]) -> None:
    tenant = rt.settings.credentials(Role.TENANT).client_id
    try:
        policy = rt.client.get_routing(tenant)
    except CliError:
        return  # only a warning: the run itself shows what happens
    listed = policy.get("lineIds") or []
    if listed and not set(line_ids) <= set(listed):
        rt.console.print(
            f"[yellow]warning:[/] tenant {tenant}'s routing policy lists only {len(listed)} lines;"
            " this run's lines are not among them, so its orders will be UNMATCHED (NOT_IN_POLICY)"
        )


def run_load(
    rt: Runtime,
    count: int,
    concurrency: int,
    timeout: float,
    seed: int | None,
    *,
    events: bool,
    rate: float | None = None,
    capacity: float = CAPACITY_SHARE,
) -> tuple[int, dict[str, Any]]:
    """The whole load run: its exit code (1 when the audit finds anything) and the
    figures --json prints."""
    run = workload.run_id("load")
    rng = random.Random(seed)  # noqa: S311 - load data, not security
    rt.console.print(
        f"[bold]fundrouter load[/] · run [cyan]{run}[/] · {count} orders · concurrency"
        f" {concurrency}{f' · {rate:g}/s' if rate else ''} · {rt.settings.api_url}"
    )
    line_ids = _create_lines(rt, run, count, capacity)
    orders = load_orders(run, count, rng)
    submitted, accepted, submit_seconds = _submit(rt, orders, concurrency, rate)
    ids = set(accepted)
    since = workload.earliest_created(accepted.values())
    decided = _await_decisions(rt, ids, since, timeout)
    intake = Phase(
        "intake", "intake  POST /v1/orders", submitted.done, submit_seconds, submitted.latencies_ms
    )
    match = _match_phase(decided)
    phases = [intake, match]
    if events:
        plans = workload.plan_lifecycle(decided.values(), rng, workload.LifecycleMix())
        phases += _events_phase(rt, plans, concurrency, since, timeout)
    final = workload.collect(rt.client, ids, since)
    _report(rt, phases, match.latencies_ms, final)
    report = _audit_run(rt, run, line_ids, ids, final, refused=submitted.failed)
    figures = {
        "run": run,
        "orders": count,
        "concurrency": concurrency,
        "rate": rate,
        "refused": submitted.failed,
        "phases": {p.key: p.figures() for p in [*phases, _matched_phase(decided)]},
        "outcomes": dict(Counter(str(o.get("status")) for o in final.values())),
        "audit": {"ok": report.ok, "violations": [str(v) for v in report.violations]},
        "http": dict(rt.client.stats),
    }
    return (0 if report.ok else 1), figures


def _create_lines(rt: Runtime, run: str, count: int, share: float) -> list[str]:
    lines = load_lines(run, count, share)
    for line_id, body in lines:
        rt.client.put_line(line_id, body)
    line_ids = [line_id for line_id, _ in lines]
    _check_routing(rt, line_ids)
    capacity = sum(body["limit"] for _, body in lines)
    rt.console.print(
        f"{len(lines)} lines for product {run}: capacity {render.money(capacity, 'CNY')} CNY"
        f" for ~{render.money(count * MEAN_AMOUNT, 'CNY')} CNY of orders"
    )
    return line_ids


def _submit(
    rt: Runtime, orders: list[dict[str, Any]], concurrency: int, rate: float | None
) -> tuple[workload.Outcomes, dict[str, dict[str, Any]], float]:
    with progress(rt.console) as bar:
        task = bar.add_task("submitting", total=len(orders))
        started = time.monotonic()
        submitted, accepted = workload.submit_all(
            rt.client, orders, concurrency, lambda n: bar.advance(task, n), rate
        )
        seconds = time.monotonic() - started
    if submitted.failed:
        rt.console.print(f"[red]{submitted.failed} orders refused[/]: {dict(submitted.reasons)}")
    return submitted, accepted, seconds


def _await_decisions(
    rt: Runtime, ids: set[str], since: str | None, timeout: float
) -> dict[str, dict[str, Any]]:
    with progress(rt.console) as bar:
        task = bar.add_task("decisions", total=len(ids))
        return workload.await_decisions(
            rt.client, ids, since, timeout, lambda done: bar.update(task, completed=done)
        )


def _match_phase(decided: Mapping[str, Mapping[str, Any]]) -> Phase:
    """Intake to first decision, per order and over the run, by the server's clocks."""
    orders = [o for o in decided.values() if workload.first_decision(o)]
    latencies = [ms for o in orders if (ms := workload.decision_latency_ms(o)) is not None]
    span = decision_span_seconds(orders)
    return Phase("match", "match   intake → decision", len(orders), span, latencies)


def _matched_phase(decided: Mapping[str, Mapping[str, Any]]) -> Phase:
    """The match phase of the orders whose first decision was MATCHED (--json only)."""
    found = {
        i: o
        for i, o in decided.items()
        if (workload.first_decision(o) or {}).get("status") == "MATCHED"
    }
    return replace(_match_phase(found), key="matched", name="matched intake → MATCHED")


def _events_phase(
    rt: Runtime,
    plans: Mapping[str, Sequence[workload.Step]],
    concurrency: int,
    since: str | None,
    timeout: float,
) -> list[Phase]:
    """Approve, disburse, repay, cancel and decline matched orders concurrently, then
    wait for the declined ones to be routed again (none where the stack has no route)."""
    label = f"events ({workload.count_steps(plans).total()})"
    done = workload.run_lifecycle(
        rt.client,
        rt.console,
        plans,
        concurrency=concurrency,
        since=since,
        timeout=timeout,
        label=label,
    )
    if done is None:
        return []
    return [
        Phase(
            "events",
            "events  POST …/events",
            done.events.done,
            done.seconds,
            done.events.latencies_ms,
        )
    ]


def _report(
    rt: Runtime,
    phases: Sequence[Phase],
    latencies: Sequence[float],
    final: Mapping[str, Mapping[str, Any]],
) -> None:
    out = rt.console
    out.print(phase_table(phases))
    summary = stats.summarize(latencies)
    if summary is not None:
        out.print(f"intake → decision latency: {stats.percentile_line(summary)}")
        out.print(stats.histogram_table(stats.histogram(latencies), "Intake → decision latency"))
    out.print(render.outcome_table(list(final.values()), title=f"Outcomes of {len(final)} orders"))


def _audit_run(
    rt: Runtime,
    run: str,
    line_ids: Sequence[str],
    ids: set[str],
    final: Mapping[str, Mapping[str, Any]],
    *,
    refused: int,
) -> AuditReport:
    """Audit the run's lines against its orders, and what the run itself must show;
    print it all and return the report."""
    served = {line["lineId"]: line for line in rt.client.list_lines()}
    run_lines = [served[i] for i in line_ids if i in served]
    rt.console.print(render.lines_table(run_lines, title=f"Lines of run {run}"))
    report = audit(run_lines, list(final.values()))
    extra = _run_checks(ids, final, line_ids, served, refused)
    report = AuditReport(
        report.lines_checked, report.orders_checked, report.violations + extra, report.notes
    )
    audit_lines(report, rt.console)
    http = ", ".join(f"{k} {v}" for k, v in sorted(rt.client.stats.items()))
    rt.console.print(f"[grey50]HTTP: {http}[/]")
    return report


def _run_checks(
    ids: set[str],
    final: Mapping[str, Mapping[str, Any]],
    line_ids: Sequence[str],
    served: Mapping[str, Any],
    refused: int,
) -> list[Violation]:
    """What the run itself must show besides the invariant: every order submitted is
    found and decided, every line of the run exists, no submission was refused."""
    found: list[Violation] = []
    for order_id in sorted(ids - set(final))[:20]:
        found.append(Violation("order lost", f"order {order_id}", "accepted but not listed"))
    waiting = sorted(i for i, o in final.items() if o.get("status") == "RECEIVED")
    if waiting:
        found.append(
            Violation(
                "not decided",
                f"{len(waiting)} orders",
                f"still RECEIVED at the end (e.g. {', '.join(waiting[:3])})",
            )
        )
    for line_id in line_ids:
        if line_id not in served:
            found.append(Violation("line lost", f"line {line_id}", "created but not listed"))
    if refused:
        found.append(Violation("intake refused", f"{refused} orders", "POST /v1/orders failed"))
    return found
