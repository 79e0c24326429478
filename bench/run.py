"""`make bench`: what a cold start, an order and a match cost. Figures only, no verdicts.

Sections: 1 handler import time (here), 2 DynamoDB requests per order (here), 3 per
match (match_requests.py), 4 the matcher on a local stack (local_stack.py), 5 one
line's ceiling on AWS (scale.py), 6 the bank test under faults (here), 7 the capacity
model (capacity.py), 8 writes per match and order item sizes (order_size.py), 9 line
views (line_views.py), 10 the reconciler (reconciler_scale.py).
Run from the repository root: ``.venv/bin/python bench/run.py --arch x86_64``.
"""

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))

import boto3  # noqa: E402 - after the repository root is on sys.path, as all below
import capacity  # noqa: E402
import line_views  # noqa: E402
import local_stack  # noqa: E402
import match_requests  # noqa: E402
import order_size  # noqa: E402
import reconciler_scale  # noqa: E402
import scale  # noqa: E402
from common import (  # noqa: E402
    Calls,
    Context,
    create_tables,
    event,
    header,
    ms,
    offline_aws,
    order_body,
    table,
)
from fundrouter.domain.clock import utc_now  # noqa: E402
from fundrouter.persistence.orders import DynamoOrderRepository  # noqa: E402
from fundrouter.service.orders import OrderService  # noqa: E402
from fundrouter_cli.stats import percentile  # noqa: E402
from moto import mock_aws  # noqa: E402

from tests.support import template  # noqa: E402
from tests.support.api import serve  # noqa: E402
from tests.support.handlers import handler_module  # noqa: E402

FUNCTIONS = ROOT / "functions"
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
    """What the python3.13 runtime sets for a function of template.yaml, with dummy
    credentials; LAMBDA_TASK_ROOT makes the Tracer patch botocore, as in Lambda. Only
    PATH is inherited; the X-Ray address is loopback, where nothing listens."""
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
    print(f"{sys.executable} (Python {platform.python_version()}); {runs} fresh processes each,")
    print("interleaved with `import boto3` (+1 warm-up round); the import itself, timed in the")
    print("child, with Lambda's environment (tracing active, no X-Ray daemon), network blocked")
    baseline = Subject("import boto3", "module", "boto3", FUNCTIONS)
    samples = measure_imports([baseline, *handler_subjects()], runs)
    base = statistics.median(samples[baseline.label])
    ratios = {label: statistics.median(v) / base for label, v in samples.items()}
    table(
        ("module", "median", "p90", "min", "max", "ratio to import boto3"),
        [
            (
                label,
                *(ms(f(v)) for f in (statistics.median, p90, min, max)),
                f"{ratios[label]:.2f}x",
            )
            for label, v in samples.items()
        ],
    )
    print("absolute times are this machine's (Lambda's CPU share differs): compare ratios")
    return max(
        ((k, r) for k, r in ratios.items() if k != baseline.label),
        key=lambda kr: kr[1],
        default=None,
    )


def p90(values: list[int]) -> float:
    return percentile(values, 90)


# ------------------------------------------------------------------ 2. DynamoDB per order


@dataclass
class Pass:
    label: str
    calls: Counter[str]
    refused: Counter[str]
    retries: int
    orders: int
    latencies_ns: list[int]

    def per_order(self) -> float:
        return sum(self.calls.values()) / self.orders


def submit_events(count: int, prefix: str) -> list[dict[str, Any]]:
    sample = event("api/submit_order.json")
    return [
        copy.deepcopy(sample) | {"body": json.dumps(order_body(f"{prefix}-{n:05d}"))}
        for n in range(count)
    ]


def drive(
    call: Callable[[dict[str, Any]], dict[str, Any]], events: list[dict[str, Any]], status: int
) -> list[int]:
    """Call the handler once per event; returns each call's latency."""
    latencies = []
    for sent in events:
        start = time.perf_counter_ns()
        response = call(sent)
        latencies.append(time.perf_counter_ns() - start)
        if response["statusCode"] != status:
            raise SystemExit(f"expected {status}, got {response['statusCode']}: {response['body']}")
    return latencies


def measure_requests(orders: int) -> tuple[list[Pass], int]:
    api = handler_module("api", "api_handler")
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, OrdersTable=TABLE)
        calls = Calls(client)
        # Built as api_handler.order_service() builds it, on the counted client.
        service = OrderService(DynamoOrderRepository(client, TABLE), utc_now)

        def call(sent: dict[str, Any]) -> dict[str, Any]:
            response = serve(sent, Context(), orders=service)
            api.metrics.clear_metrics()  # log_metrics would flush and clear per invocation
            return response

        drive(call, submit_events(WARMUP_ORDERS, "bench-warmup"), 202)  # lazy setup, not counted
        runs = []
        for label, status in (("new order", 202), ("identical replay", 200)):
            calls.reset()
            latencies = drive(call, submit_events(orders, "bench"), status)
            counted = Counter(calls.names), calls.errors.copy(), calls.retries
            runs.append(Pass(label, *counted, orders, latencies))
        return runs, client.scan(TableName=TABLE, Select="COUNT")["Count"]


