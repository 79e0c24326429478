"""Section 4: the matcher on a dedicated local stack (tests/support/stack.py's, on
127.0.0.1:$FUNDROUTER_BENCH_PORT, default 4590, state in .fundrouter/bench; always
stopped at the end).

a. Intake to decision: `fundrouter load --json` runs (no lifecycle events): a warm-up,
   a paced run, a 300-order burst (latency) and a 2,000-order burst (throughput).
b. On ONE line, tables of their own, the same server and threads: "claims"
   (DynamoMatchStore.claim, one order at a time), "group" (the matcher service as
   fundrouter.bootstrap.match_service() builds it, deciding the largest burst in
   stream batches of 100 with `match_all`: its group commit claims up to 45 orders
   a TransactWriteItems) and "raw" (a plain conditional UpdateItem on one item).
c. Expiry: a backlog of expired holds on one line, the deployed ReconcilerFunction
   invoked run after run until the line holds nothing.
d. The largest burst written straight into the Orders table, decided by the deployed
   matcher fed by ministack's stream poller (one serial thread: decision 33).
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from common import AMOUNT, create_tables, expired_holds, header, line_config, order_key, table
from fundrouter.domain.clock import utc_now
from fundrouter.domain.errors import Unavailable
from fundrouter.domain.orders import Candidate, Decision, Order, OrderStatus
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import order_item
from fundrouter.persistence.retries import batch_get
from fundrouter.service.matching import LineCatalog, MatchOutcome, MatchService
from fundrouter.service.ports import ClaimResult

from tests.support.aws import put_all
from tests.support.orders import received
from tests.support.requests import Answers
from tests.support.stack import LocalStack, running_stack

PORT = os.environ.get("FUNDROUTER_BENCH_PORT", "4590")
STATE_DIR = ".fundrouter/bench"
LEVELS = (1, 4, 16)
KINDS = ("raw", "claims", "group")
WARM_CALLS = 20
RAW_CAP_FACTOR = 4
STREAM_BATCH = 100
BURST_SECONDS = 300.0
# The product's clients skip botocore's parameter validation (fundrouter.bootstrap.client)
NO_RETRIES = Config(
    max_pool_connections=10,
    retries={"mode": "standard", "total_max_attempts": 1},
    parameter_validation=False,
)
COUNTER = {"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}}
RAW_UPDATE = {
    "Key": COUNTER,
    "UpdateExpression": "SET n = n + :one",
    "ConditionExpression": "n < :max",
    "ExpressionAttributeValues": {":one": {"N": "1"}, ":max": {"N": str(10**12)}},
}


@dataclass
class RateRun:
    clients: int
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)

    def rate(self) -> float:
        return self.outcomes["ok"] / self.seconds if self.seconds else 0.0


@dataclass
class Figures:
    loads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rates: list[dict[str, RateRun]] = field(default_factory=list)  # by level, by kind
    burst: int = 0
    table_burst: float | None = None  # matched/s, 4d
    skipped: str | None = None


def report(args: Any) -> Figures:
    header(f"4. The matcher on a dedicated local stack (ministack, 127.0.0.1:{PORT})")
    figures, started = Figures(burst=max(args.bursts)), time.perf_counter()
    try:
        with contextmanager(running_stack)(PORT, STATE_DIR) as stack:
            print(f"stack ready in {time.perf_counter() - started:.0f} s")
            print("\n4a. Intake to decision: fundrouter load --json --no-events")
            figures.loads = report_loads(stack, args)
            print("\n4b. Claims/s and a burst's group commit on ONE line vs raw updates/s")
            figures.rates = report_rates(stack, args, figures.burst)
            print("\n4c. Expiry throughput of the deployed ReconcilerFunction")
            report_expiry(stack, args.expiry_holds)
            print("\n4d. A burst written straight into the Orders table: the deployed matcher")
            figures.table_burst = report_table_burst(stack, figures.burst)
    except pytest.fail.Exception as error:  # no stack
        figures.skipped = str(error)
        print(f"skipped: {error}")
    return figures


def load(
    stack: LocalStack, args: Any, orders: int, rate: float | None = None, quiet: bool = False
) -> dict[str, Any]:
    """`fundrouter load --json`: its report as it prints it (unless `quiet`), its
    figures returned."""
    command = [sys.executable, "-m", "fundrouter_cli", "load", "--orders", str(orders), "--yes"]
    command += ["--concurrency", str(args.submitters), "--capacity", "3", "--no-events", "--json"]
    command += ["--timeout", str(args.stack_seconds)] + (["--rate", str(rate)] if rate else [])
    print(f"+ fundrouter {' '.join(command[3:])}", flush=True)
    env, report = os.environ | stack.settings, subprocess.DEVNULL if quiet else None
    done = subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=report, text=True, check=False
    )
    if not done.stdout.strip():
        raise pytest.fail.Exception(f"fundrouter load failed ({done.returncode})")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def report_loads(stack: LocalStack, args: Any) -> list[tuple[str, dict[str, Any]]]:
    """A warm-up (the functions' workers started), a paced run, then the bursts; lines
    hold 3x a run's amount (--capacity 3): the first takes them all."""
    load(stack, args, 2 * args.submitters, quiet=True)
    runs = [(f"paced {args.rate:g}/s", load(stack, args, args.latency_orders, args.rate))]
    return runs + [(f"burst {n:,}", load(stack, args, n)) for n in args.bursts if n]


def report_table_burst(stack: LocalStack, orders: int) -> float | None:
    """`orders` RECEIVED orders put into the Orders table at once (BatchWriteItem), as
    intake stores them, for the deployed matcher to decide from the stream: its rate
    without the HTTP intake in front of it. From the first write to the last decision
    (the orders' updatedAt, the server's clock), read once a second."""
    client, now = stack.client("dynamodb"), utc_now()
    table_name = stack.settings["FUNDROUTER_ORDERS_TABLE"]
    lines = DynamoLineRepository(client, stack.settings["FUNDROUTER_LINES_TABLE"])
    lines.put_config("bench-burst", line_config(limit=10**15, minAmount=AMOUNT, priority=1), now)
    run = uuid.uuid4().hex[:8]
    batch = [received(f"burst-{run}-{i:05d}", AMOUNT, now) for i in range(orders)]
    started = utc_now()
    put_all(client, table_name, [order_item(o) for o in batch])
    written, deadline = (utc_now() - started).total_seconds(), time.monotonic() + BURST_SECONDS
    waiting = [order_key(o.tenant_id, o.order_id) for o in batch]
    decided: dict[str, tuple[str, str]] = {}
    while waiting and time.monotonic() < deadline:
        time.sleep(1.0)
        for item in batch_get(client, table_name, waiting):
            if item["status"]["S"] != "RECEIVED":
                decided[item["pk"]["S"]] = (item["status"]["S"], item["updatedAt"]["S"])
        waiting = [k for k in waiting if k["pk"]["S"] not in decided]
    if not decided:
        print(f"{orders:,} orders written in {written:.1f} s; none decided in {BURST_SECONDS} s")
        return None
    statuses = Counter(status for status, _ in decided.values())
    span = (max(datetime.fromisoformat(at) for _, at in decided.values()) - started).total_seconds()
    rate = statuses.get(OrderStatus.MATCHED, 0) / span
    print(f"{orders:,} orders written in {written:.1f} s (BatchWriteItem, 25 a call);")
    print(f"decided {len(decided):,} ({dict(statuses)}) {span:.1f} s after the first write:")
    print(f"{rate:.1f} matched orders/s")
    return rate


def outcome(report: object) -> str:
    if isinstance(report, Exception):
        return f"error {type(report).__name__}"
    found = getattr(report, "outcome", None) or getattr(report, "result", None)
    return "ok" if found in (MatchOutcome.MATCHED, ClaimResult.CLAIMED) else str(found)


class ClaimRates:
    """Tables of their own (the deployed matcher never sees them), one line, orders
    inserted beforehand as intake writes them, a counter item, one counted client per
    thread."""

    def __init__(self, stack: LocalStack, orders: int) -> None:
        run, now = uuid.uuid4().hex[:8], utc_now()
        self.orders_table, self.lines_table = f"bench-orders-{run}", f"bench-lines-{run}"
        self.admin = stack.client("dynamodb", NO_RETRIES)
        create_tables(self.admin, OrdersTable=self.orders_table, LinesTable=self.lines_table)
        lines = DynamoLineRepository(self.admin, self.lines_table)
        self.line = lines.put_config("bench-one-line", line_config(minAmount=AMOUNT), now)
        self.admin.put_item(TableName=self.lines_table, Item=COUNTER | {"n": {"N": "0"}})
        started = time.perf_counter()
        self.orders = [received(f"claim-{n:06d}", AMOUNT, now) for n in range(orders)]
        put_all(self.admin, self.orders_table, [order_item(o) for o in self.orders])
        self.inserted = time.perf_counter() - started
        self.clients = [stack.client("dynamodb", NO_RETRIES) for _ in range(max(LEVELS))]
        self.counted = [Answers(client) for client in self.clients]
        self.used, self.ok = 0, Counter[str]()

    def worker(self, kind: str, client: Any, orders: list[Order]) -> Callable[[int], list[Any]]:
        """A call of `kind` on the `index`-th of `orders`: its outcomes."""
        if kind == "raw":
            return lambda _: [client.update_item(TableName=self.lines_table, **RAW_UPDATE)]
        lines = DynamoLineRepository(client, self.lines_table)
        store = DynamoMatchStore(client, self.orders_table, lines)
        if kind == "group":  # as fundrouter.bootstrap.match_service() builds it
            service = MatchService(LineCatalog(lines), store, utc_now)

            def decide(index: int) -> list[Any]:
                with service.batch():
                    return service.match_all(orders[index : index + STREAM_BATCH])

            return decide
        claimed = Candidate(line_id=self.line.line.line_id, outcome="CLAIMED")
        decision = Decision(strategy="PRIORITY", candidates=[claimed])

        def claim(index: int) -> list[Any]:
            at = utc_now()
            hold = at + timedelta(minutes=15)
            return [store.claim(orders[index], self.line, at, hold, decision)]

        return claim

    def run(self, kind: str, found: RateRun, count: int, seconds: float) -> None:
        """`found.clients` threads sharing `count` raw updates, claims or orders in
        stream batches (each run on orders of its own), until done or `seconds` (the
        clock starts when all threads are ready); added to `found`."""
        orders = [] if kind == "raw" else self.orders[self.used : self.used + count]
        self.used += len(orders)
        step = STREAM_BATCH if kind == "group" else 1
        calls, start, threads = iter(range(0, count, step)), [0.0], found.clients
        barrier = threading.Barrier(threads, action=lambda: start.append(time.perf_counter()))

        def loop(client: Any, counted: Answers) -> tuple[Counter[str], Counter[str], float]:
            work, mine = self.worker(kind, client, orders), Counter[str]()
            counted.reset()
            barrier.wait(timeout=60)
            # next() on a range iterator is atomic under the GIL: each call made once
            while (
                time.perf_counter() < start[-1] + seconds and (i := next(calls, None)) is not None
            ):
                try:
                    mine.update(outcome(r) if kind != "raw" else "ok" for r in work(i))
                except (ClientError, BotoCoreError, Unavailable) as error:
                    code = getattr(error, "response", {}).get("Error", {}).get("Code")
                    mine[f"error {code or type(error).__name__}"] += 1
            return mine, counted.counts(), time.perf_counter()

        with ThreadPoolExecutor(threads) as pool:
            done = list(pool.map(loop, self.clients[:threads], self.counted))
        for outcomes, requests, _ in done:
            found.outcomes.update(outcomes)
            found.requests.update(requests)
        found.seconds += max(end for *_, end in done) - start[-1]
        self.ok[kind] += sum(outcomes["ok"] for outcomes, *_ in done)


def report_rates(stack: LocalStack, args: Any, burst: int) -> list[dict[str, RateRun]]:
    """`claim_rounds` rounds over the levels, the kinds in turn first (none always on a
    warmer server), summed per level."""
    cap, seconds, rounds = args.claims_per_level, args.claim_seconds, args.claim_rounds
    # a run's size and time bound, by kind: raw costs no preparation, so time bounds it
    runs = {"raw": (RAW_CAP_FACTOR * cap, seconds), "claims": (cap, seconds)}
    runs["group"] = (burst, BURST_SECONDS)
    per_round = len(LEVELS) * (cap + burst)
    bench = ClaimRates(stack, WARM_CALLS + STREAM_BATCH + per_round * rounds)
    for kind in KINDS:  # warm-up, not counted
        bench.run(kind, RateRun(1), STREAM_BATCH if kind == "group" else WARM_CALLS, 30)
    results = [{kind: RateRun(n) for kind in KINDS} for n in LEVELS]
    for round_no in range(rounds):
        for level in results:
            shift = round_no % len(KINDS)
            for kind in KINDS[shift:] + KINDS[:shift]:
                bench.run(kind, level[kind], *runs[kind])
    print(f"{len(bench.orders)} orders inserted (BatchWriteItem) in {bench.inserted:.1f} s;")
    print(f"a run: {cap} claims ({RAW_CAP_FACTOR * cap} raw updates) or {seconds:g} s at most;")
    print(f"group: {burst:,} orders in batches of {STREAM_BATCH}, a batch a call (match_all);")
    print(f"{rounds} rounds, warm-up calls of each; botocore retries off")
    rows = [rate_row(kind, level) for level in results for kind in KINDS]
    table(("clients", "kind", "per s", "ratio to raw", "done in", "requests per success"), rows)
    record = DynamoLineRepository(bench.admin, bench.lines_table).get(bench.line.line.line_id)
    reserved = record.line.counters.reserved if record else None
    matched = bench.ok["claims"] + bench.ok["group"]
    print(f"line reserved {reserved:,} = (claims + group matched) x {AMOUNT:,}:", end=" ")
    print(reserved == matched * AMOUNT)
    print("clients and ministack share this machine's cores: compare ratios, not rates")
    return results


def rate_row(kind: str, level: dict[str, RateRun]) -> tuple[Any, ...]:
    run, raw = level[kind], level["raw"]
    ok = max(1, run.outcomes["ok"])
    per = ", ".join(f"{k} {v / ok:.2f}" for k, v in sorted(run.requests.items()))
    other = {k: v for k, v in run.outcomes.items() if k != "ok"}
    ratio = f"{run.rate() / raw.rate():.2f}" if raw.rate() else "nan"
    clients = run.clients if kind == KINDS[0] else ""
    done = f"{run.outcomes['ok']}/{run.seconds:.1f}s"
    per += f"; not: {other}" if other else ""
    return (clients, kind, f"{run.rate():.0f}", ratio, done, per)


def report_expiry(stack: LocalStack, holds: int, max_runs: int = 10) -> None:
    """The clock runs from the first invocation to the end of the run that released
    the last hold (the schedule also fires each minute: what it expired is in no run)."""
    started, names = time.perf_counter(), {"OrdersTable": "ORDERS", "LinesTable": "LINES"}
    tables = {table: stack.settings[f"FUNDROUTER_{name}_TABLE"] for table, name in names.items()}
    left = expired_holds(stack.client("dynamodb"), tables, "bench-expiry", holds)
    seeded = time.perf_counter() - started
    aws_lambda = stack.client("lambda", Config(read_timeout=120))
    functions = aws_lambda.list_functions()["Functions"]
    name = next(f["FunctionName"] for f in functions if "ReconcilerFunction" in f["FunctionName"])
    runs, started = [], time.perf_counter()
    for _ in range(max_runs):
        answer = aws_lambda.invoke(FunctionName=name, Payload=b'{"time": "bench"}')
        summary = json.loads(answer["Payload"].read() or b"{}")
        runs.append(f"{len(summary.get('expired', [])):,}/{len(summary.get('failures', []))}")
        if left(orders=False)[1] == 0:
            break
    seconds = time.perf_counter() - started
    missed, reserved, still = left()
    print(f"{holds:,} holds expired a minute ago, seeded in {seeded:.0f} s")
    print(f"runs (expired/failures): {', '.join(runs)}")
    per_minute = holds / seconds * 60
    print(f"expiry throughput: {per_minute:,.0f} holds a minute ({holds:,} in {seconds:.1f} s)")
    print(f"missed: {missed} not EXPIRED; line reserved {reserved}, MATCHED count {still}")


def summary(figures: Figures) -> None:
    """Issue 11's figures: intake to MATCHED of each run (4a); per second against raw
    conditional updates at each level of 4b, one claim at a time and the group commit
    (4b), and the largest burst's matched orders over HTTP (4a) and into the table (4d)."""
    for label, run in figures.loads:
        found = run["phases"]["matched"]
        print(
            f"intake to MATCHED on ministack, {label}: p50 {found.get('p50Ms', 0):.0f} ms,"
            f" p99 {found.get('p99Ms', 0):.0f} ms; {found['perSecond']:.1f} matched/s"
        )
    http = [run["phases"]["matched"]["perSecond"] for name, run in figures.loads if "burst" in name]
    rates: list[tuple[str, Callable[[dict[str, RateRun]], float]]] = [
        ("claims on one line (4b)", lambda r: r["claims"].rate()),
        (f"{figures.burst:,}-order burst, group commit (4b)", lambda r: r["group"].rate()),
        ("  matched over HTTP (4a)", lambda _: http[-1] if http else 0.0),
        ("  matched from the table (4d)", lambda _: figures.table_burst or 0.0),
    ]
    print("per second vs raw updates/s (ratio), by clients:")
    for what, rate in rates:
        pairs = [(r["raw"], rate(r)) for r in figures.rates if r["raw"].rate() and rate(r)]
        if pairs:
            cells = (
                f"{raw.clients}: {n:.0f} vs {raw.rate():.0f} ({n / raw.rate():.2f})"
                for raw, n in pairs
            )
            print(f"  {what}: {'; '.join(cells)}")
    # each at the number of clients it does best with
    group, raw = (
        max((r[k] for r in figures.rates), key=RateRun.rate, default=RateRun(0))
        for k in ("group", "raw")
    )
    if raw.rate():
        print(
            f"  best of each: group commit {group.rate():.0f}/s ({group.clients} clients)"
            f" vs raw {raw.rate():.0f}/s ({raw.clients}): {group.rate() / raw.rate():.2f}"
        )
