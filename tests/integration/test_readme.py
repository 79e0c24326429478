"""The README's tour, run as written: every ```sh block, in order, in one shell, with
a .fundrouter/local.env pointing at the test stack. If the README rots, this fails."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import STATE_DIR, LocalStack
from tests.support.template import ROOT

pytestmark = pytest.mark.integration


def tour_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def test_the_readme_names_both_commands_first() -> None:
    first_lines = (ROOT / "README.md").read_text().splitlines()[:6]

    assert any(line.startswith("make up ") for line in first_lines)
    assert any(line.startswith("make test ") for line in first_lines)


def test_the_readme_tour_runs_as_written(local_stack: LocalStack, tmp_path: Path) -> None:
    """On the session's stack: the other tests use their own line ids and products,
    and the CLI's demo (which writes fixed line ids) runs after this."""
    (tmp_path / ".fundrouter").mkdir()
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")  # for the .venv/bin/fundrouter lines
    shutil.copy(ROOT / STATE_DIR / "local.env", tmp_path / ".fundrouter" / "local.env")
    script = "set -euo pipefail\n" + "\n".join(tour_blocks())

    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    line = next(
        json.loads(out) for out in reversed(ran.stdout.splitlines()) if out.startswith('{"lineId"')
    )
    assert (line["reserved"], line["drawn"]) == (0, 600_000)
    assert line["available"] == 500_000_000 - 600_000
    order = next(json.loads(out) for out in ran.stdout.splitlines() if '"status":"MATCHED"' in out)
    assert order["lineId"] == "bank-a-consumer"
    assert "bank-a-consumer" in ran.stdout.split(json.dumps(line, separators=(",", ":")))[-1]
