"""Section 4: the matcher on a dedicated local stack (tests/support/stack.py's, on
127.0.0.1:$FUNDROUTER_BENCH_PORT, default 4590, state in .fundrouter/bench; always
stopped at the end).

a. Intake to decision: `fundrouter load --json` runs (no lifecycle events): a warm-up,
   a paced run, a 300-order burst (latency) and a 2,000-order burst (throughput).
b. Claims/s on ONE line (DynamoMatchStore.claim: line + day + order in one
   TransactWriteItems, on orders inserted beforehand) against a plain conditional
   UpdateItem on one item, same server and threads, on tables of their own.
c. Expiry: a backlog of expired holds on one line, the deployed ReconcilerFunction
   invoked run after run until the line holds nothing.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from common import Calls, create_tables, header, line_config, put_all, table
from fundrouter.domain.clock import utc_now
from fundrouter.domain.errors import Unavailable
from fundrouter.domain.lifecycle import matched
from fundrouter.domain.orders import Candidate, Decision, OrderStatus
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import ORDER_SK, order_item, order_pk
from fundrouter.persistence.retries import batch_get
from fundrouter.service.ports import ClaimResult

from tests.support.orders import TENANT, received
from tests.support.stack import LocalStack, running_stack
from tests.support.template import ROOT

PORT = os.environ.get("FUNDROUTER_BENCH_PORT", "4590")
STATE_DIR = ".fundrouter/bench"
AMOUNT = 10_000
LEVELS = (1, 4, 16)
WARM_CALLS = 20
RAW_CAP_FACTOR = 4
EXPIRY_LINE = "bench-expiry"
NO_RETRIES = Config(max_pool_connections=10, retries={"mode": "standard", "total_max_attempts": 1})


@dataclass
class Figures:
    loads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rates: list[tuple["RateRun", "RateRun"]] = field(default_factory=list)
    table_burst: float | None = None  # matched/s, 4d
    skipped: str | None = None


def report(args: Any) -> Figures:
    header(f"4. The matcher on a dedicated local stack (ministack, 127.0.0.1:{PORT})")
    figures, started = Figures(), time.perf_counter()
    try:
        with contextmanager(running_stack)(PORT, STATE_DIR) as stack:
            print(f"stack ready in {time.perf_counter() - started:.0f} s; {layer_matches(args)}")
            print("\n4a. Intake to decision: fundrouter load --json --no-events")
            figures.loads = report_loads(stack, args)
            print("\n4b. Claims/s on ONE line vs raw conditional updates/s, same server")
            figures.rates = report_rates(stack, args)
            print("\n4c. Expiry throughput of the deployed ReconcilerFunction")
            report_expiry(stack, args.expiry_holds)
            print("\n4d. A burst written straight into the Orders table: the matcher's own rate")
            figures.table_burst = report_table_burst(stack, max(args.bursts))
            ratios(figures)
    except pytest.fail.Exception as error:  # no stack
        figures.skipped = str(error)
        print(f"skipped: {error}")
    return figures


def layer_matches(args: Any) -> str:
    """Whether the layer built for this stack is the working tree's as it is now
    (others may edit it while the bench runs)."""
    source = ROOT / "layers" / "fundrouter" / "fundrouter"
    built = ROOT / STATE_DIR / f"build-{args.arch}" / "SharedLayer" / "python" / "fundrouter"
    if not built.is_dir():
        return "deployed layer: no build found"
    names = {p.relative_to(source) for p in source.rglob("*.py")}
    names |= {p.relative_to(built) for p in built.rglob("*.py")}
    differ = sorted(
        str(n)
        for n in names
        if not ((source / n).is_file() and (built / n).is_file())
        or (source / n).read_bytes() != (built / n).read_bytes()
    )
    return f"deployed layer differs in: {', '.join(differ)}" if differ else "deployed layer = tree"


# ------------------------------------------------------------------ a. fundrouter load


def load(stack: LocalStack, args: Any, orders: int, rate: float | None = None) -> dict[str, Any]:
    command = [sys.executable, "-m", "fundrouter_cli", "load", "--orders", str(orders)]
    command += ["--concurrency", str(args.submitters), "--capacity", "3", "--no-events", "--json"]
    command += ["--yes"]
    command += ["--timeout", str(args.stack_seconds)] + (["--rate", str(rate)] if rate else [])
    env = os.environ | stack.settings
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if not done.stdout.strip():
        raise pytest.fail.Exception(f"fundrouter load failed ({done.returncode}): {done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def report_loads(stack: LocalStack, args: Any) -> list[tuple[str, dict[str, Any]]]:
    load(stack, args, 2 * args.submitters)  # warm-up: the functions' workers started
    runs = [(f"paced {args.rate:g}/s", load(stack, args, args.latency_orders, args.rate))]
    runs += [(f"burst {n:,}", load(stack, args, n)) for n in args.bursts if n]
    print(f"{args.submitters} submitters (keep-alive) after {2 * args.submitters} warm-up orders;")
    print("latency from the order's createdAt to its first decision's `at` (server clocks);")
    print("rate: POSTs/s offered, or decisions/s from the first intake to the last decision;")
    print("lines hold 3x the run's amount (--capacity 3): the first takes every order")
    rows = []
    for label, run in runs:
        for n, (key, what) in enumerate(PHASES):
            phase = run["phases"][key]
            cells = [
                f"{phase.get(f'{q}Ms', float('nan')):.0f}" for q in ("p50", "p95", "p99", "max")
            ]
            rate = f"{phase['perSecond']:.1f}"
            rows.append(("" if n else label, what, phase["count"], *cells, rate))
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(run["outcomes"].items()))
        audit = "ok" if run["audit"]["ok"] else f"FAILED {run['audit']['violations'][:3]}"
        rows.append(("", f"  {outcomes}; audit {audit}"))
    table(("run", "", "orders", "p50 ms", "p95 ms", "p99 ms", "max ms", "/s"), rows)
    return runs


PHASES = (
    ("intake", "POST round trip"),
    ("match", "intake -> decision"),
    ("matched", "intake -> MATCHED"),
)


def matched_phase(run: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = run["phases"]["matched"]
    return found


def ratios(figures: Figures) -> None:
    """Issue 11: matched orders/s in the biggest burst (over HTTP, and written straight
    into the table) against the raw rate."""
    bursts = [(label, run) for label, run in figures.loads if label.startswith("burst")]
    measured = [(f"{label} over HTTP", matched_phase(run)["perSecond"]) for label, run in bursts]
    if figures.table_burst:
        measured.append(("the same burst written into the table", figures.table_burst))
    if measured and figures.rates:
        for label, rate in measured[-2:]:
            parts = [
                f"{r.clients} client(s) {r.rate():.0f}/s: {rate / r.rate():.2f}"
                for _, r in figures.rates
                if r.rate()
            ]
            print(
                f"\n{label}: {rate:.1f} matched/s; ratio to raw conditional updates/s at "
                + "; ".join(parts)
            )


def report_table_burst(stack: LocalStack, orders: int, seconds: float = 300.0) -> float | None:
    """`orders` RECEIVED orders put into the Orders table at once (BatchWriteItem), as
    intake stores them, for the deployed matcher to decide from the stream: its rate
    without the HTTP intake in front of it. From the first write to the last decision
    (the orders' updatedAt, the server's clock)."""
    client, table_name = stack.client("dynamodb"), stack.settings["FUNDROUTER_ORDERS_TABLE"]
    now = utc_now()
    config = line_config(limit=10**15, minAmount=AMOUNT, priority=1)
    DynamoLineRepository(client, stack.settings["FUNDROUTER_LINES_TABLE"]).put_config(
        "bench-burst", config, now
    )
    run = uuid.uuid4().hex[:8]
    batch = [received(f"burst-{run}-{i:05d}", AMOUNT, now) for i in range(orders)]
    keys = [{"pk": {"S": order_pk(o.tenant_id, o.order_id)}, "sk": {"S": ORDER_SK}} for o in batch]
    started = utc_now()
    put_all(client, table_name, [order_item(o) for o in batch])
    written = (utc_now() - started).total_seconds()
    deadline, decided = time.monotonic() + seconds, {}
    while len(decided) < orders and time.monotonic() < deadline:
        time.sleep(1.0)
        waiting = [k for k in keys if k["pk"]["S"] not in decided]
        for item in batch_get(client, table_name, waiting):
            if item["status"]["S"] != OrderStatus.RECEIVED:
                decided[item["pk"]["S"]] = (item["status"]["S"], item["updatedAt"]["S"])
    statuses = Counter(status for status, _ in decided.values())
    if not decided:
        print(f"{orders:,} orders written in {written:.1f} s; none decided in {seconds:.0f} s")
        return None
    last = max(datetime.fromisoformat(at) for _, at in decided.values())
    span = (last - started).total_seconds()
    rate = statuses.get(OrderStatus.MATCHED, 0) / span
    print(f"{orders:,} orders written in {written:.1f} s (BatchWriteItem, 25 a call);")
    print(f"decided {len(decided):,} ({dict(statuses)}) {span:.1f} s after the first write:")
    print(f"{rate:.1f} matched orders/s")
    return rate


# ------------------------------------------------------------------ b. claims per second


@dataclass
class RateRun:
    clients: int
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)

    def rate(self) -> float:
        return self.outcomes["ok"] / self.seconds if self.seconds else 0.0

    def add(self, other: "RateRun") -> None:
        self.seconds += other.seconds
        self.outcomes.update(other.outcomes)
        self.requests.update(other.requests)


class ClaimBench:
    """Tables of their own (the deployed matcher never sees them), one line, orders
    inserted beforehand, a counter item, one counted client per thread."""

    def __init__(self, stack: LocalStack, total_orders: int) -> None:
        run = uuid.uuid4().hex[:8]
        self.orders_table, self.lines_table = f"bench-orders-{run}", f"bench-lines-{run}"
        admin = self.admin = stack.client("dynamodb", NO_RETRIES)
        create_tables(admin, OrdersTable=self.orders_table, LinesTable=self.lines_table)
        now = utc_now()
        lines = DynamoLineRepository(admin, self.lines_table)
        self.line = lines.put_config("bench-one-line", line_config(minAmount=AMOUNT), now)
        self.counter = {"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}}
        admin.put_item(TableName=self.lines_table, Item=self.counter | {"n": {"N": "0"}})
        started = time.perf_counter()
        self.orders = [received(f"claim-{n:06d}", AMOUNT, now) for n in range(total_orders)]
        put_all(admin, self.orders_table, [order_item(o) for o in self.orders])
        self.insert_seconds = time.perf_counter() - started
        self.clients = [stack.client("dynamodb", NO_RETRIES) for _ in range(max(LEVELS))]
        self.calls = [Calls(client) for client in self.clients]
        self.used = 0

    def requests(self) -> Counter[str]:
        return sum((calls.counts() for calls in self.calls), Counter())

    def claims(self, threads: int, count: int) -> list[Callable[[int], str]]:
        line_id = self.line.line.line_id
        decision = Decision(
            strategy="PRIORITY", candidates=[Candidate(line_id=line_id, outcome="CLAIMED")]
        )
        orders, self.used = self.orders[self.used : self.used + count], self.used + count

        def worker(client: Any) -> Callable[[int], str]:
            lines = DynamoLineRepository(client, self.lines_table)
            store = DynamoMatchStore(client, self.orders_table, lines)

            def claim(index: int) -> str:
                now = utc_now()
                hold = now + timedelta(minutes=15)
                attempt = store.claim(orders[index], self.line, now, hold, decision)
                return "ok" if attempt.result is ClaimResult.CLAIMED else attempt.result.value

            return claim

        return [worker(client) for client in self.clients[:threads]]

    def raw(self, threads: int) -> list[Callable[[int], str]]:
        def worker(client: Any) -> Callable[[int], str]:
            def update(_: int) -> str:
                client.update_item(
                    TableName=self.lines_table,
                    Key=self.counter,
                    UpdateExpression="SET n = n + :one",
                    ConditionExpression="n < :max",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": str(10**12)}},
                )
                return "ok"

            return update

        return [worker(client) for client in self.clients[:threads]]

    def run(self, workers: list[Callable[[int], str]], cap: int, seconds: float) -> RateRun:
        """One thread per worker, sharing a running index, until `cap` calls or
        `seconds` (the clock starts when all threads are ready)."""
        lock, counter, box = threading.Lock(), iter(range(cap)), {}
        ends: list[float] = []
        outcomes: Counter[str] = Counter()
        barrier = threading.Barrier(len(workers), action=lambda: box.update(t=time.perf_counter()))
        before = self.requests()

        def loop(work: Callable[[int], str]) -> None:
            mine: Counter[str] = Counter()
            barrier.wait(timeout=60)
            while time.perf_counter() < box["t"] + seconds:
                with lock:
                    index = next(counter, None)
                if index is None:
                    break
                try:
                    mine[work(index)] += 1
                except (ClientError, BotoCoreError, Unavailable) as error:
                    code = getattr(error, "response", {}).get("Error", {}).get("Code")
                    mine[f"error {code or type(error).__name__}"] += 1
            with lock:
                ends.append(time.perf_counter())
                outcomes.update(mine)

        threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 120)
        elapsed = max(ends) - box["t"] if ends else 0.0
        return RateRun(len(workers), elapsed, outcomes, self.requests() - before)


def report_rates(stack: LocalStack, args: Any) -> list[tuple[RateRun, RateRun]]:
    """`claim_rounds` rounds over the levels, raw first in even rounds and claims first
    in odd ones (neither always on a warmer server), summed per level."""
    cap, seconds = args.claims_per_level, args.claim_seconds
    bench = ClaimBench(stack, WARM_CALLS + cap * len(LEVELS) * args.claim_rounds)
    bench.run(bench.claims(1, WARM_CALLS), WARM_CALLS, 30)  # warm-up, not counted
    bench.run(bench.raw(1), WARM_CALLS, 30)
    results = [(RateRun(n), RateRun(n)) for n in LEVELS]
    for round_no in range(args.claim_rounds):
        for claims, raw in results:
            for kind in ("raw", "claims")[:: 1 if round_no % 2 == 0 else -1]:
                if kind == "raw":  # costs no preparation: bounded by time first
                    raw.add(bench.run(bench.raw(raw.clients), RAW_CAP_FACTOR * cap, seconds))
                else:
                    claims.add(bench.run(bench.claims(claims.clients, cap), cap, seconds))
    print(f"{len(bench.orders)} orders inserted (BatchWriteItem) in {bench.insert_seconds:.1f} s;")
    print(f"a run: until {cap} claims ({RAW_CAP_FACTOR * cap} raw updates) or {seconds:g} s;")
    print(f"{args.claim_rounds} rounds, {WARM_CALLS} warm-up calls of each; botocore retries off")
    rows = []
    for claims, raw in results:
        ok = max(1, claims.outcomes["ok"])
        per = ", ".join(f"{k} {v / ok:.2f}" for k, v in sorted(claims.requests.items()))
        other = {k: v for k, v in (claims.outcomes + raw.outcomes).items() if k != "ok"}
        other |= {k: v for k, v in raw.requests.items() if k != "UpdateItem"}
        rows.append(
            (
                claims.clients,
                f"{claims.rate():.0f}",
                f"{raw.rate():.0f}",
                f"{claims.rate() / raw.rate():.2f}" if raw.rate() else "nan",
                f"{claims.outcomes['ok']}/{claims.seconds:.1f}s",
                f"{raw.outcomes['ok']}/{raw.seconds:.1f}s",
                per + (f"; not successes: {other}" if other else ""),
            )
        )
    table(
        ("clients", "claims/s", "raw/s", "ratio", "claims in", "raw in", "requests per claim"), rows
    )
    claimed = sum(claims.outcomes["ok"] for claims, _ in results) + WARM_CALLS
    record = DynamoLineRepository(bench.admin, bench.lines_table).get(bench.line.line.line_id)
    reserved = record.line.counters.reserved if record else None
    print(f"line reserved {reserved:,} = claims x {AMOUNT:,}: {reserved == claimed * AMOUNT}")
    print("clients and ministack share this machine's cores: compare ratios, not rates")
    return results


# ------------------------------------------------------------------ c. expiry throughput


def seed_expired_holds(stack: LocalStack, holds: int) -> float:
    """MATCHED orders on one line whose holds expired a minute ago, as the matcher
    writes them, and the line's counters and day holding exactly their sum."""
    client, lines_table = stack.client("dynamodb"), stack.settings["FUNDROUTER_LINES_TABLE"]
    now = utc_now()
    config = line_config(limit=10**15, minAmount=AMOUNT)
    line = DynamoLineRepository(client, lines_table).put_config(EXPIRY_LINE, config, now).line
    day, then = line.day_of(now), now - timedelta(minutes=16)
    decision = Decision(
        strategy="PRIORITY", candidates=[Candidate(line_id=EXPIRY_LINE, outcome="CLAIMED")]
    )
    started = time.perf_counter()
    items = [
        order_item(
            matched(
                received(f"expiry-{index:06d}", AMOUNT, then),
                line_id=EXPIRY_LINE,
                funder_id=line.config.funder_id,
                now=then,
                hold_expires_at=now - timedelta(minutes=1),
                claim_day=day,
                decision=decision,
            )
        )
        for index in range(holds)
    ]
    put_all(client, stack.settings["FUNDROUTER_ORDERS_TABLE"], items)
    total = str(holds * AMOUNT)
    client.update_item(
        TableName=lines_table,
        Key={"pk": {"S": line_pk(EXPIRY_LINE)}, "sk": {"S": LINE_SK}},
        UpdateExpression="SET reserved = :t, held = :t, nMatched = :n",
        ExpressionAttributeValues={":t": {"N": total}, ":n": {"N": str(holds)}},
    )
    day_item = day_key(EXPIRY_LINE, day) | {"used": {"N": total}, "lineId": {"S": EXPIRY_LINE}}
    client.put_item(TableName=lines_table, Item=day_item)
    return time.perf_counter() - started


