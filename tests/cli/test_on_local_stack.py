"""The CLI against a real local stack (ministack running the deployed template), as a
person would use it: settings from the environment, every call over HTTP with real
tokens. A stack of the CLI's own (see conftest.py)."""

import json
import uuid
from pathlib import Path

import pytest
from fundrouter_cli.errors import EXIT_AUTH
from fundrouter_cli.main import app
from typer.testing import CliRunner, Result

from tests.support.factories import line_body
from tests.support.stack import LocalStack

pytestmark = pytest.mark.integration

SETTINGS = (
    "FUNDROUTER_API_URL",
    "FUNDROUTER_TOKEN_URL",
    "FUNDROUTER_TENANT_CLIENT_ID",
    "FUNDROUTER_TENANT_CLIENT_SECRET",
    "FUNDROUTER_ADMIN_CLIENT_ID",
    "FUNDROUTER_ADMIN_CLIENT_SECRET",
)


def cli(stack: LocalStack, *args: str, **env: str) -> Result:
    settings = {name: stack.settings[name] for name in SETTINGS} | env
    result = CliRunner().invoke(app, list(args), env=settings)
    assert "Traceback" not in result.output
    return result


def test_a_line_and_an_order_through_their_lifecycle(cli_stack: LocalStack, tmp_path: Path) -> None:
    product = f"cli-{uuid.uuid4().hex[:8]}"
    line_id = f"cli-line-{product}"
    (tmp_path / "line.json").write_text(
        json.dumps(
            {"lineId": line_id}
            | line_body(
                funderId="bank-cli",
                name="CLI test line",
                limit=10_000_000,
                minAmount=10_000,
                maxAmount=2_000_000,
                products=[product],
                aprBps=999,
                priority=1,
                weight=10,
                holdSeconds=3600,
            )
        )
    )

    put = cli(cli_stack, "line", "put", str(tmp_path / "line.json"))
    paused = cli(cli_stack, "line", "pause", line_id)
    resumed = cli(cli_stack, "line", "resume", line_id)
    order_id = f"cli-{uuid.uuid4().hex[:10]}"
    submitted = cli(
        cli_stack, "order", "submit", "--order-id", order_id, "--amount", "1500000",
        "--product", product, "--grade", "A", "--region", "GD",
    )  # fmt: skip
    approved = cli(cli_stack, "order", "event", order_id, "approved")
    disbursed = cli(cli_stack, "order", "event", order_id, "DISBURSED", "1200000")
    repaid = cli(cli_stack, "order", "event", order_id, "REPAID", "1200000")
    again = cli(cli_stack, "order", "event", order_id, "REPAID", "1")
    shown = cli(cli_stack, "order", "show", order_id)
    lines = cli(cli_stack, "lines")

    assert put.exit_code == 0, put.output
    assert f"created line {line_id}" in put.output
    assert f"line {line_id} is now PAUSED" in paused.output
    assert f"line {line_id} is now ACTIVE" in resumed.output
    assert submitted.exit_code == 0, submitted.output
    assert f"Order {order_id}  MATCHED" in submitted.output
    assert "MATCHED → APPROVED" in approved.output
    assert "APPROVED → DISBURSED" in disbursed.output
    assert "DISBURSED → REPAID" in repaid.output
    assert again.exit_code == 1
    assert "409 transition_not_allowed" in again.output
    history = shown.output[shown.output.index("History") :]
    statuses = ("RECEIVED", "MATCHED", "APPROVED", "DISBURSED", "REPAID")
    positions = [history.index(status) for status in statuses]
    assert positions == sorted(positions)
    row = next(r for r in lines.output.splitlines() if r.startswith(f" {line_id}"))
    assert "0.0%" in row  # repaid in full, the rest released at disbursement


def test_demo_seeds_lines_routes_orders_and_shows_utilization(cli_stack: LocalStack) -> None:
    result = cli(
        cli_stack, "demo", "--orders", "30", "--concurrency", "4", "--seed", "7", "--timeout", "60"
    )

    assert result.exit_code == 0, result.output
    assert "8 lines from 7 funders" in result.output
    assert "submitted 30 orders" in result.output
    assert "Lending lines (" in result.output  # the utilization table
    assert "icbc-consumer" in result.output
    assert "Outcomes of 30 orders" in result.output


def test_load_reports_latency_and_the_audit_passes(cli_stack: LocalStack) -> None:
    result = cli(cli_stack, "load", "--orders", "40", "--concurrency", "4", "--seed", "5")

    assert result.exit_code == 0, result.output
    assert "audit: OK" in result.output
    assert "intake → decision latency: min" in result.output
    assert "Throughput" in result.output
    assert "Lines of run load-" in result.output  # the utilization table of its lines
    assert "Outcomes of 40 orders" in result.output


def test_wrong_credentials_are_refused_without_a_trace(cli_stack: LocalStack) -> None:
    result = cli(cli_stack, "lines", FUNDROUTER_ADMIN_CLIENT_SECRET="not-the-secret")

    assert result.exit_code == EXIT_AUTH
    assert "refused the admin client's credentials" in result.output