def report_requests(orders: int) -> list[Pass]:
    header("2. DynamoDB requests per order (moto, in-process)")
    with offline_aws():
        runs, stored = measure_requests(orders)
    print("the ApiFunction's app (tests/support/api.py serve), events/api/submit_order.json under")
    print(f"{orders} orderIds (+{WARMUP_ORDERS} warm-up), requests counted on its client;")
    print("latency: the handler's on moto, NOT representative of AWS")
    rows = []
    for run in runs:
        parts = [f"{name}: {count}" for name, count in sorted(run.calls.items())]
        parts += [f"refused {name}: {count}" for name, count in sorted(run.refused.items())]
        values = run.latencies_ns
        spread = (ms(f(values)) for f in (statistics.median, p90, min, max))
        parts.append(f"retries: {run.retries}")
        rows.append((run.label, run.orders, f"{run.per_order():.2f}", *spread, ", ".join(parts)))
    table(("", "orders", "requests/order", "median", "p90", "min", "max", "requests"), rows)
    print(f"items in the table afterwards: {stored} ({orders} + {WARMUP_ORDERS} warm-up expected)")
    return runs


# ------------------------------------------------------------------ 6. the bank test


def report_bank(orders: int) -> int:
    """The bank test, as `make test` runs it but with `orders` orders; its figures
    are its own output. Returns pytest's exit status."""
    header(f"6. The bank test under faults ({orders:,} orders, 5% of AWS calls failing)")
    env = os.environ | {"FUNDROUTER_BANK_ORDERS": str(orders)}
    test = "tests/integration/test_bank_under_faults.py"
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
    command += ["-m", "integration", "--timeout", "7200", "--no-header", test]
    print(f"+ FUNDROUTER_BANK_ORDERS={orders} pytest {test}", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


# ------------------------------------------------------------------ main


def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if int(text) < low:
            raise argparse.ArgumentTypeError(f"at least {low}")
        return int(text)

    return parse


OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("--runs", at_least(MIN_RUNS), 11, "fresh processes per module (1)"),
    ("--orders", int, 200, "orders submitted on moto (2)"),
    ("--match-orders", at_least(1), 100, "orders per matcher case on moto (3)"),
    ("--latency-orders", at_least(1), 500, "orders of the paced run (4a)"),
    ("--rate", float, 20.0, "orders/s of the paced run (4a)"),
    ("--bursts", int, [300, 2000], "orders of each unpaced run (4a)"),
    ("--submitters", at_least(1), 4, "concurrent HTTP clients (4a)"),
    ("--stack-seconds", float, 180.0, "bound on waiting for 4a's decisions"),
    ("--claims-per-level", at_least(1), 1000, "claims per run at most (4b)"),
    ("--claim-seconds", float, 4.0, "seconds per run at most (4b)"),
    ("--claim-rounds", at_least(1), 2, "rounds over the levels (4b)"),
    ("--expiry-holds", at_least(1), 20_000, "expired holds seeded (4c)"),
    ("--bank-orders", int, 5000, "orders of the bank test (6; 0: skip)"),
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    parser.add_argument("--no-stack", action="store_true", help="skip section 4")
    for flag, kind, default, text in OPTIONS:
        many = "+" if isinstance(default, list) else None
        parser.add_argument(flag, type=kind, default=default, nargs=many, help=text)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(f"fundrouter bench (arch {args.arch}, host {platform.machine()})")
    worst = report_imports(args.runs)
    new, replay = report_requests(args.orders)
    header("3. DynamoDB requests per match (MatcherFunction, moto, in-process)")
    with offline_aws():
        cases, sizes = match_requests.report(args.match_orders)
    stack = None if args.no_stack else local_stack.report(args)
    header("5. How far one line scales on AWS (arithmetic, not a measurement)")
    scale.report(sizes)
    bank = report_bank(args.bank_orders) if args.bank_orders > 0 else None
    header("7. Capacity model: orders/s before any partition passes 1,000 WCU/s (docs/capacity.md)")
    with offline_aws():
        capacity.report(template)
        header("8. Writes per matched order as lines grow; order item size after N repayments")
        order_size.report_match_cost()
        order_size.report()
        header("9. GET /v1/lines/{id} with 1,000 and 100,000 holdings (moto, in-process)")
        line_views.report()
        header("10. Reconciler: audit cost per run by open loans, expiry throughput")
        reconciler_scale.report()

    header("Summary")
    if worst:
        print(f"{worst[0]} imports at {worst[1]:.2f}x import boto3 (median of {args.runs})")
    per = f"{new.per_order():.2f} per new order, {replay.per_order():.2f} per replay"
    print(f"DynamoDB requests: {per}")
    print("per match: " + ", ".join(f"{case.label} {case.per_order():.2f}" for case in cases))
    if stack is None or stack.skipped:
        print(f"local stack: skipped ({stack.skipped.splitlines()[0] if stack else '--no-stack'})")
    else:
        local_stack.summary(stack)
    if bank is not None:
        print(f"bank test under faults, {args.bank_orders:,} orders: exit {bank} (figures above)")
    print(f"[{time.perf_counter() - started:.0f} s]")


if __name__ == "__main__":
    main()
