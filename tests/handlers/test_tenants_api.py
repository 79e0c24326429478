"""Self-service tenants (decision 30) through the ApiFunction's app, on moto's Cognito
and DynamoDB: the admin routes, the gate every tenant's request passes (suspension,
rotation with its grace, the order quota) and the tokens the function verifies."""

import base64
import json
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fundrouter.http.tokens import TokenVerifier
from fundrouter.persistence.orders import DynamoOrderRepository
from fundrouter.persistence.tenants import CognitoClients, DynamoTenantStore
from fundrouter.service.orders import OrderService
from fundrouter.service.tenants import TenantGate, TenantService

from tests.support.api import serve
from tests.support.aws import put_all, scan_all
from tests.support.events import load_event
from tests.support.fakes import Clock
from tests.support.requests import Requests

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test"


class Stack:
    """The tenant services over one moto pool and tables, on a clock the test moves."""

    def __init__(self, orders_table: str, tenants_table: str) -> None:
        self.cognito = boto3.client("cognito-idp", region_name="us-east-1")
        self.pool = self.cognito.create_user_pool(PoolName="p")["UserPool"]["Id"]
        self.cognito.create_resource_server(
            UserPoolId=self.pool,
            Identifier="fundrouter",
            Name="fundrouter",
            Scopes=[
                {"ScopeName": n, "ScopeDescription": n}
                for n in ("orders.write", "orders.read", "lines.admin")
            ],
        )
        self.clock = Clock()
        self.dynamodb = boto3.client("dynamodb")
        self.tenants_table = tenants_table
        self.orders_table = orders_table
        store = DynamoTenantStore(self.dynamodb, tenants_table)
        self.services: dict[str, Any] = {
            "tenants": TenantService(store, CognitoClients(self.cognito, self.pool), self.clock),
            "gate": TenantGate(store, self.clock),
            "orders": OrderService(DynamoOrderRepository(self.dynamodb, orders_table), self.clock),
        }

    def call(self, name: str, body: Any = None, **changes: Any) -> tuple[int, Any, dict[str, str]]:
        event = load_event(f"api/{name}.json")
        if body is not None:
            event["body"] = json.dumps(body)
        path = event["rawPath"]
        if "tenant" in changes:  # the admin's routes name a tenant in the path
            tenant = changes.pop("tenant")
            event["pathParameters"] = {"tenantId": tenant}
            path = event["rawPath"] = path.replace("demotenantclient0000000001", tenant)
            event["requestContext"]["http"]["path"] = path
        claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
        claims.update(changes)
        answer = serve(event, **self.services)
        return answer["statusCode"], json.loads(answer["body"]), answer["headers"]

    def create(self, **body: Any) -> dict[str, Any]:
        status, created, _ = self.call("create_tenant", {"name": "Shop A"} | body)
        assert status == 201, created
        return dict(created)

    def order(self, client_id: str, order_id: str = "o-1") -> tuple[int, Any, dict[str, str]]:
        body = json.loads(load_event("api/submit_order.json")["body"]) | {"orderId": order_id}
        return self.call("submit_order", body, client_id=client_id)

    def clients(self) -> set[str]:
        listed = self.cognito.list_user_pool_clients(UserPoolId=self.pool, MaxResults=60)
        return {c["ClientId"] for c in listed["UserPoolClients"]}

    def stored(self, table: str) -> list[dict[str, Any]]:
        return scan_all(self.dynamodb, table)


@pytest.fixture
def stack(orders_table: str, tenants_table: str) -> Stack:
    return Stack(orders_table, tenants_table)


def test_a_new_tenant_is_a_client_credentials_client_whose_secret_is_shown_once(
    stack: Stack,
) -> None:
    created = stack.create(ordersPerMinute=600)
    tenant_id = created["tenant"]["tenantId"]

    described = stack.cognito.describe_user_pool_client(UserPoolId=stack.pool, ClientId=tenant_id)
    client = described["UserPoolClient"]
    assert created["clientId"] == tenant_id
    assert created["clientSecret"] == client["ClientSecret"]
    assert client["AllowedOAuthFlows"] == ["client_credentials"]
    assert sorted(client["AllowedOAuthScopes"]) == [
        "fundrouter/orders.read",
        "fundrouter/orders.write",
    ]
    status, read, _ = stack.call("get_tenant", tenant=tenant_id)
    assert status == 200
    assert read == created["tenant"]
    assert "clientSecret" not in json.dumps(read)
    assert read["status"] == "ACTIVE"
    assert read["ordersPerMinute"] == 600


BAD_TENANTS = [
    ({"name": ""}, "name"),
    ({"name": "Shop A", "scopes": ["fundrouter/lines.admin"]}, "scopes.0"),
    ({"name": "Shop A", "ordersPerMinute": 0}, "ordersPerMinute"),
    ({"name": "Shop A", "ordersPerMinute": "10"}, "ordersPerMinute"),
    ({"name": "Shop A", "colour": "red"}, "colour"),
]


