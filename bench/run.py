"""`make bench`: what a cold start, an order and a match cost. Figures only, no verdicts.
Sections 1, 2 and 6 here; 3 in match_requests.py, 4 local_stack.py, 7 and 8
capacity.py, 9 line_views.py, 10 reconciler_scale.py. From the repository root:
``.venv/bin/python bench/run.py --arch x86_64``."""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))

import capacity  # noqa: E402 - after the repository root is on sys.path, as all below
import line_views  # noqa: E402
import local_stack  # noqa: E402
import match_requests  # noqa: E402
import reconciler_scale  # noqa: E402
from common import header, moto, spread, table, timed  # noqa: E402
from fundrouter.domain.clock import utc_now  # noqa: E402
from fundrouter.persistence.orders import DynamoOrderRepository  # noqa: E402
from fundrouter.service.orders import OrderService  # noqa: E402
from fundrouter_cli.stats import percentile  # noqa: E402

from tests.support.events import load_event  # noqa: E402
from tests.support.factories import order_body  # noqa: E402
from tests.support.handlers import import_fresh  # noqa: E402
from tests.support.requests import Answers  # noqa: E402

FUNCTIONS = ROOT / "functions"
TABLE = "fundrouter-bench-orders"
WARMUP_ORDERS = 5
SAMPLE = load_event("api/submit_order.json")


def report_imports(runs: int) -> tuple[str, float] | None:
    """One discarded warm-up round (bytecode caches, page cache), then `runs` rounds;
    each round imports every subject once, in an order rotated round by round, so the
    baseline and the modules share the machine's noise and no one always goes first."""
    header("1. Cold import time of the Lambda handler modules")
    print(f"{sys.executable} (Python {platform.python_version()}); {runs} fresh processes each,")
    print("interleaved with `import boto3` (+1 warm-up round), timed in the child, with")
    print("Lambda's environment (tracing active, no X-Ray daemon), network blocked")
    subjects = [("import boto3", "boto3", FUNCTIONS / "boto3.py")]
    subjects += [(p.stem, str(p), p) for p in sorted(FUNCTIONS.glob("*/*_handler.py"))]
    samples: dict[str, list[int]] = {label: [] for label, _, _ in subjects}
    for round_no in range(-1, runs):
        shift = round_no % len(subjects)
        for label, target, handler in subjects[shift:] + subjects[:shift]:
            took = import_fresh(target, handler).nanoseconds
            samples[label] += [took] if round_no >= 0 else []
    base = percentile(samples["import boto3"], 50)
    ratios = {label: percentile(v, 50) / base for label, v in samples.items()}
    rows = [(label, *spread(v), f"{ratios[label]:.2f}x") for label, v in samples.items()]
    table(("module", "median", "p90", "min", "max", "ratio to import boto3"), rows)
    print("absolute times are this machine's (Lambda's CPU share differs): compare ratios")
    return max(list(ratios.items())[1:], key=lambda kr: kr[1], default=None)


def report_requests(orders: int) -> list[float]:
    """The ApiFunction's app on a counted moto client; requests per order of each pass."""
    header("2. DynamoDB requests per order (moto, in-process)")
    with moto(OrdersTable=TABLE) as client:
        # Built as fundrouter.bootstrap builds it, on the counted client.
        service, calls = (
            OrderService(DynamoOrderRepository(client, TABLE), utc_now),
            Answers(client),
        )

        def drive(prefix: str, count: int, status: int) -> list[int]:
            bodies = (json.dumps(order_body(orderId=f"{prefix}-{n:05d}")) for n in range(count))
            return [timed(SAMPLE | {"body": body}, status, orders=service) for body in bodies]

        drive("bench-warmup", WARMUP_ORDERS, 202)  # lazy setup, not counted
        rows, per_order = [], []
        for label, status in (("new order", 202), ("identical replay", 200)):
            calls.reset()
            latencies = drive("bench", orders, status)
            per_order.append(len(calls.names) / orders)
            parts = [f"{name}: {count}" for name, count in sorted(calls.counts().items())]
            parts.append(f"retries: {calls.retries}")
            rows.append(
                (label, orders, f"{per_order[-1]:.2f}", *spread(latencies), ", ".join(parts))
            )
        stored = client.scan(TableName=TABLE, Select="COUNT")["Count"]
    print("the ApiFunction's app (tests/support/api.py serve), events/api/submit_order.json under")
    print(f"{orders} orderIds (+{WARMUP_ORDERS} warm-up), requests counted on its client;")
    print("latency: the handler's on moto, NOT representative of AWS")
    table(("", "orders", "requests/order", "median", "p90", "min", "max", "requests"), rows)
    print(f"items in the table afterwards: {stored} ({orders} + {WARMUP_ORDERS} warm-up expected)")
    return per_order


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


OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("--runs", int, 11, "fresh processes per module (1)"),
    ("--orders", int, 200, "orders submitted on moto (2)"),
    ("--match-orders", int, 100, "orders per matcher case on moto (3)"),
    ("--latency-orders", int, 500, "orders of the paced run (4a)"),
    ("--rate", float, 20.0, "orders/s of the paced run (4a)"),
    ("--bursts", int, [300, 2000], "orders of each unpaced run (4a, the largest also 4d)"),
    ("--submitters", int, 4, "concurrent HTTP clients (4a)"),
    ("--stack-seconds", float, 180.0, "bound on waiting for 4a's decisions"),
    ("--claims-per-level", int, 1000, "claims per run at most (4b)"),
    ("--claim-seconds", float, 4.0, "seconds per run at most (4b)"),
    ("--claim-rounds", int, 2, "rounds over the levels (4b)"),
    ("--expiry-holds", int, 20_000, "expired holds seeded (4c)"),
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
    cases = match_requests.report(args.match_orders)
    stack = None if args.no_stack else local_stack.report(args)
    bank = report_bank(args.bank_orders) if args.bank_orders > 0 else None
    capacity.report()
    line_views.report()
    reconciler_scale.report()

    header("Summary")
    if worst:
        print(f"{worst[0]} imports at {worst[1]:.2f}x import boto3 (median of {args.runs})")
    print(f"DynamoDB requests: {new:.2f} per new order, {replay:.2f} per replay")
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
