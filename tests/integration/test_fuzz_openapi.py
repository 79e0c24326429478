"""An outside fuzzer on the live API: schemathesis reads openapi.json and sends what a
client stack generated from it might, to the local stack, with every check it has.
Zero failures means the document is the truth: each response matches its declared
status and schema, schema-valid requests are accepted, invalid ones refused, no 5xx,
and undeclared methods are 405 with Allow. Bounded: a fixed number of examples per
operation and a time budget, loopback only."""

import os
import subprocess
import sys

import pytest

from tests.support.stack import LocalStack
from tests.support.template import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

CONFIG = ROOT / "tests" / "integration" / "schemathesis.toml"


def test_schemathesis_with_every_check_finds_nothing(
    local_stack: LocalStack, tmp_path: os.PathLike[str]
) -> None:
    assert local_stack.api_url.startswith("http://127.0.0.1:")
    env = os.environ | {
        "FUNDROUTER_FUZZ_TENANT_TOKEN": local_stack.token(
            "TENANT", "fundrouter/orders.write fundrouter/orders.read"
        ),
        "FUNDROUTER_FUZZ_ADMIN_TOKEN": local_stack.token("ADMIN", "fundrouter/lines.admin"),
    }
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", str(ROOT / "openapi.json"), "--url", local_stack.api_url,
        "--checks", "all", "--max-examples", "20", "--max-time", "100", "--seed", "9",
        "--workers", "1", "--generation-database", "none", "--no-color",
    ]  # fmt: skip

    ran = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )

    summary = ran.stdout[ran.stdout.find("SUMMARY") :] if "SUMMARY" in ran.stdout else ""
    print(summary)  # shown with -s or -rA: operations, phases, cases generated
    assert ran.returncode == 0, ran.stdout[-12000:] + ran.stderr[-2000:]
