"""Every operation of openapi.json has a method in the typed client, and every
method the client marks as an operation is still in the document: a route added
without its method fails here, naming it. Each model and enum of the client is the
document's schema of its name: the same fields (or values), no field required that
the schema leaves optional.

Adding one: a method on fundrouter_client.Client decorated with
@operation("METHOD", "/path/{as}/openapi.json/spells/it"), returning its model.
"""

import inspect
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from fundrouter_client import OPERATIONS, Client, models

DOCUMENT = Path(__file__).parents[2] / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch"}


def schemas() -> dict[str, Any]:
    return dict(json.loads(DOCUMENT.read_text(encoding="utf-8"))["components"]["schemas"])


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


def test_every_client_model_and_enum_is_the_schema_of_its_name() -> None:
    document = schemas()
    differences = []
    for name, kind in inspect.getmembers(models, inspect.isclass):
        if kind.__module__ != models.__name__ or kind is models.Model:
            continue
        schema = document.get(name)
        if schema is None:
            differences.append(f"{name}: no such schema")
        elif issubclass(kind, StrEnum):
            if [v.value for v in kind] != schema.get("enum"):
                differences.append(f"{name}: values {[v.value for v in kind]}")
        else:
            fields = {f.alias or n: f for n, f in kind.model_fields.items()}
            if set(fields) != set(schema.get("properties", {})):
                differences.append(f"{name}: fields {sorted(fields)}")
            required = {a for a, f in fields.items() if f.is_required()}
            if not required <= set(schema.get("required", [])):
                differences.append(f"{name}: requires {sorted(required)}")

    assert not differences, "; ".join(differences)
