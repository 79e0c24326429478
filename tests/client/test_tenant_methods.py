"""The typed client's tenant administration methods: what each sends and reads, with
a scripted transport."""

from urllib.parse import parse_qs, urlsplit

from fundrouter_client import TenantPatch, TenantRequest, TenantStatus

from tests.cli.fake_api import tenant
from tests.client.test_client import scripted
from tests.client.test_webhook_methods import sent
from tests.support.transport import Script, reply, token_reply

TENANT = "6f1l5mq0k2tenant"
NEW = "3c9d8e7f6a5bclient"


def test_tenants_are_created_read_changed_rotated_suspended_and_resumed_as_documented() -> None:
    clients = [
        {"clientId": TENANT, "createdAt": "2026-12-01T12:00:00.000Z"}
        | {"retiresAt": "2026-12-01T12:10:00.000Z"},
        {"clientId": NEW, "createdAt": "2026-12-01T12:00:00.000Z"},
    ]
    rotated = tenant(TENANT, clients=clients, version=3)
    busy = {"error": {"code": "tenant_changed", "message": "read it and retry", "fields": []}}
    script = Script(
        token_reply(),
        reply(201, {"tenant": tenant(TENANT), "clientId": TENANT, "clientSecret": "s-1"}),
        reply(200, tenant(TENANT)),
        reply(409, busy),  # another admin's change came first: sent again
        reply(200, tenant(TENANT, ordersPerMinute=None, version=2)),
        reply(201, {"tenant": rotated, "clientId": NEW, "clientSecret": "s-2"}),
        reply(201, {"tenant": rotated, "clientId": NEW, "clientSecret": "s-3"}),
        reply(200, tenant(TENANT, status="SUSPENDED")),
        reply(200, tenant(TENANT)),
    )
    client, _ = scripted(script)

    created = client.create_tenant(TenantRequest(name="Shop A", orders_per_minute=600))
    read = client.get_tenant(TENANT)
    unlimited = client.patch_tenant(TENANT, TenantPatch(orders_per_minute=None))
    rotation = client.rotate_tenant_secret(TENANT, grace_seconds=600)
    client.rotate_tenant_secret(TENANT)
    suspended = client.suspend_tenant(TENANT)
    resumed = client.resume_tenant(TENANT)

    assert (created.client_id, created.client_secret) == (TENANT, "s-1")
    assert "s-1" not in repr(created)  # a secret is not printed by accident
    assert read.scopes == ["fundrouter/orders.write", "fundrouter/orders.read"]
    assert (read.orders_per_minute, unlimited.orders_per_minute) == (600, None)
    assert rotation.client_id == NEW
    assert [(c.client_id, c.retires_at is None) for c in rotation.tenant.clients] == [
        (TENANT, False),
        (NEW, True),
    ]
    assert (suspended.status, resumed.status) == (TenantStatus.SUSPENDED, TenantStatus.ACTIVE)
    path = f"/v1/tenants/{TENANT}"
    assert sent(script) == [
        ("POST", "/v1/tenants", {"name": "Shop A", "ordersPerMinute": 600}),  # scopes: both
        ("GET", path, None),
        ("PATCH", path, {"ordersPerMinute": None}),  # null removes the quota
        ("PATCH", path, {"ordersPerMinute": None}),
        ("POST", f"{path}/secrets", {"graceSeconds": 600}),
        ("POST", f"{path}/secrets", {}),  # the server's default grace, an hour
        ("POST", f"{path}/suspend", None),
        ("POST", f"{path}/resume", None),
    ]


def test_iter_tenants_follows_every_cursor() -> None:
    pages = [
        reply(200, {"items": [tenant("t-1"), tenant("t-2")], "nextCursor": "c1"}),
        reply(200, {"items": [tenant("t-3")], "nextCursor": None}),
    ]
    script = Script(token_reply(), *pages)
    client, _ = scripted(script)

    assert [t.tenant_id for t in client.iter_tenants(page_size=2)] == ["t-1", "t-2", "t-3"]
    queries = [parse_qs(urlsplit(url).query) for _, url, _, _ in script.sent[1:]]
    assert queries == [{"limit": ["2"]}, {"limit": ["2"], "cursor": ["c1"]}]
