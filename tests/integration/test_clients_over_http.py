"""Clients of the API on the local stack: one generated from openapi.json alone by
openapi-python-client (what a business system on another stack would do: if the
document's paths, bodies, security or response schemas were wrong, the generated code
would fail to build, to send or to parse), and the typed fundrouter-client, each
reading the order the other wrote."""

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fundrouter_client import Client, OrderRequest, OrderStatus

from tests.support.factories import order_body
from tests.support.stack import LocalStack
from tests.support.template import ROOT

pytestmark = pytest.mark.integration

WRITE_READ = "fundrouter/orders.write fundrouter/orders.read"
PACKAGE = "fundrouter_generated"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """The client openapi-python-client generates from openapi.json, imported."""
    out = tmp_path_factory.mktemp("generated")
    config = out / "config.yaml"
    config.write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    command = [GENERATOR, "generate", "--path", ROOT / "openapi.json", "--meta", "none"]
    command += ["--output-path", out / PACKAGE, "--config", config]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        names = {
            "client": "",
            "models": ".models",
            "submit": ".api.default.submit_order_v1_orders_post",
            "get": ".api.default.get_order_v_1_orders_order_id_get",
        }
        yield {key: importlib.import_module(PACKAGE + name) for key, name in names.items()}
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def typed_client(stack: LocalStack) -> Client:
    return stack.typed_client("TENANT", WRITE_READ)


def test_a_client_generated_from_openapi_json_creates_and_reads_an_order(
    local_stack: LocalStack, generated: dict[str, ModuleType]
) -> None:
    models, submit, get = generated["models"], generated["submit"], generated["get"]
    client = generated["client"].AuthenticatedClient(
        base_url=local_stack.api_url,
        token=local_stack.token("TENANT", WRITE_READ),
        httpx_args={"trust_env": False},  # the stack is on 127.0.0.1: no proxy
    )
    body = order_body(orderId=f"generated-{uuid.uuid4().hex[:12]}")

    created = submit.sync_detailed(client=client, body=models.OrderRequest.from_dict(body))
    read = get.sync_detailed(body["orderId"], client=client)

    assert created.status_code == 202, created.content
    assert isinstance(created.parsed, models.OrderResource)
    assert read.status_code == 200, read.content
    assert isinstance(read.parsed, models.OrderResource)  # parsed by the document's schema
    assert (read.parsed.order_id, read.parsed.amount) == (body["orderId"], body["amount"])
    assert read.parsed.created_at == created.parsed.created_at
    assert isinstance(read.parsed.status, models.OrderStatus)
    typed = typed_client(local_stack).get_order(body["orderId"])
    assert (typed.order_id, typed.created_at) == (body["orderId"], created.parsed.created_at)


def test_the_typed_client_submits_an_order_the_generated_client_reads(
    local_stack: LocalStack, generated: dict[str, ModuleType]
) -> None:
    typed = typed_client(local_stack)
    body = order_body(orderId=f"typed-{uuid.uuid4().hex[:12]}")

    written = typed.submit_order(OrderRequest.model_validate(body))
    again = typed.submit_order(OrderRequest.model_validate(body))

    assert written.created is True
    assert written.resource.status is OrderStatus.RECEIVED
    assert again.created is False  # the same order again: answered as it stands
    client = generated["client"].AuthenticatedClient(
        base_url=local_stack.api_url, token=typed.token(), httpx_args={"trust_env": False}
    )
    read = generated["get"].sync_detailed(body["orderId"], client=client)
    assert read.status_code == 200, read.content
    assert read.parsed.tenant_id == written.resource.tenant_id == local_stack.client_id
