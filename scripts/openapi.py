"""Write openapi.json from the code: the routes and request models registered in the
ApiFunction's resolver, plus what the code cannot say by itself (OAuth2 client
credentials with the scopes of each route, and the error shape of every 4xx).

    python scripts/openapi.py          # rewrite openapi.json
    python scripts/openapi.py --check  # exit 1 if the committed copy drifted
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fundrouter.domain.orders import Order
from fundrouter.http.app import build_app

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "openapi.json"
TOKEN_URL = "https://<AuthDomainPrefix>-<account>.auth.<region>.amazoncognito.com/oauth2/token"  # noqa: S105
SCOPES = {
    "fundrouter/orders.write": "create orders, post order events",
    "fundrouter/orders.read": "read the tenant's own orders",
    "fundrouter/lines.admin": "manage lending lines and routing policies, read every order",
}
# The scopes each route accepts (any one of them), as template.yaml's routes declare.
ROUTE_SCOPES = {
    ("post", "/v1/orders"): ["fundrouter/orders.write"],
    ("post", "/v1/orders/{orderId}/events"): ["fundrouter/orders.write"],
    ("get", "/v1/orders"): ["fundrouter/orders.read", "fundrouter/lines.admin"],
    ("get", "/v1/orders/{orderId}"): ["fundrouter/orders.read", "fundrouter/lines.admin"],
}
# Routes that answer with the order resource, and with which statuses.
ORDER_RESPONSES = {
    ("post", "/v1/orders"): ("202", "200"),
    ("get", "/v1/orders/{orderId}"): ("200",),
    ("post", "/v1/orders/{orderId}/events"): ("200",),
}
ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing or invalid bearer token (answered by the gateway)",
    "403": "The token lacks the route's scope",
    "404": "Unknown resource, or another tenant's",
    "409": "Conflict: same id with different content, or an event the order's state does not allow",
    "415": "The body is not JSON",
    "422": "A field failed validation; `fields` names each",
    "429": "Throttled",
    "503": "Still throttled or failing after the server's own retries; nothing was written."
    " Send the same request again after `Retry-After` seconds",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def document() -> dict[str, Any]:
    app = build_app()
    spec: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="fundrouter",
            version="1.0.0",
            summary="Routes financing orders to lending lines without over-allocating them.",
        )
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.pop("ResponseValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    schemas["OrderResource"] = Order.model_json_schema(by_alias=True, mode="serialization")
    components["securitySchemes"] = {
        "oauth2": {
            "type": "oauth2",
            "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": SCOPES}},
        }
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            scopes = ROUTE_SCOPES.get((method, path), ["fundrouter/lines.admin"])
            operation["security"] = [{"oauth2": scopes}]
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses[status] = {"description": description, "content": error}
            for status in ORDER_RESPONSES.get((method, path), ()):
                responses[status] = {
                    "description": "The order resource",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/OrderResource"}
                        }
                    },
                }
    spec["paths"] = dict(sorted(spec["paths"].items()))
    return _without_local_refs(spec)


def _without_local_refs(spec: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's nested $defs move to components, so every $ref resolves."""
    order = spec["components"]["schemas"]["OrderResource"]
    for name, definition in order.pop("$defs", {}).items():
        spec["components"]["schemas"].setdefault(name, definition)
    text = json.dumps(spec).replace('"#/$defs/', '"#/components/schemas/')
    return dict(json.loads(text))


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    fresh = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != fresh:
            sys.exit("openapi.json is out of date: run `make openapi` and commit it")
        print("openapi.json matches the code")
        return
    TARGET.write_text(fresh)
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
