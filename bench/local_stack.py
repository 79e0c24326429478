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
d. The largest burst written straight into the Orders table, decided by the deployed
   matcher: its own rate without the HTTP intake.
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
from common import create_tables, expired_holds, header, line_config, order_key, table
from fundrouter.domain.clock import utc_now
from fundrouter.domain.errors import Unavailable
from fundrouter.domain.orders import Candidate, Decision, Order, OrderStatus
from fundrouter.persistence.lines import DynamoLineRepository
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import order_item
from fundrouter.persistence.retries import batch_get
from fundrouter.service.ports import ClaimResult

from tests.support.aws import put_all
from tests.support.orders import received
from tests.support.requests import Answers
from tests.support.stack import LocalStack, running_stack
from tests.support.template import ROOT

PORT = os.environ.get("FUNDROUTER_BENCH_PORT", "4590")
STATE_DIR = ".fundrouter/bench"
AMOUNT = 10_000
LEVELS = (1, 4, 16)
WARM_CALLS = 20
RAW_CAP_FACTOR = 4
NO_RETRIES = Config(max_pool_connections=10, retries={"mode": "standard", "total_max_attempts": 1})
COUNTER = {"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}}
RAW_UPDATE = {
    "Key": COUNTER,
    "UpdateExpression": "SET n = n + :one",
    "ConditionExpression": "n < :max",
    "ExpressionAttributeValues": {":one": {"N": "1"}, ":max": {"N": str(10**12)}},
}
PHASES = (
    ("intake", "POST round trip"),
    ("match", "intake -> decision"),
    ("matched", "intake -> MATCHED"),
)


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


@dataclass
class Figures:
    loads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rates: list[tuple[RateRun, RateRun]] = field(default_factory=list)
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
    tree, deployed = (
        {p.relative_to(r): p.read_bytes() for p in r.rglob("*.py")} for r in (source, built)
    )
    differ = sorted(str(n) for n in tree.keys() | deployed.keys() if tree.get(n) != deployed.get(n))
    return f"deployed layer differs in: {', '.join(differ)}" if differ else "deployed layer = tree"


# ------------------------------------------------------------------ a. fundrouter load


def load(stack: LocalStack, args: Any, orders: int, rate: float | None = None) -> dict[str, Any]:
    command = [sys.executable, "-m", "fundrouter_cli", "load", "--orders", str(orders), "--yes"]
    command += ["--concurrency", str(args.submitters), "--capacity", "3", "--no-events", "--json"]
    command += ["--timeout", str(args.stack_seconds)] + (["--rate", str(rate)] if rate else [])
    done = subprocess.run(
        command, env=os.environ | stack.settings, capture_output=True, text=True, check=False
    )
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
            rows.append(
                ("" if n else label, what, phase["count"], *cells, f"{phase['perSecond']:.1f}")
            )
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(run["outcomes"].items()))
        audit = "ok" if run["audit"]["ok"] else f"FAILED {run['audit']['violations'][:3]}"
        rows.append(("", f"  {outcomes}; audit {audit}"))
    table(("run", "", "orders", "p50 ms", "p95 ms", "p99 ms", "max ms", "/s"), rows)
    return runs


