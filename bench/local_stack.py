"""`make bench` section 4: the matcher on a dedicated local stack (ministack).

The stack is started with scripts/localstack.py on 127.0.0.1:4590, state in
.fundrouter/bench, so it never meets a developer's stack (4566) or the tests' (4577),
and is always stopped at the end. Then:

a. Intake to MATCHED: orders are POSTed over HTTP with a tenant token by a few
   concurrent submitters, paced to a fixed rate (the latency figures), then a burst
   sent as fast as they go (what a backlog does); the deployed MatcherFunction, fed by
   the Orders stream, matches them. Each order's latency is the MATCHED history
   entry's `at` (written by the matcher) minus the client's wall-clock time just
   before the POST: both clocks are this machine's. The orders are read back from the
   table until none is still RECEIVED.
b. Claims per second against one line at 1, 4 and 16 client threads, each calling the
   matcher's claim (DynamoMatchStore.claim: line, day and order in one
   TransactWriteItems) on orders inserted beforehand, next to the raw rate of a plain
   conditional UpdateItem on one counter item, same server, same run, same threads.
   These use their own tables (template.yaml's schemas) on the same ministack, so the
   deployed matcher never sees those orders.

Only 127.0.0.1 is ever contacted.
"""

import base64
import http.client
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from fundrouter.domain.clock import utc_now
from fundrouter.domain.errors import Unavailable
from fundrouter.domain.lifecycle import matched
from fundrouter.domain.lines import LineConfig, LineRecord
from fundrouter.domain.orders import Candidate, Decision, Order, OrderRequest, OrderStatus
from fundrouter.persistence.codec import from_item
from fundrouter.persistence.lines import LINE_SK, DynamoLineRepository, day_key, line_pk
from fundrouter.persistence.matching import DynamoMatchStore
from fundrouter.persistence.orders import ORDER_SK, order_item, order_pk
from fundrouter.persistence.retries import batch_get
from fundrouter.service.ports import ClaimResult

ROOT = Path(__file__).resolve().parents[1]
# FUNDROUTER_BENCH_PORT: another port when 4590 is taken (a second checkout, the integrator).
PORT = int(os.environ.get("FUNDROUTER_BENCH_PORT", "4590"))
HOST = "127.0.0.1"
ENDPOINT = f"http://{HOST}:{PORT}"
STATE_DIR = ".fundrouter/bench"
STACK_NAME = "fundrouter-local"
REGION = "us-east-1"
ACCESS_KEY = "000000000000"
SECRET_KEY = "local"  # noqa: S105 - ministack accepts any secret
PUT_LINE_EVENT = ROOT / "events" / "api" / "put_line.json"
SCRIPT_TIMEOUT_S = 600
HTTP_TIMEOUT_S = 30
ORDER_AMOUNT = 1_250_000
CLAIM_AMOUNT = 10_000
TENANT_SCOPE = "fundrouter/orders.write fundrouter/orders.read"
ADMIN_SCOPE = "fundrouter/lines.admin"


class StackUnavailable(Exception):
    """The bench stack could not be started; section 4 is skipped with the reason."""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# ------------------------------------------------------------------ the stack


def script_env() -> dict[str, str]:
    """This shell's environment without the bench's own fake AWS settings (section 2
    put them in place for moto), plus the bench stack's port and state directory."""
    keep = {"AWS_ACCOUNT_ID_ENDPOINT_MODE"}
    env = {
        name: value
        for name, value in os.environ.items()
        if (not name.startswith(("AWS_", "POWERTOOLS_")) or name in keep)
    }
    return env | {"FUNDROUTER_LOCAL_PORT": str(PORT), "FUNDROUTER_STATE_DIR": STATE_DIR}


def script(command: str, arch: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "localstack.py"), command, "--arch", arch],
        cwd=ROOT,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )


def healthy() -> bool:
    try:
        status, _ = HttpClient(ENDPOINT).request("GET", "/_ministack/health", timeout=2)
    except OSError:
        return False
    return status == 200


def layer_matches_tree(arch: str) -> str:
    """Whether the layer sam built for this stack (and so deployed) is the working
    tree's layer source as it is now: other people may edit it while the bench runs."""
    source = ROOT / "layers" / "fundrouter" / "fundrouter"
    candidates = [
        ROOT / STATE_DIR / f"build-{arch}" / "SharedLayer" / "python" / "fundrouter",
        ROOT / ".aws-sam" / f"local-{arch}" / "SharedLayer" / "python" / "fundrouter",
    ]
    built = next((c for c in candidates if c.is_dir()), None)
    if built is None:
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
    if not differ:
        return f"yes ({where})"
    return f"NO, {len(differ)} file(s) differ from {where}: {', '.join(differ)}"


