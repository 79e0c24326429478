"""How the HTTP client turns answers and failures into results and messages, with
a scripted transport (no network)."""

import base64
import json
from pathlib import Path

import pytest
from fundrouter_cli.client import ApiClient
from fundrouter_cli.config import Role, resolve
from fundrouter_cli.errors import (
    EXIT_AUTH,
    EXIT_UNREACHABLE,
    ApiError,
    AuthError,
    ConfigError,
    RouteMissing,
    Unreachable,
)
from fundrouter_cli.workload import events_route_available
from fundrouter_client.transport import Reply, TransportError

from tests.cli.fake_api import FakeApi
from tests.support.transport import Script, reply

ENV = {
    "FUNDROUTER_API_URL": "http://127.0.0.1:9/api",
    "FUNDROUTER_TOKEN_URL": "http://127.0.0.1:9/token",
    "FUNDROUTER_TENANT_CLIENT_ID": "tenant",
    "FUNDROUTER_TENANT_CLIENT_SECRET": "s3cret",
    "FUNDROUTER_ADMIN_CLIENT_ID": "admin",
    "FUNDROUTER_ADMIN_CLIENT_SECRET": "adm1n",
}
TOKEN = Reply(200, json.dumps({"access_token": "tok", "expires_in": 3600}).encode(), "")


def client(script: Script, tmp_path: Path, **env: str) -> ApiClient:
    settings = resolve({}, ENV | env, tmp_path)
    return ApiClient(settings, transport=script, sleep=lambda _: None)


def test_a_token_is_fetched_once_with_basic_auth_and_the_role_scope(tmp_path: Path) -> None:
    script = Script(TOKEN, reply(200, {"items": []}), reply(200, {"items": []}))
    api = client(script, tmp_path)

    api.list_lines()
    api.list_lines()

    method, url, data, headers = script.sent[0]
    assert (method, url) == ("POST", "http://127.0.0.1:9/token")
    assert headers["authorization"] == "Basic " + base64.b64encode(b"admin:adm1n").decode()
    assert data == b"grant_type=client_credentials&scope=fundrouter%2Flines.admin"
    assert [s[1] for s in script.sent[1:]] == ["http://127.0.0.1:9/api/v1/lines"] * 2
    assert script.sent[1][3]["authorization"] == "Bearer tok"


def test_ids_are_quoted_and_empty_query_values_dropped(tmp_path: Path) -> None:
    script = Script(TOKEN, reply(200, {"orderId": "a/b"}))

    client(script, tmp_path).get_order("a/b")

    assert script.sent[1][1] == "http://127.0.0.1:9/api/v1/orders/a%2Fb"


def test_refused_credentials_say_which_client_and_where_they_came_from(tmp_path: Path) -> None:
    script = Script(reply(400, {"error": "invalid_client", "error_description": "Invalid."}))

    with pytest.raises(AuthError) as raised:
        client(script, tmp_path).list_orders()

    assert raised.value.exit_code == EXIT_AUTH
    assert "refused the tenant client's credentials (invalid_client: Invalid.)" in str(raised.value)
    assert raised.value.hint is not None
    assert "FUNDROUTER_TENANT_CLIENT_SECRET (from environment)" in raised.value.hint


def test_a_client_without_the_scope_is_told_which_client_it_needs(tmp_path: Path) -> None:
    script = Script(reply(400, {"error": "invalid_grant"}))

    with pytest.raises(AuthError, match="refused the tenant client the scope"):
        client(script, tmp_path).list_orders()


def test_a_stack_that_is_not_running_is_unreachable_after_a_few_tries(tmp_path: Path) -> None:
    refused = TransportError("connection refused", retryable=True)
    script = Script(*[refused] * 5)

    with pytest.raises(Unreachable) as raised:
        client(script, tmp_path).list_lines()

    assert raised.value.exit_code == EXIT_UNREACHABLE
    assert str(raised.value) == "cannot reach the token endpoint at 127.0.0.1:9: connection refused"
    assert raised.value.hint is not None
    assert "make up" in raised.value.hint
    assert len(script.sent) == 5


def test_a_timeout_is_not_retried(tmp_path: Path) -> None:
    script = Script(TOKEN, TransportError("no answer within 30 s", retryable=False))

    with pytest.raises(Unreachable, match=r"cannot reach the API at 127\.0\.0\.1:9: no answer"):
        client(script, tmp_path).list_lines()


def test_throttling_and_busy_orders_are_retried(tmp_path: Path) -> None:
    busy = {"error": {"code": "order_busy", "message": "retry", "fields": []}}
    script = Script(
        TOKEN,
        reply(429, {"message": "Too Many Requests"}),
        reply(409, busy),
        reply(200, {"orderId": "o", "status": "APPROVED"}),
    )
    api = client(script, tmp_path)

    assert api.post_event("o", {"eventId": "e", "type": "APPROVED"})["status"] == "APPROVED"
    assert api.stats["retries"] == 2


