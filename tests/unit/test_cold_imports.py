"""A cold start imports only what the function calls: each handler module, loaded in a
fresh interpreter with Lambda's environment as `make bench` times it (tracing active),
patches botocore for X-Ray and nothing else. patch_all imported requests and sqlite3
to patch them; Powertools' batch utility imports its parser models (about 45 ms) when
pydantic is loaded before it, and every event source's data classes; wrapt 2 imported
asyncio with the X-Ray SDK (decision 33)."""

from pathlib import Path

import pytest

from tests.support.handlers import import_fresh
from tests.support.template import ROOT

UNUSED = (
    "requests",
    "sqlite3",
    "aws_lambda_powertools.utilities.parser",
    "aws_lambda_powertools.utilities.batch",
)
# Only the API's resolver loads asyncio (Powertools' event handler imports AppSync's).
ASYNCIO_USERS = {"api_handler"}


@pytest.mark.parametrize(
    "path", sorted((ROOT / "functions").glob("*/*_handler.py")), ids=lambda p: p.stem
)
def test_a_handler_imports_no_library_it_does_not_call(path: Path) -> None:
    loaded = import_fresh(str(path), path).modules

    assert "aws_xray_sdk.ext.botocore.patch" in loaded  # tracing is on: botocore patched
    assert [m for m in loaded if m.startswith(UNUSED)] == []
    assert ("asyncio" in loaded) == (path.stem in ASYNCIO_USERS)
