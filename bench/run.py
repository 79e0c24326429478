"""`make bench`: what a cold start, an order and a match cost. Figures only, no verdicts.

1. Cold import time of every Lambda handler module (functions/<name>/*_handler.py),
   each run in a fresh Python process with the environment Lambda gives a function
   (tracing active, so the Tracer patches botocore as it does there), against a bare
   ``import boto3`` measured the same way, interleaved with it.
2. DynamoDB requests per new order and per idempotent replay, counted with a botocore
   event hook while the real handler entry ``handle(event, context, service)`` runs on
   moto in-process, plus the handler's in-process latency there (moto, not AWS).
3. DynamoDB requests per match: the MatcherFunction's ``handle`` on moto, with the
   configuration cold, cached, and cached while the first ranked line filled up
   (bench/match_requests.py).
4. On a dedicated local stack (ministack on 127.0.0.1:4590, started and always stopped
   here): intake-to-MATCHED latency over HTTP, and claims per second against one line
   at 1, 4 and 16 clients next to the same server's raw conditional-update rate; and
   expiry throughput: 20,000 expired holds on one line worked off by the deployed
   ReconcilerFunction, none missed (bench/local_stack.py).
5. How far one line scales on AWS: arithmetic, not a measurement (bench/scale.py).
6. The bank test under faults with 5,000 orders (tests/integration/
   test_bank_under_faults.py, on its own local stack, 5% of the functions' AWS calls
   failing as AWS's do): orders, violations, lost, 5xx other than 503, faults by kind.
7. The capacity model: per table and index, the busiest partition's WCU/s at a rate
   and the orders/s before it passes 1,000 WCU/s (bench/capacity.py).
8. Bytes and write units one matched order costs with 10, 100 and 1,000 lines (its
   transaction's items and the GSI entries it moves); the order item's size after 10,
   1,000 and 10,000 partial repayments and the write units of one event, on moto
   (bench/order_size.py).
9. ``GET /v1/lines/{id}`` latency and read units with 1,000 and 100,000 holdings on
   the line, on moto (bench/line_views.py).
10. The reconciler: the audit's reads per run at 1,000 / 10,000 / 100,000 open loans,
   and expiry throughput on a backlog of 20,000 due holds (bench/reconciler_scale.py).

Run from the repository root: ``.venv/bin/python bench/run.py --arch x86_64``. Nothing
here touches sys.path: the handlers and tests/support/template.py are loaded by path;
the sibling modules of this file are found because Python puts a script's own folder
first on sys.path.
"""

import argparse
import copy
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
SUBMIT_EVENT = ROOT / "events" / "api" / "submit_order.json"
REGION = "ap-east-1"
TABLE = "fundrouter-bench-orders"
MIN_RUNS = 7
WARMUP_ORDERS = 5
CHILD_TIMEOUT_S = 60
MARKER = "BENCH_IMPORT_NS="

# Runs in each fresh interpreter. Sockets that would reach a network are refused by an
# audit hook (installed in the baseline too, so both pay its small cost alike); any
# attempt is also reported, in case a library swallows the exception.
CHILD = f"""
import importlib, importlib.util, sys, time
_BLOCKED = frozenset({{"socket.connect", "socket.sendto", "socket.sendmsg",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
    "socket.gethostbyaddr"}})
_attempts = []
def _offline(event, args):
    if event in _BLOCKED:
        _attempts.append(event)
        raise RuntimeError(f"network access during import: {{event}} {{args!r}}")
sys.addaudithook(_offline)
kind, target = sys.argv[1], sys.argv[2]
start = time.perf_counter_ns()
if kind == "path":
    spec = importlib.util.spec_from_file_location(target.rsplit("/", 1)[-1][:-3], target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
else:
    importlib.import_module(target)
elapsed = time.perf_counter_ns() - start
if _attempts:
    sys.exit(f"network access attempted during import: {{_attempts}}")
print("{MARKER}" + str(elapsed))
"""


