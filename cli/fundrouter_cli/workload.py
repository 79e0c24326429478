"""What `demo` and `load` share: submitting orders in parallel, waiting for the
matcher's decisions, driving matched orders through their lifecycle, and reading
latencies off the orders' own timestamps.

Every loop here is bounded in count and in time.
"""

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, Final

from rich.console import Console

from fundrouter_cli.client import ApiClient
from fundrouter_cli.errors import ApiError, AuthError, RouteMissing, Unreachable
from fundrouter_cli.ui import progress

DECIDED: Final = frozenset({"MATCHED", "UNMATCHED"})
PAGE_SIZE: Final = 100

type Progress = Callable[[int], None]


def run_id(prefix: str) -> str:
    """A short id that sorts by time: prefix-<seconds base36><4 hex>."""
    stamp = _base36(int(time.time()))[-6:]
    return f"{prefix}-{stamp}{secrets.token_hex(2)}"


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def first_decision(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The history entry of the order's first match or no-match."""
    for entry in order.get("history") or []:
        if isinstance(entry, dict) and entry.get("status") in DECIDED:
            return entry
    return None


def decision_latency_ms(order: Mapping[str, Any]) -> float | None:
    """Intake to first decision, from the server's own timestamps (createdAt and the
    history entry), so polling intervals and client clocks do not blur it."""
    created = parse_time(order.get("createdAt"))
    entry = first_decision(order)
    decided = parse_time(entry.get("at")) if entry is not None else None
    if created is None or decided is None:
        return None
    return (decided - created).total_seconds() * 1000


# ---------------------------------------------------------------------- parallel work
@dataclass
class Outcomes:
    """What a batch of calls came to: how many worked, which were refused by the API
    (with a sample of the reasons), and how long the calls took."""

    done: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, ms: float) -> None:
        with self._lock:
            self.done += 1
            self.latencies_ms.append(ms)

    def refused(self, reason: str) -> None:
        with self._lock:
            self.failed += 1
            self.reasons[reason] += 1

    def timed[R](self, call: Callable[[], R], label: str = "") -> R | None:
        """`call()`, counted with its duration; None when the API refused it (counted
        under `label` and the error). What stops the whole run is raised."""
        started = time.perf_counter()
        try:
            result = call()
        except (Unreachable, AuthError):
            raise
        except ApiError as error:
            self.refused(f"{label}{error.status} {error.code}")
            return None
        self.ok((time.perf_counter() - started) * 1000)
        return result


def parallel[T](
    items: Sequence[T],
    work: Callable[[T], None],
    concurrency: int,
    advance: Progress,
) -> None:
    """Run `work` on every item with at most `concurrency` at a time. An error that
    stops the run (stack unreachable, credentials refused) cancels what has not
    started and is raised; Ctrl-C does the same."""
    pending: set[Future[None]] = set()
    queue = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        try:
            for item in queue:
                pending.add(pool.submit(work, item))
                if len(pending) >= concurrency * 2:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _collect(finished, advance)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(finished, advance)
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _collect(finished: Iterable[Future[None]], advance: Progress) -> None:
    for future in finished:
        future.result()  # re-raises what stopped the run
        advance(1)


def pacer(
    rate: float | None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[int], None]:
    """Waits until item `index` is due at `rate` a second from the first call (open
    loop: a late item goes at once, none is skipped); without a rate, never waits."""
    started: list[float] = []

    def wait(index: int) -> None:
        if rate:
            now = clock()
            if not started:
                started.append(now)
            sleep(max(0.0, started[0] + index / rate - now))

    return wait


def submit_all(
    client: ApiClient,
    orders: Sequence[Mapping[str, Any]],
    concurrency: int,
    advance: Progress,
    rate: float | None = None,
) -> tuple[Outcomes, dict[str, dict[str, Any]]]:
    """POST every order (at `rate` a second, if given); returns the outcomes and the
    orders as accepted."""
    outcomes = Outcomes()
    accepted: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    wait = pacer(rate)

    def submit(item: tuple[int, Mapping[str, Any]]) -> None:
        index, order = item
        wait(index)
        reply = outcomes.timed(partial(client.submit_order, order))
        if reply is not None:
            with lock:
                accepted[str(reply[0].get("orderId"))] = reply[0]

    parallel(list(enumerate(orders)), submit, concurrency, advance)
    return outcomes, accepted


# ---------------------------------------------------------------------- reading back
def collect(
    client: ApiClient, order_ids: set[str], since: str | None, *, extra_pages: int = 10
) -> dict[str, dict[str, Any]]:
    """The tenant's orders among `order_ids`, read newest first page by page until
    all are found or the listing reaches orders created before `since`."""
    found: dict[str, dict[str, Any]] = {}
    if not order_ids:
        return found
    max_pages = len(order_ids) // PAGE_SIZE + 1 + extra_pages
    for order in client.iter_orders(max_pages=max_pages, page_size=PAGE_SIZE):
        order_id = str(order.get("orderId"))
        if order_id in order_ids:
            found[order_id] = order
            if len(found) == len(order_ids):
                break
        created = order.get("createdAt")
        if since is not None and isinstance(created, str) and created < since:
            break
    return found