UP_ATTEMPTS = 2


@contextmanager
def bench_stack(arch: str) -> Iterator[tuple[dict[str, str], float]]:
    """Start the dedicated stack; always stop it. Yields its settings and start-up time.
    `up` is tried twice: `sam build --cached` shares .aws-sam/deps with every other
    build started from this folder, and a concurrent build (tests, make up) can pull a
    dependency folder from under it."""
    script("down", arch)  # a stack left over from an interrupted run keeps old state
    if healthy():
        raise StackUnavailable(f"{ENDPOINT} answers but was not started from {STATE_DIR}")
    started = time.perf_counter()
    try:
        for attempt in range(1, UP_ATTEMPTS + 1):
            up = script("up", arch)
            if up.returncode == 0:
                break
            failure = (up.stderr.strip() or up.stdout.strip() or "no output").splitlines()[-1]
            print(f"bench stack: up attempt {attempt} failed (exit {up.returncode}): {failure}")
            if attempt == UP_ATTEMPTS:
                raise StackUnavailable(
                    f"scripts/localstack.py up failed (exit {up.returncode}):\n"
                    f"{up.stdout[-2000:]}{up.stderr[-2000:]}"
                )
            script("down", arch)
        env_file = ROOT / STATE_DIR / "local.env"
        settings = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        yield settings, time.perf_counter() - started
    finally:
        down = script("down", arch)
        print(f"bench stack: {down.stdout.strip() or down.stderr.strip()} (port {PORT})")


def stack_client(service: str, pool: int = 10, read_timeout: int = HTTP_TIMEOUT_S) -> Any:
    """A client of the bench stack, with no retries of its own: whatever the server
    refuses is seen and counted."""
    return boto3.session.Session().client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(
            max_pool_connections=pool,
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=read_timeout,
        ),
    )


def dynamodb(pool: int = 10) -> Any:
    return stack_client("dynamodb", pool)


def lines_table(settings: dict[str, str]) -> str:
    if "FUNDROUTER_LINES_TABLE" in settings:
        return settings["FUNDROUTER_LINES_TABLE"]
    stack = stack_client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    return str(outputs["LinesTableName"])


# ------------------------------------------------------------------ HTTP


class HttpClient:
    """One keep-alive connection to 127.0.0.1 (one per thread)."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.hostname != HOST or parts.scheme != "http":
            raise SystemExit(f"the bench only talks to {HOST} over http, not {base_url}")
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = HTTP_TIMEOUT_S,
    ) -> tuple[int, Any]:
        for attempt in range(2):
            connection = self.connection or http.client.HTTPConnection(
                HOST, self.port, timeout=timeout
            )
            try:
                connection.request(method, self.prefix + path, body, headers or {})
                response = connection.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed: open a new one, once.
                connection.close()
                self.connection = None
                if attempt:
                    raise
                continue
            self.connection = None if response.will_close else connection
            if response.will_close:
                connection.close()
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw.decode(errors="replace")
        raise OSError("unreachable")  # pragma: no cover


def token(settings: dict[str, str], who: str, scope: str) -> str:
    client_id = settings[f"FUNDROUTER_{who}_CLIENT_ID"]
    secret = settings[f"FUNDROUTER_{who}_CLIENT_SECRET"]
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope})
    status, body = HttpClient(settings["FUNDROUTER_TOKEN_URL"]).request(
        "POST",
        "",
        form.encode(),
        {"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"},
    )
    if status != 200:
        raise StackUnavailable(f"token for {who}: HTTP {status} {body}")
    return str(body["access_token"])


def line_body(**changes: Any) -> dict[str, Any]:
    """events/api/put_line.json's body, with room for every order of the run."""
    body: dict[str, Any] = json.loads(json.loads(PUT_LINE_EVENT.read_text())["body"])
    return body | {"limit": 10**12, "dailyLimit": None} | changes


def order_body(order_id: str) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "amount": ORDER_AMOUNT,
        "currency": "CNY",
        "termMonths": 12,
        "product": "installment",
        "customer": {"id": "c-829", "region": "GD", "creditGrade": "B"},
    }


