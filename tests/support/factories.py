"""The one builder of a lending line's configuration for every test: the body of
PUT /v1/lines/{lineId} (camelCase, as the API takes it) and the LineConfig it makes."""

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from fundrouter.domain.lines import LineConfig

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
    body = dict(ANY_ORDER)
    for fields in (*presets, changes):
        body |= {_camel(name): value for name, value in fields.items()}
    return copy.deepcopy(body)  # a test may change the lists of the one it is given


def line_config(*presets: Mapping[str, Any], **changes: Any) -> LineConfig:
    return LineConfig.model_validate(line_body(*presets, **changes))


def _camel(name: str) -> str:
    field = LineConfig.model_fields.get(name)
    return field.alias if field is not None and field.alias is not None else name
