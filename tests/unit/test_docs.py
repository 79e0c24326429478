"""The docs say what the code does: docs/api.md against openapi.json and the error map,
docs/design.md's state diagram against the lifecycle, and every relative link in the
repository's Markdown against the files it names."""

import ast
import json
import re
from http import HTTPStatus
from pathlib import Path

from fundrouter.domain.errors import Contended, Unavailable
from fundrouter.domain.lifecycle import ALLOWED_FROM
from fundrouter.domain.orders import OrderStatus
from fundrouter.http.app import DOMAIN_STATUS

from tests.support.template import ROOT

API = (ROOT / "docs" / "api.md").read_text()
DESIGN = (ROOT / "docs" / "design.md").read_text()
HTTP_PACKAGE = ROOT / "layers" / "fundrouter" / "fundrouter" / "http"


def table(text: str, *header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row is `header`, cells
    stripped of backticks."""
    for block in re.split(r"\n(?!\|)[^\n]*", "\n" + text):
        rows = [
            [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            for line in block.strip().splitlines()
        ]
        if rows and rows[0] == list(header):
            return rows[2:]  # the header, then the --- row
    raise AssertionError(f"no table {header}")


def _listed(cell: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("`") for part in cell.split(","))


def test_route_table_equals_openapi() -> None:
    spec = json.loads((ROOT / "openapi.json").read_text())
    documented = {
        (method, path): (_listed(scopes), tuple(sorted(_listed(success))))
        for method, path, scopes, success in table(API, "method", "path", "scopes", "success")
    }
    generated = {
        (method.upper(), path): (
            tuple(op["security"][0]["oauth2"]),
            tuple(sorted(s for s in op["responses"] if s.startswith("2"))),
        )
        for path, operations in spec["paths"].items()
        for method, op in operations.items()
    }

    assert documented == generated


def test_error_statuses_equal_openapi_plus_405() -> None:
    spec = json.loads((ROOT / "openapi.json").read_text())
    generated = {
        status
        for operations in spec["paths"].values()
        for op in operations.values()
        for status in op["responses"]
        if not status.startswith("2")
    }
    documented = {status for status, _ in table(API, "status", "meaning")}

    # Only an undeclared method meets 405, so no declared operation lists it.
    assert documented == generated | {"405"}


def _literal_error_codes() -> dict[str, int]:
    """Every `error_response(HTTPStatus.X, "code", ...)` in the http package."""
    codes = {}
    for module in HTTP_PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if not isinstance(node, ast.Call) or getattr(node.func, "id", "") != "error_response":
                continue
            named = {k.arg: k.value for k in node.keywords}
            given = node.args
            status = given[0] if given else named.get("status")
            code = given[1] if len(given) > 1 else named.get("code")
            if isinstance(status, ast.Attribute) and isinstance(code, ast.Constant):
                codes[str(code.value)] = HTTPStatus[status.attr].value
    return codes


def test_every_error_code_the_function_answers_is_documented_with_its_status() -> None:
    emitted = (
        _literal_error_codes()
        | {error.code: status.value for error, status in DOMAIN_STATUS.items()}
        # The store's refusals have their own handler (409 or 503 with Retry-After).
        | {Contended.code: 409, Unavailable.code: 503}
    )
    documented = {code: int(status) for code, status, _ in table(API, "code", "status", "when")}
    statuses = {int(status) for status, _ in table(API, "status", "meaning")}

    assert {"malformed_json", "internal_error", "order_conflict"} <= emitted.keys()
    assert documented == emitted
    assert set(documented.values()) <= statuses


def test_order_event_table_equals_the_lifecycle() -> None:
    rows = table(API, "type", "allowed from", "order becomes", "effect on the line")
    documented = {kind: set(_listed(allowed)) for kind, allowed, *_ in rows}

    assert documented == {
        kind.value: {s.value for s in froms} for kind, froms in ALLOWED_FROM.items()
    }


def test_state_diagram_draws_every_status_and_the_lifecycle_event_arrows() -> None:
    diagram = DESIGN.split("```mermaid\nstateDiagram-v2\n", 1)[1].split("```", 1)[0]
    arrows = re.findall(r"^\s*(\S+) --> (\S+?)(?::\s*(.*))?$", diagram, re.MULTILINE)
    by_event: dict[str, set[str]] = {}
    for source, _, label in arrows:
        by_event.setdefault(label.split(",")[0].strip(), set()).add(source)
    states = {s for source, target, _ in arrows for s in (source, target)} - {"[*]"}

    assert states == {status.value for status in OrderStatus}
    for kind, sources in ALLOWED_FROM.items():
        assert by_event.get(kind.value) == {s.value for s in sources}, kind


# ---------------------------------------------------------------- relative links

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def markdown_files(root: Path) -> list[Path]:
    """Every .md file outside hidden folders (.venv*, .aws-sam, .fundrouter, caches)."""
    return sorted(
        path
        for path in root.rglob("*.md")
        if not any(part.startswith(".") for part in path.relative_to(root).parts[:-1])
    )


def anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _FENCE.sub("", text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def broken_links(root: Path) -> tuple[int, list[str]]:
    """How many relative links the Markdown files hold, and the ones that do not
    resolve to a file (or to a heading of it, when they name one)."""
    checked, broken = 0, []
    for path in markdown_files(root):
        text = path.read_text()
        prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
        for target in _INLINE_LINK.findall(prose) + _REFERENCE.findall(prose):
            if _SCHEME.match(target):
                continue
            checked += 1
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}: {target}"
            if not linked.exists():
                broken.append(where)
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
                broken.append(f"{where} (no such heading)")
    return checked, broken


def test_every_relative_link_in_the_markdown_resolves() -> None:
    checked, broken = broken_links(ROOT)

    assert {"README.md", "docs/api.md", "docs/design.md"} <= {
        str(p.relative_to(ROOT)) for p in markdown_files(ROOT)
    }
    assert checked > 10
    assert broken == []


def test_link_check_finds_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A title\n\n## Second `part`\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md) [ok](docs/a.md#second-part) [web](https://example.com/x)\n"
        "[gone](docs/b.md) [bad](docs/a.md#nowhere) `[code](not/checked.md)`\n"
        "[self](#readme) [ref]\n\n[ref]: ../outside.md\n"
    )
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.md").write_text("[skipped](missing.md)\n")

    checked, broken = broken_links(tmp_path)

    assert checked == 6
    assert broken == [
        "README.md: docs/b.md",
        "README.md: docs/a.md#nowhere (no such heading)",
        "README.md: #readme (no such heading)",
        "README.md: ../outside.md",
    ]
