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

from fundrouter.domain.lines import LineConfig
from fundrouter.domain.orders import HistoryEntry, Order
from fundrouter.domain.routing import RoutingPolicy
from fundrouter.http.app import build_app
from fundrouter.http.auth import ROUTE_SCOPES

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "openapi.json"
TOKEN_URL = "https://<AuthDomainPrefix>-<account>.auth.<region>.amazoncognito.com/oauth2/token"  # noqa: S105
SCOPES = {
    "fundrouter/orders.write": "create orders, post order events",
    "fundrouter/orders.read": "read the tenant's own orders",
    "fundrouter/lines.admin": "manage lending lines and routing policies, read every order",
}
# What each route answers with on success, by status (components/schemas names).
RESOURCES = {
    ("post", "/v1/orders"): {"202": "OrderResource", "200": "OrderResource"},
    ("get", "/v1/orders/{orderId}"): {"200": "OrderResource"},
    ("post", "/v1/orders/{orderId}/events"): {"200": "OrderResource"},
    ("get", "/v1/orders"): {"200": "OrderPage"},
    ("get", "/v1/orders/{orderId}/history"): {"200": "HistoryPage"},
    ("put", "/v1/lines/{lineId}"): {"201": "LineResource", "200": "LineResource"},
    ("patch", "/v1/lines/{lineId}"): {"200": "LineResource"},
    ("get", "/v1/lines/{lineId}"): {"200": "LineResource"},
    ("get", "/v1/lines"): {"200": "LineList"},
    ("put", "/v1/tenants/{tenantId}/routing"): {"200": "RoutingResource"},
    ("get", "/v1/tenants/{tenantId}/routing"): {"200": "RoutingResource"},
    ("post", "/v1/admin/status-events/republish"): {"200": "RepublishReport"},
    ("get", "/v1/audit"): {"200": "AuditReport"},
}
ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing or invalid bearer token (answered by the gateway)",
    "403": "The token lacks the route's scope",
    "404": "Unknown resource, or another tenant's",
    "409": "Conflict: same id with different content, an event the order's state does not"
    " allow, or one naming another line or version (`line_mismatch`, `version_mismatch`)",
    "415": "The body is not JSON (`content-type: application/json`)",
    "422": "A field failed validation; `fields` names each",
    "429": "Throttled",
    "503": "Still throttled or failing after the server's own retries; nothing was written."
    " Send the same request again after `Retry-After` seconds",
}
# The gateway answers these itself, before the function, as {"message": ...}: an HTTP
# API cannot reshape its JWT authorizer's refusals or its throttling.
GATEWAY_STATUSES = ("401", "403", "429")
GATEWAY_SCHEMA = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}},
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
                        "required": ["field", "reason"],
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def _order_resource() -> dict[str, Any]:
    """Order.resource(): the stored order less its internal bookkeeping."""
    schema = Order.model_json_schema(by_alias=True, mode="serialization")
    for name in ("contentHash", "claimDay", "previousStatus"):
        schema["properties"].pop(name)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    schema["title"] = "OrderResource"
    return schema


def _line_resource() -> dict[str, Any]:
    """A line's configuration with its utilization (service.lines.LineView.resource)."""
    schema = LineConfig.model_json_schema(by_alias=True, mode="serialization")
    count = {"type": "integer", "minimum": 0}
    moment = {"type": "string", "format": "date-time"}
    schema["properties"] = (
        {"lineId": {"type": "string"}}
        | schema["properties"]
        | {
            "reserved": count,
            "drawn": count,
            "available": {"type": "integer"},
            "usedToday": count,
            "availableToday": {"anyOf": [count, {"type": "null"}]},
            "day": {"type": "string", "format": "date"},
            "orders": {"type": "object", "additionalProperties": count},
            "warnings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            },
            "configVersion": {"type": "integer", "minimum": 1},
            "createdAt": moment,
            "updatedAt": moment,
        }
    )
    schema["required"] = sorted(schema["properties"])
    schema["title"] = "LineResource"
    schema["description"] = "A lending line's configuration and utilization."
    return schema


def _line_patch() -> dict[str, Any]:
    """PATCH takes any of the configuration's fields; the merged result is validated
    as a whole (minAmount <= maxAmount) and answered 422 if it fails."""
    schema = LineConfig.model_json_schema(by_alias=True)
    schema.pop("required", None)
    schema["title"] = "LinePatch"
    schema["description"] = "Some of a line's configuration fields."
    return schema