# ------------------------------------------------------------------ a. intake to MATCHED


@dataclass
class Submission:
    order_id: str
    sent_ns: int  # wall clock, just before the POST
    status: int = 0
    post_ns: int = 0  # the POST's round trip (perf counter)


@dataclass
class Phase:
    """One batch of orders sent over HTTP and read back from the table."""

    label: str
    rate: float | None  # orders/s the submitters were paced to; None: as fast as they go
    submitted: list[Submission]
    submit_seconds: float
    read: dict[str, dict[str, Any]]
    collect_seconds: float
    deadline_hit: bool
    statuses: Counter[str] = field(default_factory=Counter)
    lines: Counter[str] = field(default_factory=Counter)
    to_matched_ms: list[float] = field(default_factory=list)
    to_received_ms: list[float] = field(default_factory=list)
    received_to_matched_ms: list[float] = field(default_factory=list)
    first_sent_ns: int = 0
    last_matched_ns: int = 0

    def analyse(self) -> "Phase":
        accepted = [s for s in self.submitted if s.status in {200, 202}]
        self.statuses.update(f"HTTP {s.status}" for s in self.submitted if s not in accepted)
        self.first_sent_ns = min((s.sent_ns for s in self.submitted), default=0)
        for submission in accepted:
            order = self.read.get(submission.order_id)
            if order is None:
                self.statuses["not found"] += 1
                continue
            self.statuses[str(order["status"])] += 1
            history: dict[str, str] = {}
            for entry in order["history"]:  # the first entry of each status
                history.setdefault(str(entry["status"]), str(entry["at"]))
            if "MATCHED" not in history:
                continue
            self.lines[str(order.get("lineId"))] += 1
            matched_ns, received_ns = wall_ns(history["MATCHED"]), wall_ns(history["RECEIVED"])
            self.last_matched_ns = max(self.last_matched_ns, matched_ns)
            self.to_matched_ms.append((matched_ns - submission.sent_ns) / 1e6)
            self.to_received_ms.append((received_ns - submission.sent_ns) / 1e6)
            self.received_to_matched_ms.append((matched_ns - received_ns) / 1e6)
        return self

    def offered(self) -> float:
        return len(self.submitted) / self.submit_seconds if self.submit_seconds else 0.0

    def drained(self) -> float:
        """MATCHED orders per second, from the first POST to the last MATCHED."""
        span = (self.last_matched_ns - self.first_sent_ns) / 1e9
        return len(self.to_matched_ms) / span if span > 0 else 0.0


@dataclass
class LatencyResult:
    phases: list[Phase]
    submitters: int
    warm_orders: int
    line_reserved: int | None
    matched_amount: int


def wall_ns(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp)
    return int(moment.timestamp() * 1_000_000) * 1000


def submit_orders(
    settings: dict[str, str],
    tenant: str,
    *,
    count: int,
    submitters: int,
    seconds: float,
    prefix: str,
    rate: float | None = None,
) -> tuple[list[Submission], float]:
    """`submitters` threads POST orders until `count` are sent or `seconds` pass. With
    a `rate`, order i is not sent before i / rate seconds from the start (open loop:
    a late order is sent at once, not skipped)."""
    lock = threading.Lock()
    next_index = iter(range(count))
    done: list[Submission] = []
    started = time.perf_counter()
    deadline = started + seconds

    def submitter() -> None:
        client = HttpClient(settings["FUNDROUTER_API_URL"])
        headers = {"authorization": f"Bearer {tenant}", "content-type": "application/json"}
        while time.perf_counter() < deadline:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            if rate:
                wait = started + index / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(min(wait, max(0.0, deadline - time.perf_counter())))
            submission = Submission(f"bench-{prefix}-{index:05d}", 0)
            body = json.dumps(order_body(submission.order_id)).encode()
            submission.sent_ns = time.time_ns()
            start = time.perf_counter_ns()
            try:
                submission.status, _ = client.request("POST", "/v1/orders", body, headers)
            except OSError:
                submission.status = -1
            submission.post_ns = time.perf_counter_ns() - start
            with lock:
                done.append(submission)

    threads = [threading.Thread(target=submitter) for _ in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + HTTP_TIMEOUT_S * 2)
    return done, time.perf_counter() - started


