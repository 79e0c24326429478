"""A cold start imports only what the function calls: each handler module, loaded in a
fresh interpreter with the Lambda-like environment of `make bench` (tracing active),
patches botocore for X-Ray and nothing else. patch_all imported requests and sqlite3
to patch them; Powertools' batch utility imports its parser models (about 45 ms) when
pydantic is loaded before it, and every event source's data classes; wrapt 2 imported
asyncio with the X-Ray SDK (decision 33)."""

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.template import ROOT

UNUSED = (
    "requests",
    "sqlite3",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.batch",
)
# Only the API's resolver loads asyncio (Powertools' event handler imports AppSync's).
ASYNCIO_USERS = {"api_handler"}

CHILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print("\\n".join(sys.modules))
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.syspath_prepend(str(ROOT / "bench"))
        import run  # noqa: PLC0415

    return run


@pytest.mark.parametrize(
    "path", sorted((ROOT / "functions").glob("*/*_handler.py")), ids=lambda p: p.stem
)
def test_a_handler_imports_no_library_it_does_not_call(bench: ModuleType, path: Path) -> None:
    subject = bench.Subject(path.stem, "path", str(path), path.parent)
    loaded = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=path.parent,
        env=bench.lambda_env(subject),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    assert "aws_xray_sdk.ext.botocore.patch" in loaded  # tracing is on: botocore patched
    assert [m for m in loaded if m.startswith(UNUSED)] == []
    assert ("asyncio" in loaded) == (path.stem in ASYNCIO_USERS)