def _routing_resource() -> dict[str, Any]:
    schema = RoutingPolicy.model_json_schema(by_alias=True, mode="serialization")
    schema["properties"] = {"tenantId": {"type": "string"}} | schema["properties"]
    schema["required"] = sorted(schema["properties"])
    schema["title"] = "RoutingResource"
    return schema


_ORDER_KEY = {"tenantId": {"type": "string"}, "orderId": {"type": "string"}}
_COUNTS = {"type": "integer"}
_DRIFT: dict[str, Any] = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["reserved", "expectedReserved", "drawn", "expectedDrawn", "amount"],
            "properties": {
                "reserved": _COUNTS,
                "expectedReserved": _COUNTS,
                "drawn": _COUNTS,
                "expectedDrawn": _COUNTS,
                "amount": _COUNTS,
                "orders": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
            },
        },
    ]
}
AUDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "AuditReport",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["lineId", "lastFullPassAt", "orders", "drift", "unconfirmed"],
                "properties": {
                    "lineId": {"type": "string"},
                    "lastFullPassAt": {"anyOf": [{"type": "null"}, {"type": "string"}]},
                    "orders": _COUNTS,
                    "drift": _DRIFT,
                    "unconfirmed": _DRIFT,
                    "passUnderWay": {
                        "anyOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "properties": {
                                    "startedAt": {"type": "string"},
                                    "orders": _COUNTS,
                                },
                            },
                        ]
                    },
                },
            },
        }
    },
}
REPUBLISH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "RepublishReport",
    "required": ["republished", "missing", "failed", "letters", "more"],
    "properties": {
        "republished": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tenantId", "orderId", "status", "version"],
                "properties": _ORDER_KEY
                | {"status": {"type": "string"}, "version": {"type": "integer"}},
            },
        },
        "missing": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tenantId", "orderId"],
                "properties": _ORDER_KEY,
            },
        },
        "failed": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tenantId", "orderId", "reason"],
                "properties": _ORDER_KEY | {"reason": {"type": "string"}},
            },
        },
        "letters": {"type": "integer", "minimum": 0},
        "more": {"type": "boolean", "description": "The limit was reached: call again."},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
    schemas["GatewayError"] = GATEWAY_SCHEMA
    schemas["OrderResource"] = _order_resource()
    schemas["OrderPage"] = {
        "type": "object",
        "required": ["items", "nextCursor"],
        "properties": {
            "items": {"type": "array", "items": _ref("OrderResource")},
            "nextCursor": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "Pass as `cursor` for the next page; null on the last.",
            },
        },
    }
    schemas["HistoryEntry"] = HistoryEntry.model_json_schema(by_alias=True, mode="serialization")
    schemas["HistoryPage"] = {
        "type": "object",
        "required": ["items", "nextCursor"],
        "description": "Entries oldest first; `historyTotal` on the order counts them all.",
        "properties": {
            "items": {"type": "array", "items": _ref("HistoryEntry")},
            "nextCursor": schemas["OrderPage"]["properties"]["nextCursor"],
        },
    }
    schemas["LineResource"] = _line_resource()
    schemas["LineList"] = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref("LineResource")}},
    }
    schemas["LinePatch"] = _line_patch()
    schemas["RoutingResource"] = _routing_resource()
    schemas["RepublishReport"] = REPUBLISH_SCHEMA
    schemas["AuditReport"] = AUDIT_SCHEMA
    components["securitySchemes"] = {
        "oauth2": {
            "type": "oauth2",
            "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": SCOPES}},
        }
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            scopes = ROUTE_SCOPES[f"{method.upper()} {path}"]
            operation["security"] = [{"oauth2": [scope.value for scope in scopes]}]
            if (method, path) == ("patch", "/v1/lines/{lineId}"):
                operation["requestBody"]["content"] = _json(_ref("LinePatch"))
            responses = operation.setdefault("responses", {})
            responses.pop("200", None)  # Powertools' guess from the handler's return type
            for status, name in RESOURCES[(method, path)].items():
                responses[status] = {"description": name, "content": _json(_ref(name))}
            for status, description in ERRORS.items():
                schema = _ref("Error")
                if status in GATEWAY_STATUSES:
                    schema = {"anyOf": [schema, _ref("GatewayError")]}
                responses[status] = {"description": description, "content": _json(schema)}
    spec["paths"] = dict(sorted(spec["paths"].items()))
    return _without_local_refs(spec)


def _without_local_refs(spec: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's nested $defs move to components, so every $ref resolves."""
    schemas = spec["components"]["schemas"]
    for schema in list(schemas.values()):
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
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