# ------------------------------------------------------------------ helpers


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import a file as a module without touching sys.path (as tests/support does)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def ms(nanoseconds: float) -> str:
    return f"{nanoseconds / 1e6:8.1f} ms"


def header(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


# ------------------------------------------------------------------ 1. cold imports


@dataclass(frozen=True)
class Subject:
    label: str
    kind: str  # "path": load a file by path; "module": importlib.import_module
    target: str
    task_root: Path


def handler_subjects() -> list[Subject]:
    return [
        Subject(path.stem, "path", str(path), path.parent)
        for path in sorted(FUNCTIONS.glob("*/*_handler.py"))
    ]


def lambda_env(subject: Subject) -> dict[str, str]:
    """What the python3.13 runtime sets for a function of template.yaml (Globals:
    Tracing Active, POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL), with dummy
    credentials. LAMBDA_TASK_ROOT is what makes Powertools' Tracer enable itself and
    patch botocore, as in Lambda. The X-Ray daemon address points at loopback, where no
    daemon listens; nothing is sent at import anyway. Nothing is inherited from this
    shell but PATH, so no profile, endpoint or PYTHON* variable leaks in."""
    name = f"fundrouter-{subject.task_root.name}"
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/24/[$LATEST]bench",
        "LAMBDA_TASK_ROOT": str(subject.task_root),
        "_HANDLER": f"{subject.label}.handler",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1",
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "POWERTOOLS_SERVICE_NAME": "fundrouter",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def import_once(subject: Subject) -> int:
    """Nanoseconds one fresh interpreter spends importing the subject."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, subject.kind, subject.target],
        cwd=subject.task_root,
        env=lambda_env(subject),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    found = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not found:
        raise SystemExit(
            f"importing {subject.label} failed (exit {done.returncode}):\n"
            f"{done.stdout}{done.stderr}"
        )
    return int(found[-1].removeprefix(MARKER))


def measure_imports(subjects: list[Subject], runs: int) -> dict[str, list[int]]:
    """One discarded warm-up round (bytecode caches, page cache), then `runs` rounds;
    each round runs every subject once, in an order rotated round by round, so the
    baseline and the modules share the machine's noise and no one always goes first."""
    samples: dict[str, list[int]] = {s.label: [] for s in subjects}
    for subject in subjects:
        import_once(subject)
    for round_no in range(runs):
        shift = round_no % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            samples[subject.label].append(import_once(subject))
    return samples


def report_imports(runs: int) -> tuple[str, float] | None:
    header("1. Cold import time of the Lambda handler modules")
    handlers = handler_subjects()
    baseline = Subject("import boto3", "module", "boto3", FUNCTIONS)
    print(f"interpreter: {sys.executable} (Python {platform.python_version()})")
    print(
        f"runs: {runs} fresh processes per module and for the baseline, interleaved "
        "(+1 warm-up round, discarded)"
    )
    print("timed: importlib load of the module, by path (baseline: import boto3),")
    print("       perf_counter_ns in the child; interpreter start-up not included")
    print(
        "env: Lambda-like (LAMBDA_TASK_ROOT, _HANDLER, AWS_EXECUTION_ENV, tracing active so"
        " the Tracer patches botocore;"
    )
    print(
        f"     no X-Ray daemon: address 127.0.0.1:2000), region {REGION}, dummy credentials,"
        " network blocked"
    )
    if not handlers:
        print("no functions/*/*_handler.py found")
        return None
    samples = measure_imports([baseline, *handlers], runs)
    base_median = statistics.median(samples[baseline.label])
    width = max(len(s.label) for s in [baseline, *handlers])
    print()
    print(f"{'module':<{width}}  {'median':>11}  {'p90':>11}  {'min':>11}  {'max':>11}  ratio")
    worst: tuple[str, float] | None = None
    for subject in [baseline, *handlers]:
        values = samples[subject.label]
        median = statistics.median(values)
        ratio = median / base_median
        print(
            f"{subject.label:<{width}}  {ms(median):>11}  {ms(percentile(values, 0.9)):>11}"
            f"  {ms(min(values)):>11}  {ms(max(values)):>11}  {ratio:.2f}x import boto3"
        )
        if subject is not baseline and (worst is None or ratio > worst[1]):
            worst = (subject.label, ratio)
    print()
    print(f"baseline: import boto3, median {ms(base_median).strip()} over {runs} runs")
    print("absolute times are this machine's (Lambda's CPU share differs): compare ratios")
    return worst


# ------------------------------------------------------------------ 2. DynamoDB per order


@dataclass
class CallCounter:
    """Counts DynamoDB API calls on one client: before-call fires once per call,
    after-call carries the outcome (an error code for a refused conditional put) and
    how many retries the call needed."""

    calls: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def before_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def after_call(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code")
        if code:
            self.refused[f"{model.name} {code}"] += 1
        self.retries += parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)

    def reset(self) -> None:
        self.calls.clear()
        self.refused.clear()
        self.retries = 0

    def breakdown(self) -> str:
        parts = [f"{name}: {count}" for name, count in sorted(self.calls.items())]
        parts += [f"refused {name}: {count}" for name, count in sorted(self.refused.items())]
        return ", ".join(parts) or "none"


@dataclass
class BenchContext:
    function_name: str = "fundrouter-ApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        f"arn:aws:lambda:{REGION}:123456789012:function:fundrouter-ApiFunction"
    )
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"


