"""The simulation's random inputs: lines, orders, amounts, and the API Gateway events
that carry them to the API handler."""

import copy
import json
import random
from datetime import timedelta
from typing import Any, Final

from tests.support.events import load_event
from tests.support.simulation.model import START

# ---------------------------------------------------------------- random inputs


def random_window(rng: random.Random) -> tuple[str | None, str | None]:
    """Mostly always open; sometimes opening late, closing early, or both."""
    if rng.random() < 0.8:
        return None, None
    opens = START + timedelta(hours=rng.randrange(0, 30))
    closes = opens + timedelta(hours=rng.choice([6, 24, 48]))
    opening, closing = opens.strftime("%Y-%m-%dT%H:%M:%SZ"), closes.strftime("%Y-%m-%dT%H:%M:%SZ")
    return rng.choice([(opening, None), (None, closing), (opening, closing)])


def random_line(rng: random.Random, index: int) -> dict[str, Any]:
    limit = rng.choice([40_000, 80_000, 150_000, 300_000])
    active_from, active_until = random_window(rng)
    return {
        "funderId": f"funder-{index % 3}",
        "name": f"line {index}",
        "currency": "CNY" if rng.random() < 0.9 else "USD",
        "limit": limit,
        "dailyLimit": rng.choice([None, None, limit // 2, limit // 4]),
        "minAmount": rng.choice([100, 500, 2_000]),
        "maxAmount": rng.choice([30_000, 60_000, 100_000]),
        "terms": rng.choice([[], [], [], [6, 12, 24]]),
        "products": rng.choice([[], [], ["installment"], ["installment", "loan"]]),
        "regions": rng.choice([[], [], [], ["GD", "SH"]]),
        "creditGrades": rng.choice([[], [], [], ["A", "B"]]),
        "aprBps": rng.choice([900, 1200, 1500]),
        "priority": rng.randint(1, 4),
        "weight": rng.choice([0, 20, 50]),
        "holdSeconds": rng.choice([60, 600, 1800, 3600, 4 * 3600]),
        "activeFrom": active_from,
        "activeUntil": active_until,
        "status": rng.choice(["ACTIVE"] * 5 + ["PAUSED"]),
        "timezone": rng.choice(["Asia/Shanghai", "Asia/Shanghai", "UTC", "America/New_York"]),
    }


def random_request(rng: random.Random, order_id: str) -> dict[str, Any]:
    customer: dict[str, Any] = {"id": f"c-{rng.randrange(1000)}"}
    if rng.random() < 0.95:
        customer["region"] = rng.choice(["GD", "GD", "SH", "BJ"])
    if rng.random() < 0.95:
        customer["creditGrade"] = rng.choice(["A", "B", "B", "C"])
    return {
        "orderId": order_id,
        "amount": int(10 ** rng.uniform(2.5, 5.0)),
        "currency": "CNY" if rng.random() < 0.97 else "USD",
        "termMonths": rng.choice([3, 6, 12, 12, 24]),
        "product": rng.choice(["installment", "installment", "installment", "loan", "bnpl"]),
        "customer": customer,
        "metadata": rng.choice([{}, {"channel": "app"}]),
    }


def amount_around(rng: random.Random, held: int) -> int:
    """Mostly a valid part of `held`, sometimes all of it, sometimes too much."""
    options = [held + rng.randint(1, 5_000)]
    if held > 0:
        options += [held, held, rng.randint(1, held), rng.randint(1, held)]
    return rng.choice(options)


# ---------------------------------------------------------------- API events


class ApiEvents:
    """API Gateway events for the API handler, from the samples in events/api."""

    def __init__(self) -> None:
        self._samples = {
            name: load_event(f"api/{name}.json")
            for name in ("submit_order", "order_event_approved", "get_order", "patch_line_pause")
        }

    def _event(
        self, sample: str, path: str, params: dict[str, str] | None, body: Any, caller: str | None
    ) -> dict[str, Any]:
        event = copy.deepcopy(self._samples[sample])
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        if params is not None:
            event["pathParameters"] = params
        event["body"] = None if body is None else json.dumps(body)
        if caller is not None:
            claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
            claims["client_id"] = claims["sub"] = caller
        return event

    def submit(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._event("submit_order", "/v1/orders", None, body, tenant)

    def order_event(self, tenant: str, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/orders/{order_id}/events"
        return self._event("order_event_approved", path, {"orderId": order_id}, body, tenant)

    def get_order(self, tenant: str, order_id: str) -> dict[str, Any]:
        path = f"/v1/orders/{order_id}"
        return self._event("get_order", path, {"orderId": order_id}, None, tenant)

    def patch_line(self, line_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/lines/{line_id}"
        return self._event("patch_line_pause", path, {"lineId": line_id}, changes, None)


API_EVENTS: Final = ApiEvents()
