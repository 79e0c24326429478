"""Shared fixtures. Nothing here reaches a network: AWS is moto in-process, and the
integration tests start their own local stack (tests/support/stack.py)."""

import functools
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from tests.support.aws import FakeLambdaContext
from tests.support.stack import PORT, STATE_DIR, LocalStack, running_stack
from tests.support.template import create_table_kwargs


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region for every test, so no test can touch a real
    account; in-process moto streams need the account-id endpoint mode off."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-east-1")
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "fundrouter")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "fundrouter")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fuzzer writes random lines, orders and routing policies to the shared local
    stack: it runs after every other test, so none of them sees what it wrote."""
    items.sort(key=lambda item: item.get_closest_marker("fuzz") is not None)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """One local stack for the whole session, shared by the integration and CLI
    tests (one pytest process runs them all): a stack costs ~20 s to start."""
    yield from running_stack(PORT, STATE_DIR)


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@functools.cache
def _botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


@pytest.fixture
def aws() -> Iterator[None]:
    """moto's mock gives boto3 a new default session, which loads botocore's service
    models again (about 90 ms a test): every mock shares one botocore session instead,
    its models loaded once. Its hooks are botocore's and moto's only: tests hook
    their own clients, which are new in every test."""
    with mock_aws():
        boto3.setup_default_session(botocore_session=_botocore_session())
        yield


@pytest.fixture
def orders_table(aws: None) -> str:
    """The Orders table exactly as template.yaml defines it, on moto."""
    name = "fundrouter-test-orders"
    boto3.client("dynamodb").create_table(**create_table_kwargs("OrdersTable", name))
    return name


@pytest.fixture
def tenants_table(aws: None) -> str:
    """The Tenants table as template.yaml defines it, on moto (decision 30)."""
    name = "fundrouter-test-tenants"
    boto3.client("dynamodb").create_table(**create_table_kwargs("TenantsTable", name))
    return name


@pytest.fixture
def dynamodb(aws: None) -> Any:
    return boto3.client("dynamodb")
