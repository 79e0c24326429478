"""The commands as a person runs them, through typer's CliRunner, against a fake API
over real HTTP: output, exit codes, and no stack trace for an expected failure."""

import json
from pathlib import Path
from typing import Any

import pytest
from fundrouter_cli import load
from fundrouter_cli.errors import EXIT_AUTH, EXIT_UNREACHABLE, EXIT_USAGE
from fundrouter_cli.main import app
from typer.testing import CliRunner, Result

from tests.cli.fake_api import FakeApi


def run(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env or {})


def expected_failure(result: Result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = run(runner, "--help")

    assert result.exit_code == 0
    for command in ("lines", "line", "order", "watch", "demo", "load", "config"):
        assert command in result.output


def test_without_any_settings_it_says_how_to_start_the_stack(runner: CliRunner) -> None:
    result = run(runner, "lines")

    expected_failure(result, EXIT_USAGE, "no --api-url (or FUNDROUTER_API_URL) configured")
    assert "make up" in result.output


def test_a_stack_that_is_not_running_is_a_clear_message(runner: CliRunner) -> None:
    env = {
        "FUNDROUTER_API_URL": "http://127.0.0.1:9/api",
        "FUNDROUTER_TOKEN_URL": "http://127.0.0.1:9/oauth2/token",
        "FUNDROUTER_ADMIN_CLIENT_ID": "a",
        "FUNDROUTER_ADMIN_CLIENT_SECRET": "b",
    }

    result = run(runner, "lines", env=env)

    expected_failure(result, EXIT_UNREACHABLE, "cannot reach the token endpoint at 127.0.0.1:9")
    assert "Is the stack running?" in result.output


def test_the_env_file_is_found_and_sources_are_shown(
    runner: CliRunner, fake_api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / ".fundrouter").mkdir()
    settings = fake_api.env()
    (tmp_path / ".fundrouter" / "local.env").write_text(
        "".join(f"{k}={v}\n" for k, v in settings.items())
    )

    result = run(runner, "config", "--check")

    assert result.exit_code == 0, result.output
    assert "local.env" in result.output
    assert "tenant-secret" not in result.output
    assert "set (13 characters)" in result.output
    assert "admin client: token issued, 1 lines listed" in result.output


def test_lines_shows_the_utilization_table(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "lines", env=fake_api.env())

    assert result.exit_code == 0, result.output
    assert "Lending lines (1)" in result.output
    assert "bank-a-consumer" in result.output
    assert "45.0%" in result.output


def test_lines_as_json(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "lines", "--json", env=fake_api.env())

    assert json.loads(result.stdout)[0]["lineId"] == "bank-a-consumer"


def test_flags_override_the_environment(runner: CliRunner, fake_api: FakeApi) -> None:
    env = fake_api.env(FUNDROUTER_API_URL="http://127.0.0.1:9/wrong")

    result = run(runner, "--api-url", f"{fake_api.url}/api", "lines", env=env)

    assert result.exit_code == 0, result.output


def test_bad_credentials_are_refused_clearly(runner: CliRunner, fake_api: FakeApi) -> None:
    env = fake_api.env(FUNDROUTER_ADMIN_CLIENT_SECRET="wrong")

    result = run(runner, "lines", env=env)

    expected_failure(result, EXIT_AUTH, "refused the admin client's credentials (invalid_client")


def test_order_show_renders_the_decision_and_history(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "order", "show", "o-1", env=fake_api.env())

    assert result.exit_code == 0, result.output
    assert "Order o-1  MATCHED" in result.output
    assert "amount above maxAmount 1000000" in result.output
    assert "History" in result.output


def test_an_unknown_order_is_the_apis_message(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "order", "show", "nope", env=fake_api.env())

    expected_failure(result, 1, "404 order_not_found: order not found")


def test_a_route_the_stack_lacks_is_explained(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "line", "show", "x", env=fake_api.env())

    expected_failure(result, EXIT_UNREACHABLE, "no route for GET /v1/lines/x at")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["order", "event", "o-1", "DISBURSED"], "DISBURSED needs an AMOUNT"),
        (["order", "event", "o-1", "approved", "5"], "APPROVED takes no AMOUNT"),
        (["order", "submit"], "--amount is required"),
        (["order", "submit", "--amount", "5", "--meta", "novalue"], "expected KEY=VALUE"),
        (["line", "put", "missing.json"], "missing.json: no such file"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    runner: CliRunner, fake_api: FakeApi, args: list[str], message: str
) -> None:
    result = run(runner, *args, env=fake_api.env())

    expected_failure(result, EXIT_USAGE, message)
    assert not [r for r in fake_api.requests if r[1] != "/oauth2/token" and r[0] != "GET"]


