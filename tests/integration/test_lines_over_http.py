"""Lending-line administration over real HTTP on the local stack: an admin token
creates, updates, pauses and reads lines; a tenant token is refused."""

import uuid
from functools import partial

import pytest

from tests.support.factories import API_EXAMPLE, line_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration


# Not "installment": the README tour's line must be the only one for that.
line_config = partial(line_body, API_EXAMPLE, products=["admin-tests"])


@pytest.fixture(scope="module")
def admin(local_stack: LocalStack) -> str:
    return local_stack.token("ADMIN", "fundrouter/lines.admin")


def test_admin_creates_updates_pauses_and_reads_a_line(local_stack: LocalStack, admin: str) -> None:
    path = f"/v1/lines/bank-a-{uuid.uuid4().hex[:8]}"

    created = local_stack.call("PUT", path, admin, line_config())
    replaced = local_stack.call("PUT", path, admin, line_config(aprBps=1190))
    paused = local_stack.call("PATCH", path, admin, {"status": "PAUSED"})
    read = local_stack.call("GET", path, admin)
    listed = local_stack.call("GET", "/v1/lines", admin)

    assert created.status == 201
    assert replaced.status == 200
    assert replaced.body["aprBps"] == 1190
    assert paused.status == 200
    assert read.status == 200
    assert read.body["status"] == "PAUSED"
    assert read.body["aprBps"] == 1190
    assert {k: read.body[k] for k in ("limit", "reserved", "drawn", "available", "usedToday")} == {
        "limit": 500000000,
        "reserved": 0,
        "drawn": 0,
        "available": 500000000,
        "usedToday": 0,
    }
    assert path.rsplit("/", 1)[1] in {line["lineId"] for line in listed.body["items"]}


def test_invalid_configuration_is_422_naming_the_field(local_stack: LocalStack, admin: str) -> None:
    path = f"/v1/lines/bad-{uuid.uuid4().hex[:8]}"

    answer = local_stack.call("PUT", path, admin, line_config(minAmount=9000000))

    assert answer.status == 422
    assert [f["field"] for f in answer.body["error"]["fields"]] == ["maxAmount"]
    assert local_stack.call("GET", path, admin).status == 404


def test_tenant_tokens_cannot_administer_lines(local_stack: LocalStack) -> None:
    tenant = local_stack.token("TENANT", "fundrouter/orders.write fundrouter/orders.read")

    assert local_stack.call("GET", "/v1/lines", tenant).status == 403
    assert local_stack.call("PUT", "/v1/lines/sneaky", tenant, line_config()).status == 403


def test_routing_policy_is_set_and_read_by_an_admin(local_stack: LocalStack, admin: str) -> None:
    line_id = f"trust-{uuid.uuid4().hex[:8]}"
    local_stack.call("PUT", f"/v1/lines/{line_id}", admin, line_config())
    # Another tenant than the demo one: its policy would steer every other test's orders.
    path = f"/v1/tenants/tenant-{uuid.uuid4().hex[:8]}/routing"

    stored = local_stack.call("PUT", path, admin, {"strategy": "BEST_FIT", "lineIds": [line_id]})
    read = local_stack.call("GET", path, admin)

    assert stored.status == 200
    assert read.body == stored.body
    assert read.body["strategy"] == "BEST_FIT"
