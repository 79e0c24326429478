"""`make bench` section 4: the matcher on a dedicated local stack (ministack).

The stack is tests/support/stack.py's (scripts/localstack.py up, as `make up`) on
127.0.0.1:4590 (FUNDROUTER_BENCH_PORT), state in .fundrouter/bench, so it never meets a
developer's stack (4566) or the tests' (4577); it is always stopped at the end. Then:

a. Intake to MATCHED: orders are POSTed with the CLI's client (fundrouter_cli.client,
   no retries) by a few concurrent submitters, paced to a fixed rate (the latency
   figures), then a burst sent as fast as they go (what a backlog does); the deployed
   MatcherFunction, fed by the Orders stream, matches them. Each order's latency is the
   MATCHED history entry's `at` minus the client's wall-clock time just before the POST:
   both clocks are this machine's. The orders are read back as `fundrouter load` reads
   them (fundrouter_cli.workload.await_decisions) until none is still RECEIVED.
b. Claims per second against one line at 1, 4 and 16 client threads, each calling the
   matcher's claim (DynamoMatchStore.claim: line, day and order in one
   TransactWriteItems) on orders inserted beforehand, next to the raw rate of a plain
   conditional UpdateItem on one counter item, same server, same run, same threads, on
   tables of their own (template.yaml's schemas), so the deployed matcher never sees them.
c. Expiry throughput: a backlog of expired holds on one line and the deployed
   ReconcilerFunction, invoked run after run until the line holds nothing.

Only 127.0.0.1 is ever contacted.
"""

import http.client
import json
import os
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from common import Calls, create_tables, header, line_body, order_body, put_all, spread
from fundrouter.domain.clock import utc_now
from fundrouter.domain.errors import Unavailable
from fundrouter.domain.lifecycle import matched
from fundrouter.domain.lines import LineConfig, LineRecord
from fundrouter.domain.orders import Candidate, Decision, Order, OrderStatus
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import ORDER_SK, order_item, order_pk
from fundrouter.persistence.retries import batch_get
from fundrouter.service.ports import ClaimResult
from fundrouter_cli import workload
from fundrouter_cli.client import ApiClient, Reply, TransportError
from fundrouter_cli.config import Settings
from fundrouter_cli.errors import CliError
from fundrouter_cli.stats import percentile

from tests.support.orders import TENANT, received
from tests.support.stack import running_stack
from tests.support.template import ROOT

PORT = os.environ.get("FUNDROUTER_BENCH_PORT", "4590")
HOST = f"127.0.0.1:{PORT}"
ENDPOINT = f"http://{HOST}"
STATE_DIR = ".fundrouter/bench"
CLAIM_AMOUNT = 10_000
CLIENT_LEVELS = (1, 4, 16)
WARM_CALLS = 20
RAW_CAP_FACTOR = 4
EXPIRY_LINE = "bench-expiry"


@dataclass
class Figures:
    phases: list["Phase"] = field(default_factory=list)
    rates: list[tuple["RateRun", "RateRun"]] = field(default_factory=list)
    skipped: str | None = None


def report(args: Any) -> Figures:
    header(f"4. The matcher on a dedicated local stack (ministack, {HOST})")
    figures, started = Figures(), time.perf_counter()
    try:
        with contextmanager(running_stack)(PORT, STATE_DIR) as stack:
            print(
                f"stack: scripts/localstack.py up --arch {args.arch}, state in {STATE_DIR},"
                f" ready in {time.perf_counter() - started:.0f} s"
            )
            print(f"deployed layer identical to layers/fundrouter now: {layer_matches(args.arch)}")
            settings = stack.settings
            print("\n4a. Intake to MATCHED (HTTP API -> Orders stream -> MatcherFunction)")
            figures.phases = report_latency(settings, args)
            print(
                "\n4b. Claims per second against ONE line vs raw conditional updates, same server"
            )
            cap, seconds, rounds = args.claims_per_level, args.claim_seconds, args.claim_rounds
            figures.rates, bench = measure_rates(cap, seconds, rounds)
            report_rates(figures.rates, bench, cap, seconds, rounds)
            print("\n4c. Expiry throughput: a backlog of expired holds and the deployed reconciler")
            report_expiry(settings, args.expiry_holds)
    except (pytest.fail.Exception, CliError) as error:  # no stack, or it refused the client
        figures.skipped = str(error)
        print(f"skipped: {error}")
    return figures