@dataclass
class Pass:
    label: str
    counter: CallCounter
    orders: int
    latencies_ns: list[int]

    def per_order(self) -> float:
        return sum(self.counter.calls.values()) / self.orders


def offline_aws_env() -> None:
    """Dummy credentials and region, no profile or endpoint override, before any
    client exists: moto must answer everything, nothing may reach a real endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "LAMBDA_TASK_ROOT"):
            del os.environ[name]
    os.environ |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "fundrouter",
        "POWERTOOLS_METRICS_NAMESPACE": "fundrouter",
    }


def submit_events(count: int, prefix: str) -> list[dict[str, Any]]:
    sample = json.loads(SUBMIT_EVENT.read_text())
    body = json.loads(sample["body"])
    events = []
    for index in range(count):
        event = copy.deepcopy(sample)
        event["body"] = json.dumps(body | {"orderId": f"{prefix}-{index:05d}"})
        events.append(event)
    return events


def drive(
    call: Callable[[dict[str, Any]], dict[str, Any]],
    events: list[dict[str, Any]],
    expected_status: int,
) -> list[int]:
    """Call the handler once per event; returns each call's latency."""
    latencies = []
    for event in events:
        start = time.perf_counter_ns()
        response = call(event)
        latencies.append(time.perf_counter_ns() - start)
        if response["statusCode"] != expected_status:
            raise SystemExit(
                f"expected {expected_status}, got {response['statusCode']}: {response['body']}"
            )
    return latencies


