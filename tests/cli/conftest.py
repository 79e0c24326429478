"""Fixtures for the CLI's tests: a clean environment (no FUNDROUTER_* variables, a
working directory without .fundrouter/local.env) so no test picks up a developer's
stack by accident; a fake API over HTTP; and, for the integration tests, a local
stack of the CLI's own.

The CLI's integration tests use the session's `local_stack` (tests/conftest.py),
after the integration tests (pyproject's testpaths order): `demo` writes fixed line
ids, which must not be there before the README tour runs.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.fake_api import FakeApi, serving
from tests.support.stack import LocalStack


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("FUNDROUTER_") or name == "COLUMNS":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with serving(FakeApi()) as api:
        yield api


@pytest.fixture(scope="package")
def cli_stack(local_stack: LocalStack) -> LocalStack:
    return local_stack
