"""Every operation of openapi.json has a method in the typed client, and every
method the client marks as an operation is still in the document: a route added
without its method fails here, naming it.

Adding one: a method on fundrouter_client.Client decorated with
@operation("METHOD", "/path/{as}/openapi.json/spells/it"), returning its model.
"""

import json
from pathlib import Path

from fundrouter_client import OPERATIONS, Client

DOCUMENT = Path(__file__).parents[2] / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch"}


def documented() -> dict[tuple[str, str], str]:
    paths = json.loads(DOCUMENT.read_text(encoding="utf-8"))["paths"]
    return {
        (method.upper(), path): str(spec.get("operationId", "?"))
        for path, item in paths.items()
        for method, spec in item.items()
        if method in METHODS
    }


def test_every_documented_operation_has_a_client_method() -> None:
    missing = [
        f"{method} {path} ({operation_id})"
        for (method, path), operation_id in sorted(documented().items())
        if (method, path) not in OPERATIONS
    ]

    assert not missing, "no fundrouter_client.Client method for: " + "; ".join(missing)


def test_every_client_operation_is_documented_and_is_a_method() -> None:
    stale = sorted(
        f"{m} {p} ({name})" for (m, p), name in OPERATIONS.items() if (m, p) not in documented()
    )

    assert not stale, "Client methods for operations openapi.json does not have: " + "; ".join(
        stale
    )
    assert all(callable(getattr(Client, name, None)) for name in OPERATIONS.values())
