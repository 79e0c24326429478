"""Write openapi.json from the code: the routes, request and response models registered
in the ApiFunction's resolver (fundrouter.http.models), plus the OAuth2 client
credentials flow with the scopes of each route, which the code states in ROUTE_SCOPES.

    python scripts/openapi.py          # rewrite openapi.json
    python scripts/openapi.py --check  # exit 1 if the committed copy drifted
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

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
    # Powertools' own error shapes: every route declares Error for its errors instead.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
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
