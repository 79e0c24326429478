"""Fixtures for the CLI's tests: a clean environment (no FUNDROUTER_* variables, a
working directory without .fundrouter/local.env) so no test picks up a developer's
stack by accident; a fake API over HTTP; and, for the integration tests, a local
stack of the CLI's own.

The CLI's stack is started with the integration tests' `running_stack` (the same
script as `make up`) on its own port and state directory, rather than sharing the
session's `local_stack` on 4577: a test run here must not stop another engineer's
run on 4577 (the fixture begins with `down`), and its lines and orders stay out of
the other tests' way. It lives for this package's tests only.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.fake_api import FakeApi, serving
from tests.integration.conftest import LocalStack, running_stack

CLI_TEST_PORT = os.environ.get("FUNDROUTER_CLI_TEST_PORT", "4579")
CLI_STATE_DIR = ".fundrouter/cli-test-stack"


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
def cli_stack() -> Iterator[LocalStack]:
    yield from running_stack(CLI_TEST_PORT, CLI_STATE_DIR)
