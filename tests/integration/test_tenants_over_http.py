"""Self-service tenants over real HTTP on the shared local stack (decision 30): an
admin onboards a tenant, which gets a token and submits an order, rotates its secret,
is suspended and resumed, and meets its quota; the template is never touched. The
admin's calls of the first go through the typed fundrouter-client, so its tenant
models read what the stack answers."""

import time
import uuid

import pytest
from fundrouter_client import Client, TenantRequest, TenantStatus

from tests.support.factories import order_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

WRITE_READ = "fundrouter/orders.write fundrouter/orders.read"


def submit(stack: LocalStack, token: str) -> int:
    order = order_body(orderId=f"t-{uuid.uuid4().hex[:12]}")
    return stack.call("POST", "/v1/orders", token, order).status


@pytest.fixture(scope="module")
def admin(local_stack: LocalStack) -> str:
    return local_stack.token("ADMIN", "fundrouter/lines.admin")


@pytest.fixture(scope="module")
def admin_client(local_stack: LocalStack) -> Client:
    return local_stack.typed_client("ADMIN", "fundrouter/lines.admin")


def test_a_tenant_onboarded_over_http_rotates_is_suspended_at_once_and_resumed(
    local_stack: LocalStack, admin_client: Client
) -> None:
    created = admin_client.create_tenant(TenantRequest(name="Shop over HTTP"))
    tenant, secret = created.client_id, created.client_secret
    assert created.tenant.tenant_id == tenant
    token = local_stack.token_of(tenant, secret, WRITE_READ)
    order = order_body(orderId=f"t-{uuid.uuid4().hex[:12]}")
    submitted = local_stack.call("POST", "/v1/orders", token, order)
    assert (submitted.status, submitted.body["tenantId"]) == (202, tenant)

    rotated = admin_client.rotate_tenant_secret(tenant, grace_seconds=600)
    assert [c.client_id for c in rotated.tenant.clients] == [tenant, rotated.client_id]
    new_token = local_stack.token_of(rotated.client_id, rotated.client_secret, WRITE_READ)
    old_token = local_stack.token_of(tenant, secret, WRITE_READ)  # the old secret, in its grace
    read = local_stack.call("GET", f"/v1/orders/{order['orderId']}", new_token)
    assert (read.status, read.body["tenantId"]) == (200, tenant)  # the same tenant's order
    assert submit(local_stack, old_token) == 202

    assert admin_client.suspend_tenant(tenant).status is TenantStatus.SUSPENDED
    refused = local_stack.call("POST", "/v1/orders", new_token, order_body(orderId="t-refused"))
    assert (refused.status, refused.body["error"]["code"]) == (403, "tenant_suspended")
    assert local_stack.call("GET", f"/v1/orders/{order['orderId']}", token).status == 403

    assert admin_client.resume_tenant(tenant).status is TenantStatus.ACTIVE
    assert submit(local_stack, new_token) == 202
    assert tenant in {t.tenant_id for t in admin_client.iter_tenants()}
    assert admin_client.get_tenant(tenant).version == rotated.tenant.version + 2


def test_a_quota_of_n_a_minute_refuses_the_next_order_with_retry_after(
    local_stack: LocalStack, admin: str
) -> None:
    body = {"name": "Quota shop", "ordersPerMinute": 3}
    created = local_stack.call("POST", "/v1/tenants", admin, body)
    client_id, secret = created.body["clientId"], created.body["clientSecret"]
    token = local_stack.token_of(client_id, secret, WRITE_READ)

    minute = int(time.time()) // 60
    statuses = [submit(local_stack, token) for _ in range(3)]
    refused = local_stack.call("POST", "/v1/orders", token, order_body(orderId="t-over"))
    if int(time.time()) // 60 != minute:  # the fourth may be the next minute's first
        pytest.skip("a minute turned during the burst; the quota's minute is not this test's")

    assert statuses == [202, 202, 202]
    assert (refused.status, refused.body["error"]["code"]) == (429, "quota_exceeded")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
