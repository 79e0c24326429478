"""`make bench`: print what a cold start and an order cost. Figures only, no verdicts.

1. Cold import time of every Lambda handler module (functions/<name>/*_handler.py),
   each run in a fresh Python process with the environment Lambda gives a function
   (tracing active, so the Tracer patches botocore as it does there), against a bare
   ``import boto3`` measured the same way, interleaved with it.
2. DynamoDB requests per new order and per idempotent replay, counted with a botocore
   event hook while the real handler entry ``handle(event, context, service)`` runs on
   moto in-process, plus the handler's in-process latency there (moto, not AWS).

Run from the repository root: ``.venv/bin/python bench/run.py --arch x86_64``. Nothing
here touches sys.path: the handler and tests/support/template.py are loaded by path.
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
    if importlib.util.find_spec("requests") is not None:
        print(
            "note: this venv has `requests` (a moto dependency), so the Tracer's patch_all"
            " imports and patches it here; the layer does not ship it, Lambda skips that"
        )
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


# ------------------------------------------------------------------ main


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
        help="architecture of the local stack (not used yet: both figures are in-process)",
    )
    parser.add_argument("--runs", type=runs_arg, default=11, help="fresh processes per module")
    parser.add_argument("--orders", type=int, default=200, help="orders to submit on moto")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(f"fundrouter bench (arch {args.arch}, host {platform.machine()})")
    worst = report_imports(args.runs)
    new, replay = report_requests(args.orders)

    header("Summary")
    imports = (
        f"{worst[0]} imports at {worst[1]:.2f}x import boto3 (median of {args.runs})"
        if worst
        else "no handler modules"
    )
    print(
        f"{imports}; DynamoDB requests: {new.per_order():.2f} per new order, "
        f"{replay.per_order():.2f} per replay [{time.perf_counter() - started:.0f} s]"
    )


if __name__ == "__main__":
    main()
