from collections.abc import Iterator

import pytest

from tests.cli.fake_api import FakeApi, serving


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    """The CLI's fake API over HTTP on 127.0.0.1."""
    with serving(FakeApi()) as api:
        yield api
