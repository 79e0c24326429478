"""The dependency rule: the domain is pure, and only the adapters speak AWS."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "fundrouter" / "fundrouter"
AWS_MODULES = ("boto3", "botocore", "aws_lambda_powertools", "mypy_boto3")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def uses_environment(path: Path) -> bool:
    return "os.environ" in path.read_text() or "getenv" in path.read_text()


@pytest.mark.parametrize("path", sorted((PACKAGE / "domain").glob("*.py")), ids=lambda p: p.name)
def test_domain_modules_import_nothing_of_aws_or_the_environment(path: Path) -> None:
    imports = imported_modules(path)

    assert not [m for m in imports if m.startswith(AWS_MODULES)]
    assert not [m for m in imports if m.startswith(("fundrouter.persistence", "fundrouter.http"))]
    assert not uses_environment(path)


@pytest.mark.parametrize("path", sorted((PACKAGE / "service").glob("*.py")), ids=lambda p: p.name)
def test_services_reach_storage_only_through_ports(path: Path) -> None:
    imports = imported_modules(path)

    assert not [m for m in imports if m.startswith(AWS_MODULES)]
    assert not [m for m in imports if m.startswith("fundrouter.persistence")]
