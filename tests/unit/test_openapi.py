"""openapi.json is generated from the code; the committed copy must not drift."""

import json
import subprocess
import sys

from fundrouter.http.auth import ROUTE_SCOPES

from tests.support.template import ROOT, resources


def test_committed_openapi_matches_the_code() -> None:
    checked = subprocess.run(
        [sys.executable, "scripts/openapi.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr


def test_openapi_documents_every_route_of_the_template_with_its_scopes() -> None:
    spec = json.loads((ROOT / "openapi.json").read_text())
    documented = {
        (method.upper(), path, tuple(op["security"][0]["oauth2"]))
        for path, operations in spec["paths"].items()
        for method, op in operations.items()
    }
    # A tenant's route is open at the gateway, its scopes checked by the function alone.
    declared = {
        (
            *r["Properties"]["RouteKey"].split(" ", 1),
            tuple(
                r["Properties"].get("AuthorizationScopes")
                or [s.value for s in ROUTE_SCOPES[r["Properties"]["RouteKey"]]]
            ),
        )
        for r in resources("AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["RouteKey"] != "$default"  # undeclared methods, answered 405
    }

    assert documented == declared
    refs = {ref for ref in json.dumps(spec).split('"$ref": "')[1:]}
    schemas = spec["components"]["schemas"]
    assert all(ref.split('"')[0].removeprefix("#/components/schemas/") in schemas for ref in refs)