def await_decisions(
    client: ApiClient,
    order_ids: set[str],
    since: str | None,
    timeout: float,
    report: Callable[[int], None],
    *,
    interval: float = 0.5,
) -> dict[str, dict[str, Any]]:
    """Poll until none of `order_ids` is RECEIVED or `timeout` passes; `report` gets
    how many are decided after each poll. Returns the orders as last read."""
    deadline = time.monotonic() + timeout
    latest: dict[str, dict[str, Any]] = {}
    while True:
        latest = collect(client, order_ids, since)
        waiting = [i for i in order_ids if i not in latest or latest[i].get("status") == "RECEIVED"]
        report(len(order_ids) - len(waiting))
        if not waiting or time.monotonic() >= deadline:
            return latest
        time.sleep(interval)


def earliest_created(orders: Iterable[Mapping[str, Any]]) -> str | None:
    stamps = [o["createdAt"] for o in orders if isinstance(o.get("createdAt"), str)]
    return min(stamps) if stamps else None


# ---------------------------------------------------------------------- lifecycle
@dataclass(frozen=True)
class Step:
    type: str
    amount: int | None = None
    line_id: str | None = None  # the line the order is on: every event names it


@dataclass(frozen=True)
class LifecycleMix:
    """Shares of the MATCHED orders each path takes; the rest stay MATCHED (holding
    their reservation until the funder acts or the hold expires)."""

    cancel: float = 0.12
    decline: float = 0.10
    approve_only: float = 0.10
    disburse: float = 0.40
    repay_in_full: float = 0.40  # of the disbursed
    repay_in_part: float = 0.30  # of the disbursed
    disburse_in_part: float = 0.30  # of the disbursed: less than reserved is drawn


def plan_lifecycle(
    orders: Iterable[Mapping[str, Any]], rng: random.Random, mix: LifecycleMix
) -> dict[str, list[Step]]:
    """For each MATCHED order, the events its business system reports next. Pure:
    the same orders and seed give the same plan."""
    plans: dict[str, list[Step]] = {}
    for order in sorted(orders, key=lambda o: str(o.get("orderId"))):
        if order.get("status") != "MATCHED":
            continue
        reserved = order.get("reserved")
        if not isinstance(reserved, int) or reserved <= 0:
            continue
        roll = rng.random()
        steps: list[Step]
        if roll < mix.cancel:
            steps = [Step("APPROVED"), Step("CANCELLED")] if rng.random() < 0.4 else []
            steps = steps or [Step("CANCELLED")]
        elif roll < mix.cancel + mix.decline:
            steps = [Step("APPROVED"), Step("DECLINED")] if rng.random() < 0.3 else []
            steps = steps or [Step("DECLINED")]
        elif roll < mix.cancel + mix.decline + mix.approve_only:
            steps = [Step("APPROVED")]
        elif roll < mix.cancel + mix.decline + mix.approve_only + mix.disburse:
            steps = _disbursement(reserved, rng, mix)
        else:
            continue
        line_id = order.get("lineId")
        if isinstance(line_id, str):
            steps = [replace(step, line_id=line_id) for step in steps]
        plans[str(order.get("orderId"))] = steps
    return plans