def test_an_event_names_the_line_the_order_is_on(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(
        runner, "order", "event", "o-1", "approved", "--event-id", "e-1", env=fake_api.env()
    )

    assert result.exit_code == 0, result.output
    assert fake_api.events == [
        ("o-1", {"eventId": "e-1", "type": "APPROVED", "lineId": "bank-a-consumer"})
    ]


def test_an_unknown_event_type_is_a_usage_error(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "order", "event", "o-1", "LOST", env=fake_api.env())

    assert result.exit_code == EXIT_USAGE
    assert "Traceback" not in result.output


def test_a_line_file_that_is_not_json_names_the_place(
    runner: CliRunner, fake_api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "line.json").write_text('{"lineId": "x",\n "limit": }')

    result = run(runner, "line", "put", "line.json", env=fake_api.env())

    expected_failure(result, EXIT_USAGE, "line.json is not valid JSON: Expecting value at line 2")


def test_a_line_file_without_an_id_asks_for_one(
    runner: CliRunner, fake_api: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "line.json").write_text('{"funderId": "f"}')

    result = run(runner, "line", "put", "line.json", env=fake_api.env())

    expected_failure(result, EXIT_USAGE, "entry 0 has no lineId")


def test_demo_and_load_do_not_write_to_a_remote_stack_unasked(runner: CliRunner) -> None:
    env = {"FUNDROUTER_API_URL": "https://fundrouter.example.com"}

    result = runner.invoke(app, ["load", "--orders", "1"], env=env, input="n\n")

    expected_failure(
        result, EXIT_USAGE, "not writing to fundrouter.example.com without confirmation"
    )


def test_watch_for_a_while(runner: CliRunner, fake_api: FakeApi) -> None:
    result = run(runner, "watch", "--for", "0.3", "--interval", "0.1", env=fake_api.env())

    assert result.exit_code == 0, result.output
    assert "watching the newest 100 orders (now 1)" in result.output
    assert "0 changes" in result.output


def test_version(runner: CliRunner) -> None:
    assert run(runner, "--version").output.startswith("fundrouter ")


def republish_reply(*order_ids: str, more: bool = False, **extra: Any) -> dict[str, Any]:
    republished = [
        {"tenantId": "t-1", "orderId": o, "status": "MATCHED", "version": 2} for o in order_ids
    ]
    return {
        "republished": republished,
        "missing": [],
        "failed": [],
        "letters": len(order_ids),
        "more": more,
    } | extra


def test_republish_calls_the_admin_route_until_the_queue_is_drained(
    runner: CliRunner, fake_api: FakeApi
) -> None:
    fake_api.republish_replies = [republish_reply("o-1", "o-2", more=True), republish_reply("o-3")]

    result = run(runner, "republish", "--limit", "2", env=fake_api.env())

    assert result.exit_code == 0, result.output
    calls = [r for r in fake_api.requests if r[1].endswith("/republish")]
    assert calls == [("POST", "/api/v1/admin/status-events/republish")] * 2
    assert [b for b in fake_api.bodies if b] == [{"limit": 2}, {"limit": 2}]
    assert "republished t-1/o-3 MATCHED (version 2)" in result.output
    assert "3 letters read, 0 left on the queue" in result.output


def test_republish_exits_1_when_the_bus_refused_some(runner: CliRunner, fake_api: FakeApi) -> None:
    refused = {"tenantId": "t-1", "orderId": "o-9", "reason": "ThrottlingException"}
    fake_api.republish_replies = [republish_reply("o-1", failed=[refused])]

    result = run(runner, "republish", env=fake_api.env())

    expected_failure(result, 1, "1 status events were not published")
    assert "not published: t-1/o-9 (ThrottlingException)" in result.output


def test_load_prints_its_figures_as_json(runner: CliRunner, fake_api: FakeApi) -> None:
    args = ("load", "--orders", "5", "--rate", "50", "--no-events", "--json")

    result = run(runner, *args, env=fake_api.env())

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # the report itself went to stderr
    assert (figures["orders"], figures["rate"], figures["refused"]) == (5, 50, 0)
    assert figures["phases"]["intake"]["count"] == 5
    assert figures["phases"]["match"] | {"seconds": 0} == {
        "count": 5,
        "seconds": 0,
        "perSecond": 125.0,
        "p50Ms": 40.0,
        "p95Ms": 40.0,
        "p99Ms": 40.0,
        "maxMs": 40.0,
    }
    assert figures["outcomes"] == {"UNMATCHED": 5}
    assert figures["phases"]["matched"] == {"count": 0, "seconds": 0.0, "perSecond": 0.0}
    assert figures["audit"] == {"ok": True, "violations": []}
    assert "audit: OK" in result.stderr


def test_load_sizes_its_lines_as_asked(runner: CliRunner, fake_api: FakeApi) -> None:
    args = ("load", "--orders", "200", "--capacity", "3", "--no-events", "--json")

    result = run(runner, *args, env=fake_api.env())

    assert result.exit_code == 0, result.output
    run_lines = [line for line in fake_api.lines if line["lineId"].startswith("load-")]
    asked = load.load_lines("any", 200, room=3.0)
    assert [line["limit"] for line in run_lines] == [body["limit"] for _, body in asked]
