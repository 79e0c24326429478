"""The one builder of each request body for every test: a lending line's configuration
(the body of PUT /v1/lines/{lineId}) and an order (the body of POST /v1/orders), as
the API takes them (camelCase), and the domain models they make."""

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import OrderRequest
from pydantic import BaseModel

from tests.support.events import load_event

# A line with no rules: it takes any CNY order from 1 to 5,000,000.
ANY_ORDER: Final[dict[str, Any]] = {
    "funderId": "bank-a",
    "name": "Bank A consumer",
    "currency": "CNY",
    "limit": 100_000_000,
    "minAmount": 1,
    "maxAmount": 5_000_000,
    "aprBps": 1290,
    "priority": 10,
    "weight": 50,
    "holdSeconds": 900,
}
# The example line of docs/api.md, every field given: the body `sam local invoke` sends.
API_EXAMPLE: Final[dict[str, Any]] = json.loads(load_event("api/put_line.json")["body"])


def line_body(*presets: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """ANY_ORDER, then each preset (API_EXAMPLE, say), then `changes`; fields are
    named in camelCase or in snake_case."""
    return _body(LineConfig, ANY_ORDER, *presets, changes)


def line_config(*presets: Mapping[str, Any], **changes: Any) -> LineConfig:
    return LineConfig.model_validate(line_body(*presets, **changes))


# The example order of docs/api.md: the body `sam local invoke` sends.
ORDER_EXAMPLE: Final[dict[str, Any]] = json.loads(load_event("api/submit_order.json")["body"])


def order_body(*presets: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """ORDER_EXAMPLE, then each preset, then `changes`, named as line_body's are."""
    return _body(OrderRequest, ORDER_EXAMPLE, *presets, changes)


def order_request(*presets: Mapping[str, Any], **changes: Any) -> OrderRequest:
    return OrderRequest.model_validate(order_body(*presets, **changes))


def _body(model: type[BaseModel], *layers: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for fields in layers:
        for name, value in fields.items():
            field = model.model_fields.get(name)
            body[field.alias if field is not None and field.alias else name] = value
    return copy.deepcopy(body)  # a test may change the lists of the one it is given