def report_expiry(stack: LocalStack, holds: int, max_runs: int = 10) -> None:
    """The clock runs from the first invocation to the end of the run that released
    the last hold (the schedule also fires each minute: what it expired is in no run)."""
    seeded = seed_expired_holds(stack, holds)
    client = stack.client("dynamodb")
    lines = DynamoLineRepository(client, stack.settings["FUNDROUTER_LINES_TABLE"])
    aws_lambda = stack.client("lambda", Config(read_timeout=120))
    functions = aws_lambda.list_functions()["Functions"]
    name = next(f["FunctionName"] for f in functions if "ReconcilerFunction" in f["FunctionName"])
    runs, started = [], time.perf_counter()
    for _ in range(max_runs):
        answer = aws_lambda.invoke(FunctionName=name, Payload=b'{"time": "bench"}')
        summary = json.loads(answer["Payload"].read() or b"{}")
        runs.append(f"{len(summary.get('expired', [])):,}/{len(summary.get('failures', []))}")
        record = lines.get(EXPIRY_LINE)
        if record is None or record.line.counters.reserved == 0:
            break
    seconds = time.perf_counter() - started
    record = lines.get(EXPIRY_LINE)
    keys = [
        {"pk": {"S": order_pk(TENANT, f"expiry-{i:06d}")}, "sk": {"S": ORDER_SK}}
        for i in range(holds)
    ]
    items = batch_get(client, stack.settings["FUNDROUTER_ORDERS_TABLE"], keys)
    missed = holds - sum(1 for item in items if item["status"]["S"] == "EXPIRED")
    print(f"{holds:,} holds expired a minute ago, seeded in {seeded:.0f} s")
    print(f"runs (expired/failures): {', '.join(runs)}")
    per_minute = holds / seconds * 60
    print(f"expiry throughput: {per_minute:,.0f} holds a minute ({holds:,} in {seconds:.1f} s)")
    reserved = record.line.counters.reserved if record else 0
    still = record.orders.get(OrderStatus.MATCHED, 0) if record else 0
    print(f"missed: {missed} not EXPIRED; line reserved {reserved}, MATCHED count {still}")


def summary(figures: Figures) -> None:
    for label, run in figures.loads:
        found = matched_phase(run)
        print(
            f"intake to MATCHED on ministack, {label}: p50 {found.get('p50Ms', 0):.0f} ms,"
            f" p99 {found.get('p99Ms', 0):.0f} ms; {found['perSecond']:.1f} matched/s"
        )
    print(
        "claims/s on one line vs raw updates/s: "
        + "; ".join(f"{c.clients} {c.rate():.0f} vs {r.rate():.0f}" for c, r in figures.rates)
    )