def measure_requests(orders: int) -> tuple[Pass, Pass, int]:
    offline_aws_env()
    import boto3  # noqa: PLC0415 - only after the environment above is in place
    from fundrouter.domain.clock import utc_now  # noqa: PLC0415
    from fundrouter.persistence.orders import DynamoOrderRepository  # noqa: PLC0415
    from fundrouter.service.orders import OrderService  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    template = load_by_path("_bench_template", ROOT / "tests" / "support" / "template.py")
    api = load_by_path("api_handler", FUNCTIONS / "api" / "api_handler.py")
    context = BenchContext()
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(**template.create_table_kwargs("OrdersTable", TABLE))
        counter = CallCounter()
        client.meta.events.register("before-call.dynamodb.*", counter.before_call)
        client.meta.events.register("after-call.dynamodb.*", counter.after_call)
        # Built as api_handler.order_service() builds it, on the hooked client.
        service = OrderService(DynamoOrderRepository(client, TABLE), utc_now)

        def call(event: dict[str, Any]) -> dict[str, Any]:
            response: dict[str, Any] = api.handle(event, context, service)
            api.metrics.clear_metrics()  # log_metrics would flush and clear per invocation
            return response

        drive(call, submit_events(WARMUP_ORDERS, "bench-warmup"), 202)  # lazy setup, not counted
        new_events = submit_events(orders, "bench")
        counter.reset()
        new_latencies = drive(call, new_events, 202)
        new = Pass("new order", copy.deepcopy(counter), orders, new_latencies)
        counter.reset()
        replay_latencies = drive(call, new_events, 200)
        replay = Pass("identical replay", copy.deepcopy(counter), orders, replay_latencies)
        stored = client.scan(TableName=TABLE, Select="COUNT")["Count"]
    return new, replay, stored


def report_requests(orders: int) -> tuple[Pass, Pass]:
    header("2. DynamoDB requests per order (moto, in-process)")
    new, replay, stored = measure_requests(orders)
    print(f"table: OrdersTable from template.yaml, created on moto as {TABLE}")
    print(
        "driven: api_handler.handle(event, context, service) with"
        f" {SUBMIT_EVENT.relative_to(ROOT)}, {orders} orderIds"
        f" (+{WARMUP_ORDERS} warm-up orders, not counted)"
    )
    print("counted: botocore before-call/after-call hooks on the repository's client")
    print()
    for run in (new, replay):
        total = sum(run.counter.calls.values())
        print(
            f"{run.label:<17} {run.orders} orders -> {total} requests = "
            f"{run.per_order():.2f} per order  ({run.counter.breakdown()};"
            f" retries: {run.counter.retries})"
        )
    print(f"items in the table afterwards: {stored} ({orders} + {WARMUP_ORDERS} warm-up expected)")
    print()
    print("handler latency per request on moto (NOT representative of AWS):")
    for run in (new, replay):
        print(
            f"  {run.label:<17} median {ms(statistics.median(run.latencies_ns)).strip()},"
            f" p90 {ms(percentile(run.latencies_ns, 0.9)).strip()},"
            f" min {ms(min(run.latencies_ns)).strip()}, max {ms(max(run.latencies_ns)).strip()}"
        )
    return new, replay


# ------------------------------------------------------------------ 3. DynamoDB per match


def report_matching(orders: int) -> tuple[list[Any], Any]:
    header("3. DynamoDB requests per match (MatcherFunction, moto, in-process)")
    offline_aws_env()
    import match_requests  # noqa: PLC0415 - imports boto3 and moto: after the environment

    template = load_by_path("_bench_template", ROOT / "tests" / "support" / "template.py")
    matcher = load_by_path("matcher_handler", FUNCTIONS / "matcher" / "matcher_handler.py")
    matcher.logger.setLevel("WARNING")  # one INFO line per order would drown the figures
    cases, sizes = match_requests.report(matcher, template, orders)
    return cases, sizes


def report_order_size() -> None:
    header("8. Writes per matched order as lines grow; order item size after N repayments")
    offline_aws_env()
    import order_size  # noqa: PLC0415 - imports boto3 and moto: after the environment

    fast_moto = load_by_path("_bench_moto_speed", ROOT / "tests" / "support" / "moto_speed.py")
    tables = load_by_path("_bench_template", ROOT / "tests" / "support" / "template.py")
    order_size.report_match_cost(fast_moto, tables)
    order_size.report(fast_moto, tables)


# ------------------------------------------------------------------ 4. the local stack


@dataclass
class StackFigures:
    latency: Any = None
    rates: list[Any] = field(default_factory=list)
    skipped: str | None = None


