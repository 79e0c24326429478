"""The dependency rule, layer by layer: the domain is pure; the service reaches storage
and AWS only through its ports; HTTP speaks to the services, never to storage; the
adapters implement the service's ports and know nothing of HTTP; the handlers wire the
layer to Lambda and import nothing else."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "fundrouter" / "fundrouter"
AWS_MODULES = ("boto3", "botocore", "aws_lambda_powertools", "mypy_boto3")
SDK_MODULES = ("boto3", "botocore", "mypy_boto3")
STDLIB = frozenset(sys.stdlib_module_names)
# The service modules that declare the ports an adapter implements, and the values
# that cross them; the others are use cases, which an adapter never calls.
SERVICE_PORTS = (
    "fundrouter.service.ports",
    "fundrouter.service.auditing",
    "fundrouter.service.tracking",
)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved against its package (a
    handler's folder is no package: it has none)."""
    inside = path.is_relative_to(PACKAGE)
    package = ".".join(path.relative_to(PACKAGE.parent).parent.parts) if inside else ""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            found.add(".".join(part for part in (base, node.module) if part))
    return found


def modules_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


def starting(imports: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in imports if m.startswith(prefixes))


def uses_environment(path: Path) -> bool:
    return "os.environ" in path.read_text() or "getenv" in path.read_text()


@pytest.mark.parametrize("path", modules_of("domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_pydantic_and_the_standard_library(path: Path) -> None:
    imports = imported_modules(path)

    allowed = {m for m in imports if m.split(".")[0] in STDLIB | {"pydantic"}}
    assert sorted(imports - allowed) == starting(imports, "fundrouter.domain")
    assert not uses_environment(path)


@pytest.mark.parametrize("path", modules_of("service"), ids=lambda p: p.name)
def test_services_reach_storage_and_aws_only_through_ports(path: Path) -> None:
    imports = imported_modules(path)

    assert not starting(imports, *AWS_MODULES)
    assert not starting(imports, "fundrouter.persistence", "fundrouter.http")


@pytest.mark.parametrize("path", modules_of("http"), ids=lambda p: p.name)
def test_http_speaks_to_the_services_never_to_storage(path: Path) -> None:
    imports = imported_modules(path)

    assert not starting(imports, *SDK_MODULES)
    assert not starting(imports, "fundrouter.persistence")


@pytest.mark.parametrize("path", modules_of("persistence"), ids=lambda p: p.name)
def test_adapters_implement_ports_and_know_nothing_of_http(path: Path) -> None:
    imports = imported_modules(path)
    services = starting(imports, "fundrouter.service")

    assert not starting(imports, "fundrouter.http", "aws_lambda_powertools")
    assert [m for m in services if m not in SERVICE_PORTS] == []


@pytest.mark.parametrize(
    "path", sorted((ROOT / "functions").glob("*/*.py")), ids=lambda p: p.parent.name
)
def test_handlers_import_only_the_layer_powertools_and_the_sdk(path: Path) -> None:
    imports = imported_modules(path)
    # pydantic: the matcher names the ValidationError it keeps out of its logs.
    known = STDLIB | {"fundrouter", "aws_lambda_powertools", "boto3", "pydantic"}

    assert sorted(m for m in imports if m.split(".")[0] not in known) == []


@pytest.mark.parametrize(
    "path", sorted((ROOT / "functions").glob("*/*.py")), ids=lambda p: p.parent.name
)
def test_handlers_stay_thin(path: Path) -> None:
    """A handler wires the layer to Lambda: its module stays about 40 lines."""
    assert len(path.read_text().splitlines()) <= 40


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.stem)
def test_functions_of_the_layer_fit_on_a_screen(path: Path) -> None:
    """No function in the layer is longer than 50 lines, its signature included."""
    functions = (
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    long = {f.name: f.end_lineno - f.lineno + 1 for f in functions if f.end_lineno}
    assert {name: n for name, n in long.items() if n > 50} == {}