def ratios(figures: Figures) -> None:
    """Issue 11: matched orders/s in the biggest burst (over HTTP, and written straight
    into the table) against the raw rate."""
    bursts = [(label, run) for label, run in figures.loads if label.startswith("burst")]
    measured = [
        (f"{label} over HTTP", run["phases"]["matched"]["perSecond"]) for label, run in bursts
    ]
    measured += (
        [("the same burst written into the table", figures.table_burst)]
        if figures.table_burst
        else []
    )
    for label, rate in measured[-2:] if figures.rates else []:
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
    (the orders' updatedAt, the server's clock), read once a second."""
    client, table_name, now = (
        stack.client("dynamodb"),
        stack.settings["FUNDROUTER_ORDERS_TABLE"],
        utc_now(),
    )
    lines = DynamoLineRepository(client, stack.settings["FUNDROUTER_LINES_TABLE"])
    lines.put_config("bench-burst", line_config(limit=10**15, minAmount=AMOUNT, priority=1), now)
    run = uuid.uuid4().hex[:8]
    batch = [received(f"burst-{run}-{i:05d}", AMOUNT, now) for i in range(orders)]
    started = utc_now()
    put_all(client, table_name, [order_item(o) for o in batch])
    written, deadline = (utc_now() - started).total_seconds(), time.monotonic() + seconds
    waiting = [order_key(o.tenant_id, o.order_id) for o in batch]
    decided: dict[str, tuple[str, str]] = {}
    while waiting and time.monotonic() < deadline:
        time.sleep(1.0)
        found = {
            i["pk"]["S"]: i
            for i in batch_get(client, table_name, waiting)
            if i["status"]["S"] != "RECEIVED"
        }
        decided |= {pk: (i["status"]["S"], i["updatedAt"]["S"]) for pk, i in found.items()}
        waiting = [k for k in waiting if k["pk"]["S"] not in found]
    if not decided:
        print(f"{orders:,} orders written in {written:.1f} s; none decided in {seconds:.0f} s")
        return None
    statuses = Counter(status for status, _ in decided.values())
    span = (max(datetime.fromisoformat(at) for _, at in decided.values()) - started).total_seconds()
    rate = statuses.get(OrderStatus.MATCHED, 0) / span
    print(f"{orders:,} orders written in {written:.1f} s (BatchWriteItem, 25 a call);")
    print(f"decided {len(decided):,} ({dict(statuses)}) {span:.1f} s after the first write:")
    print(f"{rate:.1f} matched orders/s")
    return rate


# ------------------------------------------------------------------ b. claims per second


class ClaimRates:
    """Tables of their own (the deployed matcher never sees them), one line, orders
    inserted beforehand, a counter item, one counted client per thread."""

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
        self.used = 0

    def worker(self, kind: str, client: Any, orders: list[Order]) -> Callable[[int], str]:
        if kind == "raw":

            def update(_: int) -> str:
                client.update_item(TableName=self.lines_table, **RAW_UPDATE)
                return "ok"

            return update
        store = DynamoMatchStore(
            client, self.orders_table, DynamoLineRepository(client, self.lines_table)
        )
        decision = Decision(
            strategy="PRIORITY",
            candidates=[Candidate(line_id=self.line.line.line_id, outcome="CLAIMED")],
        )

        def claim(index: int) -> str:
            at = utc_now()
            attempt = store.claim(
                orders[index], self.line, at, at + timedelta(minutes=15), decision
            )
            return "ok" if attempt.result is ClaimResult.CLAIMED else attempt.result.value

        return claim

    def run(self, kind: str, threads: int, cap: int, seconds: float) -> RateRun:
        """`threads` threads of claims (each run on orders of its own) or raw updates,
        sharing a running index, until `cap` calls or `seconds` (the clock starts
        when all threads are ready)."""
        orders = self.orders[self.used : self.used + cap] if kind == "claims" else []
        self.used += len(orders)
        lock, counter, found = threading.Lock(), iter(range(cap)), RateRun(threads)
        box: dict[str, float] = {}
        ends: list[float] = []
        barrier = threading.Barrier(threads, action=lambda: box.update(t=time.perf_counter()))

        def loop(client: Any, calls: Answers) -> None:
            work, mine = self.worker(kind, client, orders), Counter[str]()
            calls.reset()
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
                found.outcomes.update(mine)
                found.requests.update(calls.counts())

        pool = [
            threading.Thread(target=loop, args=pair)
            for pair in zip(self.clients[:threads], self.counted, strict=False)
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(seconds + 120)
        found.seconds = max(ends) - box["t"] if ends else 0.0
        return found


def report_rates(stack: LocalStack, args: Any) -> list[tuple[RateRun, RateRun]]:
    """`claim_rounds` rounds over the levels, raw first in even rounds and claims first
    in odd ones (neither always on a warmer server), summed per level."""
    cap, seconds, rounds = args.claims_per_level, args.claim_seconds, args.claim_rounds
    bench = ClaimRates(stack, WARM_CALLS + cap * len(LEVELS) * rounds)
    bench.run("claims", 1, WARM_CALLS, 30)  # warm-up, not counted
    bench.run("raw", 1, WARM_CALLS, 30)
    results = [(RateRun(n), RateRun(n)) for n in LEVELS]
    for round_no in range(rounds):
        for claimed, updated in results:
            for kind in ("raw", "claims")[:: 1 if round_no % 2 == 0 else -1]:
                if kind == "raw":  # costs no preparation: bounded by time first
                    updated.add(bench.run("raw", updated.clients, RAW_CAP_FACTOR * cap, seconds))
                else:
                    claimed.add(bench.run("claims", claimed.clients, cap, seconds))
    print(f"{len(bench.orders)} orders inserted (BatchWriteItem) in {bench.inserted:.1f} s;")
    print(f"a run: until {cap} claims ({RAW_CAP_FACTOR * cap} raw updates) or {seconds:g} s;")
    print(f"{rounds} rounds, {WARM_CALLS} warm-up calls of each; botocore retries off")
    head = ("clients", "claims/s", "raw/s", "ratio", "claims in", "raw in", "requests per claim")
    table(head, [rate_row(claimed, updated) for claimed, updated in results])
    total = sum(claimed.outcomes["ok"] for claimed, _ in results) + WARM_CALLS
    record = DynamoLineRepository(bench.admin, bench.lines_table).get(bench.line.line.line_id)
    reserved = record.line.counters.reserved if record else None
    print(f"line reserved {reserved:,} = claims x {AMOUNT:,}: {reserved == total * AMOUNT}")
    print("clients and ministack share this machine's cores: compare ratios, not rates")
    return results


def rate_row(claimed: RateRun, updated: RateRun) -> tuple[Any, ...]:
    ok = max(1, claimed.outcomes["ok"])
    per = ", ".join(f"{k} {v / ok:.2f}" for k, v in sorted(claimed.requests.items()))
    other = {k: v for k, v in (claimed.outcomes + updated.outcomes).items() if k != "ok"}
    other |= {k: v for k, v in updated.requests.items() if k != "UpdateItem"}
    ratio = f"{claimed.rate() / updated.rate():.2f}" if updated.rate() else "nan"
    rates = (f"{claimed.rate():.0f}", f"{updated.rate():.0f}", ratio)
    spans = [f"{r.outcomes['ok']}/{r.seconds:.1f}s" for r in (claimed, updated)]
    return (claimed.clients, *rates, *spans, per + (f"; not successes: {other}" if other else ""))


# ------------------------------------------------------------------ c. expiry throughput


def report_expiry(stack: LocalStack, holds: int, max_runs: int = 10) -> None:
    """The clock runs from the first invocation to the end of the run that released
    the last hold (the schedule also fires each minute: what it expired is in no run)."""
    started, names = time.perf_counter(), {"OrdersTable": "ORDERS", "LinesTable": "LINES"}
    tables = {table: stack.settings[f"FUNDROUTER_{name}_TABLE"] for table, name in names.items()}
    backlog = expired_holds(stack.client("dynamodb"), tables, ["bench-expiry"], holds)
    seeded = time.perf_counter() - started
    aws_lambda = stack.client("lambda", Config(read_timeout=120))
    functions = aws_lambda.list_functions()["Functions"]
    name = next(f["FunctionName"] for f in functions if "ReconcilerFunction" in f["FunctionName"])
    runs, started = [], time.perf_counter()
    for _ in range(max_runs):
        answer = aws_lambda.invoke(FunctionName=name, Payload=b'{"time": "bench"}')
        summary = json.loads(answer["Payload"].read() or b"{}")
        runs.append(f"{len(summary.get('expired', [])):,}/{len(summary.get('failures', []))}")
        if backlog.reserved() == 0:
            break
    seconds = time.perf_counter() - started
    missed, reserved, still = backlog.left()
    print(f"{holds:,} holds expired a minute ago, seeded in {seeded:.0f} s")
    print(f"runs (expired/failures): {', '.join(runs)}")
    per_minute = holds / seconds * 60
    print(f"expiry throughput: {per_minute:,.0f} holds a minute ({holds:,} in {seconds:.1f} s)")
    print(f"missed: {missed} not EXPIRED; line reserved {reserved}, MATCHED count {still}")


def summary(figures: Figures) -> None:
    for label, run in figures.loads:
        found = run["phases"]["matched"]
        print(
            f"intake to MATCHED on ministack, {label}: p50 {found.get('p50Ms', 0):.0f} ms,"
            f" p99 {found.get('p99Ms', 0):.0f} ms; {found['perSecond']:.1f} matched/s"
        )
    rates = "; ".join(f"{c.clients} {c.rate():.0f} vs {r.rate():.0f}" for c, r in figures.rates)
    print(f"claims/s on one line vs raw updates/s: {rates}")