def report_stack(args: argparse.Namespace) -> StackFigures:
    import local_stack  # noqa: PLC0415 - imports boto3: after the environment

    where = f"{local_stack.HOST}:{local_stack.PORT}"
    header(f"4. The matcher on a dedicated local stack (ministack, {where})")

    template = load_by_path("_bench_template", ROOT / "tests" / "support" / "template.py")
    figures = StackFigures()
    try:
        with local_stack.bench_stack(args.arch) as (settings, startup):
            print(
                f"stack: scripts/localstack.py up --arch {args.arch}, state in"
                f" {local_stack.STATE_DIR}, ready in {startup:.0f} s"
            )
            print(
                "deployed layer identical to layers/fundrouter now:"
                f" {local_stack.layer_matches_tree(args.arch)}"
            )
            print()
            print("4a. Intake to MATCHED (HTTP API -> Orders stream -> MatcherFunction)")
            figures.latency = local_stack.measure_latency(
                settings,
                orders=args.latency_orders,
                rate=args.rate,
                burst_orders=args.burst_orders,
                submitters=args.submitters,
                seconds=args.stack_seconds,
            )
            local_stack.report_latency(figures.latency)
            print()
            print("4b. Claims per second against ONE line vs raw conditional updates, same server")
            figures.rates, bench = local_stack.measure_rates(
                template,
                list(CLIENT_LEVELS),
                args.claims_per_level,
                args.claim_seconds,
                args.claim_rounds,
            )
            local_stack.report_rates(
                figures.rates, bench, args.claims_per_level, args.claim_seconds, args.claim_rounds
            )
            print()
            print("4c. Expiry throughput: a backlog of expired holds and the deployed reconciler")
            local_stack.report_expiry(local_stack.measure_expiry(settings, args.expiry_holds))
    except local_stack.StackUnavailable as error:
        figures.skipped = str(error)
        print(f"skipped: {error}")
    return figures


# ------------------------------------------------------------------ 6. the bank test