def test_a_bad_tenant_is_refused_creating_no_client_and_no_record(stack: Stack) -> None:
    # One moto world for every case: each costs a second or two to set up.
    for body, field in BAD_TENANTS:
        status, error, _ = stack.call("create_tenant", body)

        assert status == 422, body
        assert field in [f["field"] for f in error["error"]["fields"]], body
    assert stack.clients() == set()
    assert stack.stored(stack.tenants_table) == []


def test_a_patch_naming_no_name_is_refused_and_the_tenant_stays_readable(stack: Stack) -> None:
    """Found by the fuzzer: a null name was stored, and every later read failed (500)."""
    tenant = stack.create()["tenant"]

    status, error, _ = stack.call(
        "patch_tenant", {"name": None, "ordersPerMinute": 5}, tenant=tenant["tenantId"]
    )

    assert (status, [f["field"] for f in error["error"]["fields"]]) == (422, ["name"])
    assert stack.call("get_tenant", tenant=tenant["tenantId"])[1] == tenant


def test_an_unknown_tenant_is_404_and_a_forged_cursor_422(stack: Stack) -> None:
    assert stack.call("get_tenant", tenant="nobody")[0] == 404
    assert stack.call("suspend_tenant", tenant="nobody")[0] == 404
    assert stack.call("patch_tenant", {"name": "x"}, tenant="nobody")[0] == 404
    event = load_event("api/list_tenants.json")
    event["queryStringParameters"] = {"cursor": "bm90LWEtY3Vyc29y!"}
    assert serve(event, **stack.services)["statusCode"] == 422