def layer_matches(arch: str) -> str:
    """Whether the layer sam built for this stack (and so deployed) is the working
    tree's layer source as it is now: other people may edit it while the bench runs."""
    source = ROOT / "layers" / "fundrouter" / "fundrouter"
    built = ROOT / STATE_DIR / f"build-{arch}" / "SharedLayer" / "python" / "fundrouter"
    if not built.is_dir():
        return "unknown (no build found)"
    names = {p.relative_to(source) for p in source.rglob("*.py")}
    names |= {p.relative_to(built) for p in built.rglob("*.py")}
    differ = sorted(
        str(n)
        for n in names
        if not (source / n).is_file()
        or not (built / n).is_file()
        or (source / n).read_bytes() != (built / n).read_bytes()
    )
    where = built.relative_to(ROOT).parents[2]
    return (
        f"NO, {len(differ)} file(s) differ from {where}: {', '.join(differ)}"
        if differ
        else (f"yes ({where})")
    )


def stack_client(service: str, read_timeout: int = 30) -> Any:
    """A client of the bench stack, with no retries of its own: whatever the server
    refuses is seen and counted."""
    return boto3.session.Session().client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="000000000000",
        aws_secret_access_key="local",  # noqa: S106 - ministack accepts any secret
        config=Config(
            max_pool_connections=10,
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=read_timeout,
        ),
    )


# ------------------------------------------------------------------ a. intake to MATCHED