def report_bank(orders: int) -> int:
    """The bank test, as `make test` runs it but with `orders` orders; its figures
    are its own output. Returns pytest's exit status."""
    header(f"6. The bank test under faults ({orders:,} orders, 5% of AWS calls failing)")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "POWERTOOLS_")) or name == "AWS_ACCOUNT_ID_ENDPOINT_MODE"
    } | {"FUNDROUTER_BANK_ORDERS": str(orders)}
    test = "tests/integration/test_bank_under_faults.py"
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
    command += ["-m", "integration", "--timeout", "7200", "--no-header", test]
    print(f"+ FUNDROUTER_BANK_ORDERS={orders} pytest {test}", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


# ------------------------------------------------------------------ 7. line views


def report_line_views() -> None:
    header("9. GET /v1/lines/{id} with 1,000 and 100,000 holdings (moto, in-process)")
    offline_aws_env()
    import line_views  # noqa: PLC0415 - imports boto3 and moto: after the environment

    template = load_by_path("_bench_template", ROOT / "tests" / "support" / "template.py")
    api = load_by_path("api_handler", FUNCTIONS / "api" / "api_handler.py")
    line_views.report(api, template, BenchContext())


# ------------------------------------------------------------------ main


CLIENT_LEVELS = (1, 4, 16)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def runs_arg(text: str) -> int:
    value = int(text)
    if value < MIN_RUNS:
        raise argparse.ArgumentTypeError(f"at least {MIN_RUNS} runs")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--arch",
        choices=("x86_64", "arm64"),
        default="x86_64",
        help="architecture the local stack's functions are built for (section 4)",
    )
    parser.add_argument("--runs", type=runs_arg, default=11, help="fresh processes per module")
    parser.add_argument("--orders", type=int, default=200, help="orders to submit on moto")
    parser.add_argument(
        "--match-orders", type=positive, default=100, help="orders per matcher case on moto"
    )
    parser.add_argument(
        "--latency-orders",
        type=positive,
        default=500,
        help="orders of the paced latency phase (4a)",
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="orders/s the latency phase is paced to (4a)"
    )
    parser.add_argument(
        "--burst-orders",
        type=int,
        default=300,
        help="orders sent unpaced after the latency phase (4a; 0: none)",
    )
    parser.add_argument("--submitters", type=positive, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--stack-seconds",
        type=float,
        default=180.0,
        help="bound on submitting, and on reading back, the orders of 4a",
    )
    parser.add_argument(
        "--claims-per-level",
        type=positive,
        default=1000,
        help="claims per run at most (section 4b; as many orders are inserted per run)",
    )
    parser.add_argument(
        "--claim-seconds", type=float, default=4.0, help="seconds per run at most (section 4b)"
    )
    parser.add_argument(
        "--claim-rounds", type=positive, default=2, help="rounds over the levels (section 4b)"
    )
    parser.add_argument(
        "--expiry-holds",
        type=positive,
        default=20_000,
        help="expired holds seeded for the reconciler (section 4c)",
    )
    parser.add_argument("--no-stack", action="store_true", help="skip section 4 (local stack)")
    parser.add_argument(
        "--bank-orders", type=int, default=5000, help="orders of the bank test (section 6; 0: skip)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(f"fundrouter bench (arch {args.arch}, host {platform.machine()})")
    worst = report_imports(args.runs)
    new, replay = report_requests(args.orders)
    cases, sizes = report_matching(args.match_orders)
    figures = StackFigures(skipped="--no-stack") if args.no_stack else report_stack(args)
    header("5. How far one line scales on AWS (arithmetic, not a measurement)")
    import scale  # noqa: PLC0415 - a sibling module, like the others

    scale.report(sizes)
    bank = report_bank(args.bank_orders) if args.bank_orders > 0 else None
    header("7. Capacity model: orders/s before any partition passes 1,000 WCU/s (docs/capacity.md)")
    import capacity  # noqa: PLC0415 - a sibling module, like the others

    capacity.report(
        load_by_path("api_handler", FUNCTIONS / "api" / "api_handler.py"),
        load_by_path("_bench_template", ROOT / "tests" / "support" / "template.py"),
    )
    report_order_size()
    report_line_views()
    __import__("reconciler_scale").report()  # 10: a sibling module, like the others

    header("Summary")
    imports = (
        f"{worst[0]} imports at {worst[1]:.2f}x import boto3 (median of {args.runs})"
        if worst
        else "no handler modules"
    )
    print(
        f"{imports}; DynamoDB requests: {new.per_order():.2f} per new order, "
        f"{replay.per_order():.2f} per replay"
    )
    print(
        "DynamoDB requests per match: "
        + ", ".join(f"{case.label} {case.per_order():.2f}" for case in cases)
    )
    if figures.skipped:
        print(f"local stack: skipped ({figures.skipped.splitlines()[0]})")
    else:
        for phase in figures.latency.phases:
            values = phase.to_matched_ms
            if values:
                print(
                    f"intake to MATCHED on ministack, {phase.label}, over {len(values)} orders:"
                    f" p50 {percentile(values, 0.5):.0f} ms,"
                    f" p95 {percentile(values, 0.95):.0f} ms,"
                    f" p99 {percentile(values, 0.99):.0f} ms"
                )
        print(
            "claims/s on one line vs raw conditional updates/s on ministack: "
            + "; ".join(
                f"{claims.clients} client{'s' if claims.clients > 1 else ''}"
                f" {claims.rate():.0f} vs {raw.rate():.0f}"
                for claims, raw in figures.rates
            )
        )
    if bank is not None:
        print(f"bank test under faults, {args.bank_orders:,} orders: exit {bank} (figures above)")
    print(f"[{time.perf_counter() - started:.0f} s]")


if __name__ == "__main__":
    main()