def collect_orders(
    client: Any, orders_table: str, tenant_id: str, order_ids: list[str], seconds: float
) -> tuple[dict[str, dict[str, Any]], float, bool]:
    """Read the orders back from the table until none is RECEIVED any more, or
    `seconds` pass. Returns the last read of each order."""
    started = time.perf_counter()
    latest: dict[str, dict[str, Any]] = {}
    pending = list(order_ids)
    while pending:
        for start in range(0, len(pending), 100):
            keys = [
                {"pk": {"S": order_pk(tenant_id, order_id)}, "sk": {"S": ORDER_SK}}
                for order_id in pending[start : start + 100]
            ]
            request: dict[str, Any] = {orders_table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(20):  # unprocessed keys, bounded
                response = client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(orders_table, []):
                    order = from_item(item)
                    latest[str(order["orderId"])] = order
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
        pending = [o for o in pending if latest.get(o, {}).get("status", "RECEIVED") == "RECEIVED"]
        if pending and time.perf_counter() - started > seconds:
            return latest, time.perf_counter() - started, True
        if pending:
            time.sleep(0.5)
    return latest, time.perf_counter() - started, False


@dataclass
class Intake:
    """What the phases share: the stack's settings, a tenant token, a DynamoDB client."""

    settings: dict[str, str]
    tenant: str
    client: Any
    submitters: int
    seconds: float

    def phase(self, label: str, prefix: str, count: int, rate: float | None) -> Phase:
        submitted, submit_seconds = submit_orders(
            self.settings,
            self.tenant,
            count=count,
            submitters=self.submitters,
            seconds=self.seconds,
            prefix=prefix,
            rate=rate,
        )
        read, collect_seconds, deadline_hit = collect_orders(
            self.client,
            self.settings["FUNDROUTER_ORDERS_TABLE"],
            self.settings["FUNDROUTER_TENANT_CLIENT_ID"],
            [s.order_id for s in submitted if s.status in {200, 202}],
            self.seconds,
        )
        return Phase(
            label, rate, submitted, submit_seconds, read, collect_seconds, deadline_hit
        ).analyse()


def create_lines(settings: dict[str, str], run: str) -> str:
    """Two lines over HTTP with an admin token; returns the one that ranks first."""
    admin = token(settings, "ADMIN", ADMIN_SCOPE)
    api = HttpClient(settings["FUNDROUTER_API_URL"])
    headers = {"authorization": f"Bearer {admin}", "content-type": "application/json"}
    first, second = f"bench-a-{run}", f"bench-b-{run}"
    for line_id, changes in (
        (first, {"priority": 10}),
        (second, {"priority": 20, "funderId": "trust-b"}),
    ):
        body = json.dumps(line_body(**changes)).encode()
        status, answer = api.request("PUT", f"/v1/lines/{line_id}", body, headers)
        if status not in {200, 201}:
            raise StackUnavailable(f"PUT /v1/lines/{line_id}: HTTP {status} {answer}")
    return first


def measure_latency(
    settings: dict[str, str],
    *,
    orders: int,
    rate: float,
    burst_orders: int,
    submitters: int,
    seconds: float,
) -> LatencyResult:
    """A paced phase of `orders` orders at `rate` orders/s (the latency figures) and a
    burst of `burst_orders` as fast as the submitters go (what a backlog does); each
    phase's submitting and its reading back are bounded by `seconds`."""
    run = uuid.uuid4().hex[:8]
    first = create_lines(settings, run)
    intake = Intake(
        settings, token(settings, "TENANT", TENANT_SCOPE), dynamodb(), submitters, seconds
    )
    # Warm-up, not counted: two orders per submitter, so that the API and the matcher
    # have their workers started (a cold start is not the latency measured here).
    warm = intake.phase("warm-up", f"w{run}", 2 * submitters, None)
    phases = [intake.phase(f"paced at {rate:g} orders/s", f"p{run}", orders, rate)]
    if burst_orders:
        phases.append(intake.phase("burst, unpaced", f"b{run}", burst_orders, None))
    matched_amount = sum(
        int(order["amount"])
        for phase in [warm, *phases]
        for order in phase.read.values()
        if order.get("lineId") == first and order["status"] == "MATCHED"
    )
    record = DynamoLineRepository(intake.client, lines_table(settings)).get(first)
    return LatencyResult(
        phases=phases,
        submitters=submitters,
        warm_orders=len(warm.submitted),
        line_reserved=record.line.counters.reserved if record else None,
        matched_amount=matched_amount,
    )


def spread(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {percentile(values, 0.50):7.1f} ms  p95 {percentile(values, 0.95):7.1f} ms"
        f"  p99 {percentile(values, 0.99):7.1f} ms  max {max(values):7.1f} ms"
    )


def report_phase(phase: Phase) -> None:
    sent = len(phase.submitted)
    post_ms = [s.post_ns / 1e6 for s in phase.submitted]
    print(
        f"{phase.label}: {sent} orders POSTed in {phase.submit_seconds:.1f} s"
        f" ({phase.offered():.1f} orders/s offered); MATCHED {phase.drained():.1f} orders/s"
        " from first POST to last MATCHED"
    )
    print(f"  outcome: {', '.join(f'{k}: {v}' for k, v in sorted(phase.statuses.items()))}")
    print(f"  matched to: {', '.join(f'{k}: {v}' for k, v in sorted(phase.lines.items()))}")
    print(
        f"  read back from the Orders table until settled: {phase.collect_seconds:.1f} s after"
        " the last POST"
        + (" (deadline reached: orders still RECEIVED are left out)" if phase.deadline_hit else "")
    )
    print(f"  over {len(phase.to_matched_ms)} MATCHED orders:")
    print(f"    POST sent -> MATCHED          {spread(phase.to_matched_ms)}")
    print(f"    POST sent -> RECEIVED stored  {spread(phase.to_received_ms)}")
    print(f"    RECEIVED  -> MATCHED          {spread(phase.received_to_matched_ms)}")
    print(f"    POST round trip (client)      {spread(post_ms)}")


def report_latency(result: LatencyResult) -> None:
    print(
        f"orders: POST /v1/orders with a tenant token, {result.submitters} concurrent submitters"
        f" (keep-alive), after {result.warm_orders} warm-up orders (not counted)"
    )
    print(
        "from: the client's time.time_ns() just before each POST; to: the stored order's"
        " history `at` (RECEIVED by the"
    )
    print(
        "API, MATCHED by the matcher), both on this machine's clock; `at` has millisecond"
        " resolution (truncated), and"
    )
    print(
        "MATCHED's is taken as the matcher starts on the order, before its claim transaction"
        " commits (a few ms later)"
    )
    for phase in result.phases:
        print()
        report_phase(phase)
    if result.line_reserved is not None:
        agree = "yes" if result.line_reserved == result.matched_amount else "NO"
        print()
        print(
            f"first line's reserved after the phases: {result.line_reserved:,}; sum of its"
            f" MATCHED orders (warm-up included): {result.matched_amount:,}; equal: {agree}"
        )


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
class Tally:
    """DynamoDB requests one client made, by operation, and the errors it got back
    (a cancelled transaction by its cancellation reasons)."""

    counts: Counter[str] = field(default_factory=Counter)

    def before_call(self, model: Any, **_: Any) -> None:
        self.counts[model.name] += 1

    def after_call(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code")
        if not code:
            return
        reasons = {r.get("Code") for r in parsed.get("CancellationReasons", [])} - {"None", None}
        detail = f" ({', '.join(sorted(reasons))})" if reasons else ""
        self.counts[f"{model.name} {code}{detail}"] += 1


def tallied(tallies: list[Tally]) -> Counter[str]:
    total: Counter[str] = Counter()
    for tally in tallies:
        total.update(tally.counts)
    return total


def run_threads(
    kind: str,
    workers: list[Callable[[int], str]],
    tallies: list[Tally],
    cap: int,
    seconds: float,
) -> RateRun:
    """One thread per worker calls it with a shared running index until `cap` calls
    were made or `seconds` passed; the clock starts when all threads are ready."""
    lock = threading.Lock()
    counter = iter(range(cap))
    box: dict[str, float] = {}
    ends: list[float] = []
    outcomes: Counter[str] = Counter()
    barrier = threading.Barrier(len(workers), action=lambda: box.update(start=time.perf_counter()))
    before = tallied(tallies)

    def loop(work: Callable[[int], str]) -> None:
        mine: Counter[str] = Counter()
        barrier.wait(timeout=60)
        deadline = box["start"] + seconds
        while time.perf_counter() < deadline:
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
    return RateRun(len(workers), kind, elapsed, outcomes, tallied(tallies) - before)


@dataclass
class ClaimBench:
    orders_table: str
    lines_table: str
    line: LineRecord
    orders: list[Order]
    clients: list[Any]
    tallies: list[Tally]
    insert_seconds: float
    used: int = 0

    def take(self, count: int) -> list[Order]:
        """The next `count` pre-inserted orders, each claimed at most once."""
        taken = self.orders[self.used : self.used + count]
        self.used += count
        return taken


def setup_claims(tables: Any, total_orders: int, max_clients: int) -> ClaimBench:
    run = uuid.uuid4().hex[:8]
    orders_table = f"fundrouter-bench-claims-orders-{run}"
    lines_table_name = f"fundrouter-bench-claims-lines-{run}"
    admin = dynamodb()
    for logical, name in (("OrdersTable", orders_table), ("LinesTable", lines_table_name)):
        admin.create_table(**tables.create_table_kwargs(logical, name))
        admin.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    now = utc_now()
    body = line_body(minAmount=CLAIM_AMOUNT)
    lines = DynamoLineRepository(admin, lines_table_name)
    line = lines.put_config("bench-one-line", LineConfig.model_validate(body), now)
    admin.put_item(
        TableName=lines_table_name,
        Item={"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}, "n": {"N": "0"}},
    )
    started = time.perf_counter()
    orders = []
    for index in range(total_orders):
        request = OrderRequest.model_validate(
            order_body(f"claim-{index:06d}") | {"amount": CLAIM_AMOUNT}
        )
        orders.append(Order.received("benchtenant", request, now))
    for start in range(0, len(orders), 25):
        batch = {
            orders_table: [
                {"PutRequest": {"Item": order_item(o)}} for o in orders[start : start + 25]
            ]
        }
        for _ in range(20):  # unprocessed items, bounded
            batch = dict(admin.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {})
            if not batch:
                break
    insert_seconds = time.perf_counter() - started
    clients, tallies = [], []
    for _ in range(max_clients):
        client, tally = dynamodb(), Tally()
        client.meta.events.register("before-call.dynamodb.*", tally.before_call)
        client.meta.events.register("after-call.dynamodb.*", tally.after_call)
        clients.append(client)
        tallies.append(tally)
    return ClaimBench(
        orders_table, lines_table_name, line, orders, clients, tallies, insert_seconds
    )


def claim_workers(bench: ClaimBench, clients: int, count: int) -> list[Callable[[int], str]]:
    """One claim function per client: the matcher's DynamoMatchStore.claim (with its
    own retries on contention) on a pre-inserted order: line + day + order in one
    TransactWriteItems."""
    decision = Decision(
        strategy="PRIORITY",
        candidates=[Candidate(line_id=bench.line.line.line_id, outcome="CLAIMED")],
    )
    orders = bench.take(count)

    def worker(client: Any) -> Callable[[int], str]:
        store = DynamoMatchStore(
            client, bench.orders_table, DynamoLineRepository(client, bench.lines_table)
        )

        def claim(index: int) -> str:
            now = utc_now()
            attempt = store.claim(
                orders[index], bench.line, now, now + timedelta(minutes=15), decision
            )
            return "ok" if attempt.result is ClaimResult.CLAIMED else attempt.result.value

        return claim

    return [worker(client) for client in bench.clients[:clients]]


def raw_workers(bench: ClaimBench, clients: int) -> list[Callable[[int], str]]:
    """One plain conditional UpdateItem on one counter item per call."""

    def worker(client: Any) -> Callable[[int], str]:
        def update(_: int) -> str:
            client.update_item(
                TableName=bench.lines_table,
                Key={"pk": {"S": "BENCH#raw"}, "sk": {"S": "COUNTER"}},
                UpdateExpression="SET n = n + :one",
                ConditionExpression="n < :max",
                ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": str(10**12)}},
            )
            return "ok"

        return update

    return [worker(client) for client in bench.clients[:clients]]


WARM_CALLS = 20
RAW_CAP_FACTOR = 4


def measure_rates(
    tables: Any, levels: list[int], cap: int, seconds: float, rounds: int
) -> tuple[list[tuple[RateRun, RateRun]], ClaimBench]:
    """`rounds` rounds over the levels; raw first in even rounds, claims first in odd
    ones, so neither kind always runs on a warmer server. Summed per level."""
    bench = setup_claims(tables, WARM_CALLS + cap * len(levels) * rounds, max(levels))
    tallies = bench.tallies
    # Warm-up (connections, first transactions), not counted.
    run_threads("claims", claim_workers(bench, 1, WARM_CALLS), tallies, WARM_CALLS, 30)
    run_threads("raw", raw_workers(bench, 1), tallies, WARM_CALLS, 30)
    results = [(RateRun(n, "claims"), RateRun(n, "raw")) for n in levels]
    for round_no in range(rounds):
        for (claims, raw), clients in zip(results, levels, strict=True):
            for kind in ("raw", "claims") if round_no % 2 == 0 else ("claims", "raw"):
                if kind == "raw":  # costs no preparation: bounded by time first
                    workers = raw_workers(bench, clients)
                    raw.add(run_threads(kind, workers, tallies, RAW_CAP_FACTOR * cap, seconds))
                else:
                    workers = claim_workers(bench, clients, cap)
                    claims.add(run_threads(kind, workers, tallies, cap, seconds))
    return results, bench


def report_rates(
    results: list[tuple[RateRun, RateRun]], bench: ClaimBench, cap: int, seconds: float, rounds: int
) -> None:
    print(
        "claim: DynamoMatchStore.claim (TransactWriteItems: line + day + order) on one line,"
        " orders inserted beforehand"
    )
    print(
        f"       ({len(bench.orders)} inserted with BatchWriteItem"
        f" in {bench.insert_seconds:.1f} s);"
    )
    print(
        "raw:   UpdateItem SET n = n + 1 with ConditionExpression n < :max on one counter item;"
        " botocore retries off"
    )
    print(
        f"each run: threads share the work until {cap} claims ({RAW_CAP_FACTOR * cap} raw"
        f" updates) or {seconds:.0f} s, whichever first; one boto3 client per thread;"
    )
    print(
        f"{rounds} rounds over the levels (raw first, then claims first), summed per level;"
        f" {WARM_CALLS} warm-up calls of each first (not counted)"
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
            f"  {raw.successes:>6}/{raw.seconds:5.1f}s"
            f"  {per_claim}"
        )
        other = {k: v for k, v in (claims.outcomes + raw.outcomes).items() if k != "ok"}
        raw_errors = {k: v for k, v in raw.requests.items() if k != "UpdateItem"}
        if other or raw_errors:
            print(f"{'':>7}  not counted as successes: {other | raw_errors}")
    claimed = sum(claims.successes for claims, _ in results)
    record = DynamoLineRepository(dynamodb(), bench.lines_table).get(bench.line.line.line_id)
    reserved = record.line.counters.reserved if record else None
    expected = (claimed + WARM_CALLS) * CLAIM_AMOUNT
    print(
        f"line reserved after the runs: {reserved:,}; successful claims (warm-up included)"
        f" x {CLAIM_AMOUNT:,}: {expected:,}; equal: {'yes' if reserved == expected else 'NO'}"
    )
    print(
        "the client threads and ministack share this machine's cores (and each process its"
        " GIL): compare the ratio, not the absolute rates"
    )


# ------------------------------------------------------------------ c. expiry throughput

EXPIRY_LINE = "bench-expiry"
EXPIRY_TENANT = "benchexpirytenant"


@dataclass
class ExpiryResult:
    holds: int
    seeded_seconds: float
    seconds: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)
    still_held: int = 0
    line_reserved: int = 0
    line_matched: int = 0


def seed_expired_holds(settings: dict[str, str], holds: int) -> float:
    """`holds` MATCHED orders on one line whose holds expired a minute ago, written as
    the matcher writes them (order_item of domain.lifecycle.matched), and the line's
    counters and claim day holding exactly their sum, as the claims would have left them."""
    client = dynamodb()
    orders_table, lines_name = settings["FUNDROUTER_ORDERS_TABLE"], lines_table(settings)
    lines = DynamoLineRepository(client, lines_name)
    now = utc_now()
    config = line_body(limit=10**15, dailyLimit=None, minAmount=CLAIM_AMOUNT)
    line = lines.put_config(EXPIRY_LINE, LineConfig.model_validate(config), now).line
    day = line.day_of(now)
    decision = Decision(
        strategy="PRIORITY", candidates=[Candidate(line_id=EXPIRY_LINE, outcome="CLAIMED")]
    )
    started = time.perf_counter()
    for start in range(0, holds, 25):
        batch = {orders_table: []}
        for index in range(start, min(start + 25, holds)):
            request = OrderRequest.model_validate(
                order_body(f"expiry-{index:06d}") | {"amount": CLAIM_AMOUNT}
            )
            received = Order.received(EXPIRY_TENANT, request, now - timedelta(minutes=16))
            held = matched(
                received,
                line_id=EXPIRY_LINE,
                funder_id=line.config.funder_id,
                now=now - timedelta(minutes=16),
                hold_expires_at=now - timedelta(minutes=1),
                claim_day=day,
                decision=decision,
            )
            batch[orders_table].append({"PutRequest": {"Item": order_item(held)}})
        for _ in range(20):  # unprocessed items, bounded
            batch = dict(client.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {})
            if not batch:
                break
    total = str(holds * CLAIM_AMOUNT)
    client.update_item(
        TableName=lines_name,
        Key={"pk": {"S": line_pk(EXPIRY_LINE)}, "sk": {"S": LINE_SK}},
        UpdateExpression="SET reserved = :t, held = :t, nMatched = :n",
        ExpressionAttributeValues={":t": {"N": total}, ":n": {"N": str(holds)}},
    )
    client.put_item(
        TableName=lines_name,
        Item=day_key(EXPIRY_LINE, day) | {"used": {"N": total}, "lineId": {"S": EXPIRY_LINE}},
    )
    return time.perf_counter() - started


def reconciler_name() -> str:
    functions = stack_client("lambda").list_functions()["Functions"]
    return next(f["FunctionName"] for f in functions if "ReconcilerFunction" in f["FunctionName"])


def measure_expiry(settings: dict[str, str], holds: int, max_runs: int = 10) -> ExpiryResult:
    """Seed the backlog, then invoke the deployed ReconcilerFunction (as its schedule
    does, one run after another) until the line holds nothing; the clock runs from the
    first invocation to the end of the run that released the last hold."""
    result = ExpiryResult(holds, seed_expired_holds(settings, holds))
    lines = DynamoLineRepository(dynamodb(), lines_table(settings))
    invoke = stack_client("lambda", read_timeout=120).invoke
    name = reconciler_name()
    started = time.perf_counter()
    for _ in range(max_runs):
        answer = invoke(FunctionName=name, Payload=json.dumps({"time": "bench"}).encode())
        summary = json.loads(answer["Payload"].read() or b"{}")
        result.runs.append(
            {
                "expired": len(summary.get("expired", [])),
                "failures": len(summary.get("failures", [])),
            }
        )
        record = lines.get(EXPIRY_LINE)
        if record is None or record.line.counters.reserved == 0:
            break
    result.seconds = time.perf_counter() - started
    record = lines.get(EXPIRY_LINE)
    if record is not None:
        result.line_reserved = record.line.counters.reserved
        result.line_matched = record.orders.get(OrderStatus.MATCHED, 0)
    result.still_held = count_still_held(settings, holds)
    return result


def count_still_held(settings: dict[str, str], holds: int) -> int:
    """Seeded orders not EXPIRED, read back one BatchGetItem per 100."""
    client, table = dynamodb(), settings["FUNDROUTER_ORDERS_TABLE"]
    keys = [
        {"pk": {"S": order_pk(EXPIRY_TENANT, f"expiry-{i:06d}")}, "sk": {"S": ORDER_SK}}
        for i in range(holds)
    ]
    items = batch_get(client, table, keys)
    expired = sum(1 for item in items if item["status"]["S"] == "EXPIRED")
    return holds - expired


def report_expiry(result: ExpiryResult) -> None:
    per_minute = result.holds / result.seconds * 60 if result.seconds else 0.0
    print(
        f"backlog: {result.holds:,} holds expired a minute ago on one line, seeded in"
        f" {result.seeded_seconds:.0f} s (BatchWriteItem)"
    )
    print("runs of the deployed ReconcilerFunction invoked one after another (its schedule")
    print("also fires every minute: what a scheduled run expired is in no line below):")
    for number, run in enumerate(result.runs, 1):
        print(f"  run {number}: {run['expired']:,} expired, {run['failures']} failures")
    print(
        f"expiry throughput: {per_minute:,.0f} holds a minute ({result.holds:,} in"
        f" {result.seconds:.1f} s)"
    )
    print(
        f"missed: {result.still_held} orders not EXPIRED; line reserved {result.line_reserved},"
        f" MATCHED count {result.line_matched} (0 and 0 when exact)"
    )