def _disbursement(reserved: int, rng: random.Random, mix: LifecycleMix) -> list[Step]:
    drawn = reserved
    if rng.random() < mix.disburse_in_part:
        drawn = max(1, reserved * rng.randint(60, 95) // 100)
    steps = [Step("APPROVED"), Step("DISBURSED", drawn)]
    repay = rng.random()
    if repay < mix.repay_in_full:
        if rng.random() < 0.5 and drawn > 1:
            first = drawn * rng.randint(20, 60) // 100 or 1
            steps += [Step("REPAID", first), Step("REPAID", drawn - first)]
        else:
            steps.append(Step("REPAID", drawn))
    elif repay < mix.repay_in_full + mix.repay_in_part and drawn > 1:
        steps.append(Step("REPAID", max(1, drawn * rng.randint(10, 80) // 100)))
    return steps


def drive(
    client: ApiClient,
    plans: Mapping[str, Sequence[Step]],
    concurrency: int,
    advance: Progress,
) -> Outcomes:
    """Post each order's events in order (orders in parallel). An event the order's
    state no longer allows (409) ends that order's plan and is counted, not fatal.
    Event ids are derived from the plan, so a retried call is applied once."""
    outcomes = Outcomes()

    def run(order_id: str) -> None:
        for index, step in enumerate(plans[order_id]):
            event: dict[str, Any] = {
                "eventId": f"{order_id}.{index}.{step.type.lower()}"[-64:],
                "type": step.type,
            }
            if step.amount is not None:
                event["amount"] = step.amount
            if step.line_id is not None:
                event["lineId"] = step.line_id
            if (
                outcomes.timed(partial(client.post_event, order_id, event), f"{step.type}: ")
                is None
            ):
                return  # the order's state no longer allows the rest of its plan

    parallel(sorted(plans), run, concurrency, advance)
    return outcomes


NO_EVENTS_ROUTE: Final = (
    "[yellow]this stack does not serve POST /v1/orders/{id}/events (deployed from a"
    " template older than order events): lifecycle skipped; `make up` redeploys it[/]"
)


def events_route_available(client: ApiClient) -> bool:
    """Whether the stack serves order events: an event for an order that does not
    exist is refused by the API (404 order_not_found, nothing written) where the
    route exists, and by the gateway (no route) where it does not."""
    probe = f"fundrouter-cli-probe-{secrets.token_hex(6)}"
    try:
        client.post_event(probe, {"eventId": probe, "type": "APPROVED"})
    except RouteMissing:
        return False
    except ApiError:
        return True
    return True


@dataclass(frozen=True)
class Lifecycle:
    """What driving the plans came to: the events' outcomes and how long they took,
    the declined orders and those orders as read after they were routed again."""

    events: Outcomes
    seconds: float
    declined: set[str]
    rerouted: dict[str, dict[str, Any]]


def run_lifecycle(
    client: ApiClient,
    console: Console,
    plans: Mapping[str, Sequence[Step]],
    *,
    concurrency: int,
    since: str | None,
    timeout: float,
    label: str,
) -> Lifecycle | None:
    """Post the planned events (orders in parallel), then wait for the declined orders
    to be routed again. None, after saying so, where the stack serves no order events."""
    if not events_route_available(client):
        console.print(NO_EVENTS_ROUTE)
        return None
    with progress(console) as bar:
        task = bar.add_task(label, total=len(plans))
        started = time.monotonic()
        events = drive(client, plans, concurrency, lambda n: bar.advance(task, n))
        seconds = time.monotonic() - started
    if events.failed:
        console.print(f"[yellow]{events.failed} events refused[/]: {dict(events.reasons)}")
    declined = {i for i, steps in plans.items() if any(s.type == "DECLINED" for s in steps)}
    rerouted: dict[str, dict[str, Any]] = {}
    if declined:
        with progress(console) as bar:
            task = bar.add_task("re-routing declined", total=len(declined))
            rerouted = await_decisions(
                client, declined, since, timeout, lambda done: bar.update(task, completed=done)
            )
    return Lifecycle(events, seconds, declined, rerouted)


def count_steps(plans: Mapping[str, Sequence[Step]]) -> Counter[str]:
    return Counter(step.type for steps in plans.values() for step in steps)


def unmatched_reasons(
    orders: Iterable[Mapping[str, Any]], lines: Iterable[Mapping[str, Any]] = ()
) -> Counter[str]:
    """Why UNMATCHED orders fit no line: for each, the check failed by the line that
    came closest (the latest in routing's check order) among the lines that offer
    the order's product in its currency; PRODUCT_NOT_OFFERED when none does. Lines
    not given (or unknown) count as offering everything."""
    offers = {
        str(line.get("lineId")): (set(line.get("products") or []), line.get("currency"))
        for line in lines
    }
    reasons: Counter[str] = Counter()
    for order in orders:
        if order.get("status") != "UNMATCHED":
            continue
        decision = order.get("decision") or {}
        candidates = [c for c in decision.get("candidates") or [] if isinstance(c, dict)]
        relevant = [
            str(c.get("code") or c.get("outcome"))
            for c in candidates
            if _offers(offers.get(str(c.get("lineId"))), order)
        ]
        if not relevant and candidates:
            reasons["PRODUCT_NOT_OFFERED"] += 1
            continue
        reasons[_closest(relevant)] += 1
    return reasons


def _offers(offer: tuple[set[Any], Any] | None, order: Mapping[str, Any]) -> bool:
    if offer is None:
        return True
    products, currency = offer
    return (not products or order.get("product") in products) and (
        currency is None or currency == order.get("currency")
    )


# Routing's check order: a line refused later in it came closer to taking the order.
_CHECK_ORDER: Final = (
    "NOT_IN_POLICY",
    "EXCLUDED",
    "LINE_PAUSED",
    "OUTSIDE_VALIDITY_WINDOW",
    "CURRENCY_MISMATCH",
    "AMOUNT_BELOW_MIN",
    "AMOUNT_ABOVE_MAX",
    "TERM_NOT_OFFERED",
    "PRODUCT_NOT_OFFERED",
    "REGION_NOT_SERVED",
    "CREDIT_GRADE_NOT_ACCEPTED",
    "INSUFFICIENT_CAPACITY",
    "DAILY_LIMIT_REACHED",
    "REFUSED",
)


def _closest(outcomes: Sequence[str]) -> str:
    if not outcomes:
        return "NO_LINES"
    rank = {name: index for index, name in enumerate(_CHECK_ORDER)}
    return max(outcomes, key=lambda name: rank.get(name, -1))