class KeepAlive:
    """A transport for the CLI's client that keeps one connection per thread and host
    open: urllib's closes each one, and a new connection to ministack costs more than
    the request (what is measured is the API, not the connection)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def __call__(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        parts = urllib.parse.urlsplit(url)
        open_ones: dict[str, http.client.HTTPConnection] = self.local.__dict__.setdefault("c", {})
        for attempt in range(2):
            connection = open_ones.pop(parts.netloc, None) or http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=timeout
            )
            try:
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                connection.request(method, target, data, dict(headers))
                response = connection.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()  # a kept-alive connection the server closed: once more
                if attempt:
                    raise TransportError("connection dropped", retryable=True) from None
                continue
            except OSError as error:
                raise TransportError(str(error), retryable=False) from None
            if not response.will_close:
                open_ones[parts.netloc] = connection
            kind, after = response.headers.get_content_type(), response.headers.get("Retry-After")
            return Reply(response.status, body, kind, after)
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Phase:
    """One batch of orders POSTed and read back, and what the reads show."""

    label: str
    sent: dict[str, int]  # order id -> wall clock just before its POST, if accepted
    posted: workload.Outcomes
    submit_seconds: float
    read: dict[str, dict[str, Any]] = field(default_factory=dict)
    collect_seconds: float = 0.0
    deadline_hit: bool = False
    statuses: Counter[str] = field(default_factory=Counter)
    lines: Counter[str] = field(default_factory=Counter)
    to_matched_ms: list[float] = field(default_factory=list)
    to_received_ms: list[float] = field(default_factory=list)
    received_to_matched_ms: list[float] = field(default_factory=list)
    last_matched_ns: int = 0

    def analyse(self) -> "Phase":
        self.statuses.update(self.posted.reasons)
        for order_id, sent_ns in self.sent.items():
            order = self.read.get(order_id)
            self.statuses[str(order["status"]) if order else "not found"] += 1
            history: dict[str, int] = {}
            for entry in (order or {}).get("history", []):  # the first entry of each status
                history.setdefault(str(entry["status"]), wall_ns(entry["at"]))
            if order is None or "MATCHED" not in history:
                continue
            self.lines[str(order.get("lineId"))] += 1
            self.last_matched_ns = max(self.last_matched_ns, history["MATCHED"])
            self.to_matched_ms.append((history["MATCHED"] - sent_ns) / 1e6)
            self.to_received_ms.append((history["RECEIVED"] - sent_ns) / 1e6)
            self.received_to_matched_ms.append((history["MATCHED"] - history["RECEIVED"]) / 1e6)
        return self

    def drained(self) -> float:
        """MATCHED orders per second, from the first POST to the last MATCHED."""
        span = (self.last_matched_ns - min(self.sent.values(), default=0)) / 1e9
        return len(self.to_matched_ms) / span if span > 0 else 0.0


def wall_ns(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1_000_000) * 1000


def phase(
    client: ApiClient, args: Any, label: str, prefix: str, *, count: int, rate: float
) -> Phase:
    """`count` orders POSTed by `args.submitters` threads; with a `rate`, order i is not
    sent before i / rate seconds from the start (open loop: a late order is sent at
    once, not skipped). Then read back until settled or `args.stack_seconds` pass."""
    sent: dict[str, int] = {}
    posted = workload.Outcomes()
    started = time.perf_counter()

    def post(index: int) -> None:
        if rate:
            time.sleep(max(0.0, started + index / rate - time.perf_counter()))
        order_id = f"bench-{prefix}-{index:05d}"
        sent_ns, start = time.time_ns(), time.perf_counter()
        try:
            client.submit_order(order_body(order_id))
        except CliError as error:
            posted.refused(f"HTTP {getattr(error, 'status', -1)}")
            return
        posted.ok((time.perf_counter() - start) * 1000)
        sent[order_id] = sent_ns

    workload.parallel(range(count), post, args.submitters, lambda _: None)
    result = Phase(label, sent, posted, time.perf_counter() - started)
    started = time.perf_counter()
    result.read = workload.await_decisions(
        client, set(sent), None, args.stack_seconds, lambda _: None
    )
    result.collect_seconds = time.perf_counter() - started
    result.deadline_hit = any(o.get("status") == "RECEIVED" for o in result.read.values())
    return result.analyse()


def report_latency(settings: dict[str, str], args: Any) -> list[Phase]:
    """A paced phase (the latency figures) and an unpaced burst, after a warm-up."""
    config = Settings(settings, dict.fromkeys(settings, "local stack"))
    client = ApiClient(config, transport=KeepAlive(), retries=0)
    run = uuid.uuid4().hex[:8]
    first = f"bench-a-{run}"
    client.put_line(first, line_body(priority=10))
    client.put_line(f"bench-b-{run}", line_body(priority=20, funderId="trust-b"))
    # Warm-up, not counted: two orders per submitter, so that the API and the matcher
    # have their workers started (a cold start is not the latency measured here).
    warm = phase(client, args, "warm-up", f"w{run}", count=2 * args.submitters, rate=0)
    paced = f"paced at {args.rate:g} orders/s"
    phases = [phase(client, args, paced, f"p{run}", count=args.latency_orders, rate=args.rate)]
    if args.burst_orders:
        burst = phase(client, args, "burst, unpaced", f"b{run}", count=args.burst_orders, rate=0)
        phases.append(burst)
    print(
        f"orders: POST /v1/orders with a tenant token, {args.submitters} concurrent submitters"
        f" (keep-alive), after {len(warm.sent)} warm-up orders (not counted)"
    )
    print("from: the client's time.time_ns() just before each POST; to: the stored order's")
    print("history `at` (RECEIVED by the API, MATCHED by the matcher), both on this machine's")
    print("clock; `at` has millisecond resolution (truncated), and MATCHED's is taken as the")
    print("matcher starts on the order, before its claim transaction commits (a few ms later)")
    for p in phases:
        posted = len(p.sent) + p.posted.failed
        print(
            f"\n{p.label}: {posted} orders POSTed in {p.submit_seconds:.1f} s"
            f" ({posted / p.submit_seconds:.1f} orders/s offered);"
            f" MATCHED {p.drained():.1f} orders/s from first POST to last MATCHED"
        )
        print(f"  outcome: {', '.join(f'{k}: {v}' for k, v in sorted(p.statuses.items()))}")
        print(f"  matched to: {', '.join(f'{k}: {v}' for k, v in sorted(p.lines.items()))}")
        print(
            f"  read back through GET /v1/orders until settled: {p.collect_seconds:.1f} s after"
            " the last POST"
            + (" (deadline reached: orders still RECEIVED are left out)" if p.deadline_hit else "")
        )
        print(f"  over {len(p.to_matched_ms)} MATCHED orders:")
        print(f"    POST sent -> MATCHED          {spread(p.to_matched_ms)}")
        print(f"    POST sent -> RECEIVED stored  {spread(p.to_received_ms)}")
        print(f"    RECEIVED  -> MATCHED          {spread(p.received_to_matched_ms)}")
        print(f"    POST round trip (client)      {spread(p.posted.latencies_ms)}")
    reserved = client.get_line(first)["reserved"]
    matched_amount = sum(
        int(order["amount"])
        for p in [warm, *phases]
        for order in p.read.values()
        if order.get("lineId") == first and order["status"] == "MATCHED"
    )
    equal = "yes" if reserved == matched_amount else "NO"
    print(
        f"\nfirst line's reserved after the phases: {reserved:,}; sum of its MATCHED orders"
        f" (warm-up included): {matched_amount:,}; equal: {equal}"
    )
    return phases


# ------------------------------------------------------------------ b. claims per second


@dataclass
class RateRun:
    clients: int
    kind: str
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)

    @property
    def successes(self) -> int:
        return self.outcomes["ok"]

    def rate(self) -> float:
        return self.successes / self.seconds if self.seconds else 0.0

    def add(self, other: "RateRun") -> None:
        self.seconds += other.seconds
        self.outcomes.update(other.outcomes)
        self.requests.update(other.requests)


@dataclass
class ClaimBench:
    orders_table: str
    lines_table: str
    line: LineRecord
    orders: list[Order]
    clients: list[tuple[Any, Calls]]  # one per thread, each with its requests counted
    insert_seconds: float
    used: int = 0

    def take(self, count: int) -> list[Order]:
        """The next `count` pre-inserted orders, each claimed at most once."""
        self.used += count
        return self.orders[self.used - count : self.used]

    def requests(self) -> Counter[str]:
        return sum((calls.counts() for _, calls in self.clients), Counter())

    def claims(self, threads: int, count: int) -> list[Callable[[int], str]]:
        """The matcher's DynamoMatchStore.claim (with its own retries on contention) on a
        pre-inserted order: line + day + order in one TransactWriteItems."""
        line_id = self.line.line.line_id
        decision = Decision(
            strategy="PRIORITY", candidates=[Candidate(line_id=line_id, outcome="CLAIMED")]
        )
        orders = self.take(count)

        def worker(client: Any) -> Callable[[int], str]:
            lines = DynamoLineRepository(client, self.lines_table)
            store = DynamoMatchStore(client, self.orders_table, lines)

            def claim(index: int) -> str:
                now = utc_now()
                hold = now + timedelta(minutes=15)
                attempt = store.claim(orders[index], self.line, now, hold, decision)
                return "ok" if attempt.result is ClaimResult.CLAIMED else attempt.result.value

            return claim

        return [worker(client) for client, _ in self.clients[:threads]]

    def raw(self, threads: int) -> list[Callable[[int], str]]:
        """One plain conditional UpdateItem on one counter item per call."""

        def worker(client: Any) -> Callable[[int], str]:
            def update(_: int) -> str:
                client.update_item(
                    TableName=self.lines_table,
                    Key={"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}},
                    UpdateExpression="SET n = n + :one",
                    ConditionExpression="n < :max",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": str(10**12)}},
                )
                return "ok"

            return update

        return [worker(client) for client, _ in self.clients[:threads]]


def setup_claims(total_orders: int, threads: int) -> ClaimBench:
    run = uuid.uuid4().hex[:8]
    orders_table = f"fundrouter-bench-claims-orders-{run}"
    lines_table = f"fundrouter-bench-claims-lines-{run}"
    admin = stack_client("dynamodb")
    create_tables(admin, OrdersTable=orders_table, LinesTable=lines_table)
    for name in (orders_table, lines_table):
        admin.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    now = utc_now()
    config = LineConfig.model_validate(line_body(minAmount=CLAIM_AMOUNT))
    line = DynamoLineRepository(admin, lines_table).put_config("bench-one-line", config, now)
    admin.put_item(
        TableName=lines_table,
        Item={"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}, "n": {"N": "0"}},
    )
    started = time.perf_counter()
    orders = [received(f"claim-{n:06d}", CLAIM_AMOUNT, now) for n in range(total_orders)]
    put_all(admin, orders_table, [order_item(o) for o in orders])
    clients = [
        (client, Calls(client)) for client in (stack_client("dynamodb") for _ in range(threads))
    ]
    return ClaimBench(
        orders_table, lines_table, line, orders, clients, time.perf_counter() - started
    )


def run_threads(
    bench: ClaimBench, kind: str, workers: list[Callable[[int], str]], cap: int, seconds: float
) -> RateRun:
    """One thread per worker calls it with a shared running index until `cap` calls
    were made or `seconds` passed; the clock starts when all threads are ready."""
    lock = threading.Lock()
    counter = iter(range(cap))
    box: dict[str, float] = {}
    ends: list[float] = []
    outcomes: Counter[str] = Counter()
    barrier = threading.Barrier(len(workers), action=lambda: box.update(start=time.perf_counter()))
    before = bench.requests()

    def loop(work: Callable[[int], str]) -> None:
        mine: Counter[str] = Counter()
        barrier.wait(timeout=60)
        while time.perf_counter() < box["start"] + seconds:
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
    elapsed = max(ends) - box["start"] if ends else 0.0
    return RateRun(len(workers), kind, elapsed, outcomes, bench.requests() - before)


def measure_rates(
    cap: int, seconds: float, rounds: int
) -> tuple[list[tuple[RateRun, RateRun]], ClaimBench]:
    """`rounds` rounds over the levels; raw first in even rounds, claims first in odd
    ones, so neither kind always runs on a warmer server. Summed per level."""
    bench = setup_claims(WARM_CALLS + cap * len(CLIENT_LEVELS) * rounds, max(CLIENT_LEVELS))
    # Warm-up (connections, first transactions), not counted.
    run_threads(bench, "claims", bench.claims(1, WARM_CALLS), WARM_CALLS, 30)
    run_threads(bench, "raw", bench.raw(1), WARM_CALLS, 30)
    results = [(RateRun(n, "claims"), RateRun(n, "raw")) for n in CLIENT_LEVELS]
    for round_no in range(rounds):
        for claims, raw in results:
            for kind in ("raw", "claims") if round_no % 2 == 0 else ("claims", "raw"):
                if kind == "raw":  # costs no preparation: bounded by time first
                    raw.add(
                        run_threads(
                            bench, kind, bench.raw(raw.clients), RAW_CAP_FACTOR * cap, seconds
                        )
                    )
                else:
                    workers = bench.claims(claims.clients, cap)
                    claims.add(run_threads(bench, kind, workers, cap, seconds))
    return results, bench


def report_rates(
    results: list[tuple[RateRun, RateRun]], bench: ClaimBench, cap: int, seconds: float, rounds: int
) -> None:
    print("claim: DynamoMatchStore.claim (TransactWriteItems: line + day + order) on one line,")
    print(
        f"       orders inserted beforehand ({len(bench.orders)} inserted with BatchWriteItem"
        f" in {bench.insert_seconds:.1f} s);"
    )
    print("raw:   UpdateItem SET n = n + 1 with ConditionExpression n < :max on one counter item;")
    print(
        f"       botocore retries off; each run: threads share the work until {cap} claims"
        f" ({RAW_CAP_FACTOR * cap} raw updates) or {seconds:.0f} s, whichever first;"
    )
    print(
        f"one boto3 client per thread; {rounds} rounds over the levels (raw first, then claims"
        f" first), summed per level; {WARM_CALLS} warm-up calls of each first (not counted)"
    )
    print(
        f"tables: {bench.orders_table}, {bench.lines_table} (template.yaml schemas) on {ENDPOINT}"
    )
    print()
    print(
        f"{'clients':>7}  {'claims/s':>9}  {'raw cond. updates/s':>19}  {'ratio':>6}"
        f"  {'claims in':>13}  {'raw in':>13}  requests per claim"
    )
    for claims, raw in results:
        ratio = claims.rate() / raw.rate() if raw.rate() else float("nan")
        per_claim = ", ".join(
            f"{name} {count / max(1, claims.successes):.2f}"
            for name, count in sorted(claims.requests.items())
        )
        print(
            f"{claims.clients:>7}  {claims.rate():>9.0f}  {raw.rate():>19.0f}  {ratio:>6.2f}"
            f"  {claims.successes:>6}/{claims.seconds:5.1f}s"
            f"  {raw.successes:>6}/{raw.seconds:5.1f}s  {per_claim}"
        )
        other = {k: v for k, v in (claims.outcomes + raw.outcomes).items() if k != "ok"}
        raw_errors = {k: v for k, v in raw.requests.items() if k != "UpdateItem"}
        if other or raw_errors:
            print(f"{'':>7}  not counted as successes: {other | raw_errors}")
    claimed = sum(claims.successes for claims, _ in results)
    record = DynamoLineRepository(stack_client("dynamodb"), bench.lines_table).get(
        bench.line.line.line_id
    )
    reserved = record.line.counters.reserved if record else None
    expected = (claimed + WARM_CALLS) * CLAIM_AMOUNT
    print(
        f"line reserved after the runs: {reserved:,}; successful claims (warm-up included)"
        f" x {CLAIM_AMOUNT:,}: {expected:,}; equal: {'yes' if reserved == expected else 'NO'}"
    )
    print("the client threads and ministack share this machine's cores (and each process its")
    print("GIL): compare the ratio, not the absolute rates")


# ------------------------------------------------------------------ c. expiry throughput


def seed_expired_holds(settings: dict[str, str], holds: int) -> float:
    """`holds` MATCHED orders on one line whose holds expired a minute ago, written as
    the matcher writes them (order_item of domain.lifecycle.matched), and the line's
    counters and claim day holding exactly their sum, as the claims would have left them."""
    client, lines_table = stack_client("dynamodb"), settings["FUNDROUTER_LINES_TABLE"]
    now = utc_now()
    config = LineConfig.model_validate(line_body(limit=10**15, minAmount=CLAIM_AMOUNT))
    line = DynamoLineRepository(client, lines_table).put_config(EXPIRY_LINE, config, now).line
    day, then = line.day_of(now), now - timedelta(minutes=16)
    decision = Decision(
        strategy="PRIORITY", candidates=[Candidate(line_id=EXPIRY_LINE, outcome="CLAIMED")]
    )
    started = time.perf_counter()
    items = []
    for index in range(holds):
        held = matched(
            received(f"expiry-{index:06d}", CLAIM_AMOUNT, then),
            line_id=EXPIRY_LINE,
            funder_id=line.config.funder_id,
            now=then,
            hold_expires_at=now - timedelta(minutes=1),
            claim_day=day,
            decision=decision,
        )
        items.append(order_item(held))
    put_all(client, settings["FUNDROUTER_ORDERS_TABLE"], items)
    total = str(holds * CLAIM_AMOUNT)
    client.update_item(
        TableName=lines_table,
        Key={"pk": {"S": line_pk(EXPIRY_LINE)}, "sk": {"S": LINE_SK}},
        UpdateExpression="SET reserved = :t, held = :t, nMatched = :n",
        ExpressionAttributeValues={":t": {"N": total}, ":n": {"N": str(holds)}},
    )
    client.put_item(
        TableName=lines_table,
        Item=day_key(EXPIRY_LINE, day) | {"used": {"N": total}, "lineId": {"S": EXPIRY_LINE}},
    )
    return time.perf_counter() - started


def report_expiry(settings: dict[str, str], holds: int, max_runs: int = 10) -> None:
    """Seed the backlog, then invoke the deployed ReconcilerFunction (as its schedule
    does, one run after another) until the line holds nothing; the clock runs from the
    first invocation to the end of the run that released the last hold."""
    seeded = seed_expired_holds(settings, holds)
    client = stack_client("dynamodb")
    lines = DynamoLineRepository(client, settings["FUNDROUTER_LINES_TABLE"])
    invoke = stack_client("lambda", read_timeout=120).invoke
    functions = stack_client("lambda").list_functions()["Functions"]
    name = next(f["FunctionName"] for f in functions if "ReconcilerFunction" in f["FunctionName"])
    runs, started = [], time.perf_counter()
    for _ in range(max_runs):
        answer = invoke(FunctionName=name, Payload=json.dumps({"time": "bench"}).encode())
        summary = json.loads(answer["Payload"].read() or b"{}")
        runs.append((len(summary.get("expired", [])), len(summary.get("failures", []))))
        record = lines.get(EXPIRY_LINE)
        if record is None or record.line.counters.reserved == 0:
            break
    seconds = time.perf_counter() - started
    record = lines.get(EXPIRY_LINE)
    reserved = record.line.counters.reserved if record else 0
    matched_count = record.orders.get(OrderStatus.MATCHED, 0) if record else 0
    keys = [
        {"pk": {"S": order_pk(TENANT, f"expiry-{i:06d}")}, "sk": {"S": ORDER_SK}}
        for i in range(holds)
    ]
    items = batch_get(client, settings["FUNDROUTER_ORDERS_TABLE"], keys)
    still_held = holds - sum(1 for item in items if item["status"]["S"] == "EXPIRED")
    print(
        f"backlog: {holds:,} holds expired a minute ago on one line, seeded in"
        f" {seeded:.0f} s (BatchWriteItem)"
    )
    print("runs of the deployed ReconcilerFunction invoked one after another (its schedule")
    print("also fires every minute: what a scheduled run expired is in no line below):")
    for number, (expired, failures) in enumerate(runs, 1):
        print(f"  run {number}: {expired:,} expired, {failures} failures")
    per_minute = holds / seconds * 60 if seconds else 0.0
    print(f"expiry throughput: {per_minute:,.0f} holds a minute ({holds:,} in {seconds:.1f} s)")
    print(
        f"missed: {still_held} orders not EXPIRED; line reserved {reserved},"
        f" MATCHED count {matched_count} (0 and 0 when exact)"
    )


def summary(figures: Figures) -> None:
    for p in figures.phases:
        values = p.to_matched_ms
        if values:
            print(
                f"intake to MATCHED on ministack, {p.label}, over {len(values)} orders:"
                f" p50 {percentile(values, 50):.0f} ms, p95 {percentile(values, 95):.0f} ms,"
                f" p99 {percentile(values, 99):.0f} ms"
            )
    print(
        "claims/s on one line vs raw conditional updates/s on ministack: "
        + "; ".join(
            f"{claims.clients} client{'s' if claims.clients > 1 else ''}"
            f" {claims.rate():.0f} vs {raw.rate():.0f}"
            for claims, raw in figures.rates
        )
    )