def test_a_503_is_retried_after_the_time_the_server_asks_for(tmp_path: Path) -> None:
    unavailable = {"error": {"code": "service_unavailable", "message": "retry", "fields": []}}
    script = Script(
        TOKEN,
        Reply(503, json.dumps(unavailable).encode(), "application/json", "3"),
        Reply(503, json.dumps(unavailable).encode(), "application/json", "60"),
        reply(200, {"items": []}),
    )
    slept: list[float] = []
    settings = resolve({}, ENV, tmp_path)

    ApiClient(settings, transport=script, sleep=slept.append).list_lines()

    assert slept == [3.0, 10.0]  # as asked, at most 10 s


def test_a_rejected_token_is_renewed_once(tmp_path: Path) -> None:
    unauthorized = reply(401, {"message": "Unauthorized"})
    script = Script(TOKEN, unauthorized, TOKEN, reply(200, {"items": []}))

    assert client(script, tmp_path).list_lines() == []

    script = Script(TOKEN, unauthorized, TOKEN, unauthorized)
    with pytest.raises(AuthError, match="refused the admin client's token"):
        client(script, tmp_path).list_lines()


def test_a_missing_scope_names_the_client_that_has_it(tmp_path: Path) -> None:
    script = Script(TOKEN, reply(403, {"message": "Forbidden"}))

    with pytest.raises(AuthError) as raised:
        client(script, tmp_path).call(Role.TENANT, "GET", "/v1/lines")

    assert "the tenant client may not GET /v1/lines (403: Forbidden)" in str(raised.value)
    assert raised.value.hint is not None
    assert "admin client" in raised.value.hint


def test_api_errors_keep_code_message_and_fields(tmp_path: Path) -> None:
    error = {
        "code": "validation_failed",
        "message": "request failed validation",
        "fields": [{"field": "amount", "reason": "Input should be greater than 0"}],
    }
    script = Script(TOKEN, reply(422, {"error": error}))

    with pytest.raises(ApiError) as raised:
        client(script, tmp_path).submit_order({"amount": -1})

    assert str(raised.value) == "422 validation_failed: request failed validation"
    assert [(f.field, f.reason) for f in raised.value.fields] == [
        ("amount", "Input should be greater than 0")
    ]


def test_a_gateway_404_means_no_such_api_or_route(tmp_path: Path) -> None:
    script = Script(TOKEN, reply(404, {"message": "Not Found"}))

    with pytest.raises(RouteMissing) as raised:
        client(script, tmp_path).list_lines()

    assert (
        str(raised.value) == "no route for GET /v1/lines at http://127.0.0.1:9/api (404 Not Found)"
    )


def test_an_answer_that_is_not_json_is_reported(tmp_path: Path) -> None:
    script = Script(TOKEN, Reply(200, b"<html>hello</html>", "text/html"))

    with pytest.raises(ApiError, match="answered text/html, not JSON"):
        client(script, tmp_path).list_lines()


def test_created_and_replaced_are_told_apart(tmp_path: Path) -> None:
    script = Script(TOKEN, reply(201, {"lineId": "l"}), reply(200, {"lineId": "l"}))
    api = client(script, tmp_path)

    assert api.put_line("l", {})[1] is True
    assert api.put_line("l", {})[1] is False


def test_settings_problems_surface_on_first_use(tmp_path: Path) -> None:
    api = ApiClient(resolve({}, {}, tmp_path), transport=Script(), sleep=lambda _: None)

    with pytest.raises(ConfigError, match="no --api-url"):
        api.list_lines()


def test_the_events_route_is_probed_with_an_order_that_does_not_exist(tmp_path: Path) -> None:
    missing = {"error": {"code": "order_not_found", "message": "order x not found", "fields": []}}
    served = Script(TOKEN, reply(404, missing))
    older_stack = Script(TOKEN, reply(404, {"message": "Not Found"}))

    assert events_route_available(client(served, tmp_path)) is True
    assert events_route_available(client(older_stack, tmp_path)) is False
    method, url, data, _ = served.sent[1]
    assert method == "POST"
    assert url.startswith("http://127.0.0.1:9/api/v1/orders/fundrouter-cli-probe-")
    assert json.loads(data or b"{}")["type"] == "APPROVED"


def test_requests_share_one_kept_alive_connection(fake_api: FakeApi, tmp_path: Path) -> None:
    api = ApiClient(resolve({}, fake_api.env(), tmp_path))

    api.list_lines()
    api.get_order("o-1")
    api.list_orders()

    assert len(fake_api.requests) == 5  # two tokens (tenant, admin) and three calls
    assert len(fake_api.connections) == 1


def test_a_connection_the_server_closed_meanwhile_is_replaced(
    fake_api: FakeApi, tmp_path: Path
) -> None:
    api = ApiClient(resolve({}, fake_api.env(), tmp_path), retries=0)
    api.list_lines()
    fake_api.hang_up = True
    api.list_lines()

    assert api.get_order("o-1")["orderId"] == "o-1"  # retries=0: not the client's retry
    assert len(fake_api.connections) == 2