def test_tenants_are_listed_page_by_page_each_once(stack: Stack) -> None:
    ids = {stack.create(name=f"Shop {n}")["tenant"]["tenantId"] for n in range(3)}
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        event = load_event("api/list_tenants.json")
        event["queryStringParameters"] = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = json.loads(serve(event, **stack.services)["body"])
        seen += [t["tenantId"] for t in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(ids)


def test_a_suspended_tenant_is_refused_at_once_with_the_same_token_and_resumed(
    stack: Stack,
) -> None:
    tenant = stack.create()["tenant"]["tenantId"]
    assert stack.order(tenant, "o-1")[0] == 202

    assert stack.call("suspend_tenant", tenant=tenant)[1]["status"] == "SUSPENDED"
    status, error, _ = stack.order(tenant, "o-2")
    assert (status, error["error"]["code"]) == (403, "tenant_suspended")
    read = stack.call("get_order", client_id=tenant)
    assert read[0] == 403
    assert len(stack.stored(stack.orders_table)) == 1

    assert stack.call("resume_tenant", tenant=tenant)[1]["status"] == "ACTIVE"
    assert stack.order(tenant, "o-2")[0] == 202


def test_a_rotated_tenant_keeps_its_orders_and_its_old_client_for_the_grace_only(
    stack: Stack,
) -> None:
    tenant = stack.create()["tenant"]["tenantId"]
    status, rotated, _ = stack.call("rotate_tenant_secret", {"graceSeconds": 600}, tenant=tenant)
    new = rotated["clientId"]

    assert status == 201
    assert new != tenant
    assert [c["clientId"] for c in rotated["tenant"]["clients"]] == [tenant, new]
    status, order, _ = stack.order(new, "o-1")
    assert (status, order["tenantId"]) == (202, tenant)  # the new client acts as the tenant
    assert stack.order(tenant, "o-2")[0] == 202  # the old one, within its grace
    stack.clock.advance(601)
    status, error, _ = stack.order(tenant, "o-3")
    assert (status, error["error"]["code"]) == (403, "client_retired")
    assert stack.clients() == {tenant, new}
    assert [c["clientId"] for c in stack.call("get_tenant", tenant=tenant)[1]["clients"]] == [new]
    assert stack.clients() == {new}  # deleted from the pool once its grace ended
    assert len(stack.stored(stack.orders_table)) == 2


def test_the_quota_refuses_the_order_past_it_with_retry_after_until_the_next_minute(
    stack: Stack,
) -> None:
    tenant = stack.create(ordersPerMinute=2)["tenant"]["tenantId"]
    stack.clock.now = stack.clock.now.replace(second=15)
    assert [stack.order(tenant, f"o-{n}")[0] for n in range(2)] == [202, 202]

    status, error, headers = stack.order(tenant, "o-2")

    assert (status, error["error"]["code"]) == (429, "quota_exceeded")
    assert headers["Retry-After"] == "45"
    assert len(stack.stored(stack.orders_table)) == 2
    stack.clock.advance(45)
    assert stack.order(tenant, "o-2")[0] == 202
    assert stack.call("patch_tenant", {"ordersPerMinute": None}, tenant=tenant)[0] == 200
    assert [stack.order(tenant, f"o-{n}")[0] for n in range(3, 7)] == [202] * 4


def test_an_order_costs_a_tenant_the_same_requests_among_300_tenants_as_among_3(
    stack: Stack,
) -> None:
    """The gate and the quota read and write the caller's own items only: growing the
    number of tenants 100-fold changes no request an order makes (no scan, no query)."""
    tenant = stack.create(ordersPerMinute=1_000)["tenant"]["tenantId"]
    stored = [i for i in stack.stored(stack.tenants_table) if i["pk"]["S"].startswith("T#")]

    def requests_of_an_order(order_id: str) -> Counter[str]:
        assert stack.order(tenant, f"{order_id}-warm")[0] == 202  # the client's alias read
        counted = Requests(stack.dynamodb)
        assert stack.order(tenant, order_id)[0] == 202
        return Counter(counted.names)

    def add_tenants(first: int, count: int) -> None:
        copies = [stored[0] | {"pk": {"S": f"T#other{n:04d}"}} for n in range(first, first + count)]
        put_all(stack.dynamodb, stack.tenants_table, copies)

    add_tenants(0, 2)
    among_3 = requests_of_an_order("o-small")
    add_tenants(2, 297)
    among_300 = requests_of_an_order("o-large")

    assert among_300 == among_3
    assert among_3 == Counter({"GetItem": 1, "UpdateItem": 1, "PutItem": 1})


# ------------------------------------------------------------------ tokens the function verifies

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NUMBERS = KEY.public_key().public_numbers()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims: dict[str, Any], kid: str = "k1") -> str:
    head = _b64(json.dumps({"alg": "RS256", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = KEY.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(signature)}"


def claims(**changes: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "token_use": "access",
        "client_id": "tenant-a",
        "scope": "fundrouter/orders.write fundrouter/orders.read",
        "exp": int(time.time()) + 600,
    } | changes


def verifier() -> TokenVerifier:
    return TokenVerifier(ISSUER, lambda: {"k1": (NUMBERS.n, NUMBERS.e)})


def unauthorized_event(bearer: str) -> dict[str, Any]:
    event = load_event("api/submit_order.json")
    del event["requestContext"]["authorizer"]  # a route the gateway leaves open
    event["headers"]["authorization"] = f"Bearer {bearer}"
    return event


def test_a_pool_token_is_verified_by_the_function_and_its_client_is_the_tenant(
    stack: Stack,
) -> None:
    answer = serve(unauthorized_event(token(claims())), **stack.services, verifier=verifier())

    assert answer["statusCode"] == 202
    assert json.loads(answer["body"])["tenantId"] == "tenant-a"


BAD_TOKENS = [
    token(claims(exp=int(time.time()) - 1)),
    token(claims(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other")),
    token(claims(token_use="id")),
    token(claims(), kid="unknown"),
    token(claims())[:-4] + "AAAA",
    token(claims()).rsplit(".", 2)[0]
    + "."
    + _b64(json.dumps(claims(client_id="x")).encode())
    + "."
    + token(claims()).rsplit(".", 1)[1],
    "not-a-token",
]


def test_an_expired_foreign_or_forged_token_is_401_and_writes_nothing(stack: Stack) -> None:
    for bad in BAD_TOKENS:
        answer = serve(unauthorized_event(bad), **stack.services, verifier=verifier())

        assert answer["statusCode"] == 401, bad
    assert stack.stored(stack.orders_table) == []


def test_keys_that_cannot_be_read_are_503_with_retry_after_and_read_again_later(
    stack: Stack,
) -> None:
    loads: list[int] = []

    def unreachable() -> dict[str, tuple[int, int]]:
        loads.append(1)
        raise OSError("connection refused")

    failing = TokenVerifier(ISSUER, unreachable)
    answer = serve(unauthorized_event(token(claims())), **stack.services, verifier=failing)

    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "1"
    assert stack.stored(stack.orders_table) == []
    serve(unauthorized_event(token(claims())), **stack.services, verifier=failing)
    assert len(loads) == 2  # a failed read is not remembered as "no keys"


def test_a_caller_is_authenticated_and_scoped_before_its_body_is_validated(stack: Stack) -> None:
    """The order routes are open at the gateway: an anonymous or unscoped caller must
    not learn what its body lacks (401 and 403 before 422)."""
    anonymous = unauthorized_event("")
    del anonymous["headers"]["authorization"]
    unscoped = unauthorized_event(token(claims(scope="fundrouter/orders.read")))
    for event in (anonymous, unscoped):
        event["body"] = "{}"

    answers = [
        serve(e, **stack.services, verifier=verifier())["statusCode"] for e in (anonymous, unscoped)
    ]

    assert answers == [401, 403]
