"""Import the Lambda handler modules from functions/ by path, as Lambda does from
each function's code folder, without touching sys.path; or in a fresh interpreter
with the environment Lambda gives them, as a cold start does."""

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from tests.support.template import ROOT


@cache
def handler_module(function_dir: str, module: str) -> ModuleType:
    path = ROOT / "functions" / function_dir / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


# What the python3.13 runtime sets for every function of template.yaml, with dummy
# credentials; the X-Ray address is loopback, where nothing listens.
LAMBDA_ENV = """LANG=en_US.UTF-8 TZ=:UTC AWS_REGION=ap-east-1 AWS_DEFAULT_REGION=ap-east-1
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled AWS_EXECUTION_ENV=AWS_Lambda_python3.13
AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 AWS_LAMBDA_FUNCTION_VERSION=$LATEST
AWS_LAMBDA_INITIALIZATION_TYPE=on-demand AWS_LAMBDA_LOG_STREAM_NAME=2026/11/24/[$LATEST]bench
AWS_XRAY_CONTEXT_MISSING=LOG_ERROR AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000
_AWS_XRAY_DAEMON_ADDRESS=127.0.0.1 _AWS_XRAY_DAEMON_PORT=2000
POWERTOOLS_SERVICE_NAME=fundrouter POWERTOOLS_LOG_LEVEL=INFO"""


def lambda_env(handler: Path) -> dict[str, str]:
    """Lambda's environment for the function whose handler module is `handler`, for a
    fresh interpreter: LAMBDA_TASK_ROOT makes the Tracer patch botocore, as in Lambda
    (tracing active, no daemon). Only PATH is inherited."""
    name = f"fundrouter-{handler.parent.name}"
    return dict(pair.split("=", 1) for pair in LAMBDA_ENV.split()) | {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "LAMBDA_TASK_ROOT": str(handler.parent),
        "_HANDLER": f"{handler.stem}.handler",
    }


MARKER = "FRESH_IMPORT_NS="
# Imports argv[1] (a module, or a file by path). Sockets that would reach a network are
# refused by an audit hook (installed for a bare module too, so both pay its small
# cost alike); any attempt is also reported, in case a library swallows the exception.
CHILD = f"""
import importlib, importlib.util, sys, time
_BLOCKED = frozenset({{"socket.connect", "socket.sendto", "socket.sendmsg",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
    "socket.gethostbyaddr"}})
_attempts = []
def _offline(event, args):
    if event in _BLOCKED:
        _attempts.append(event)
        raise RuntimeError(f"network access during import: {{event}} {{args!r}}")
sys.addaudithook(_offline)
target = sys.argv[1]
start = time.perf_counter_ns()
if target.endswith(".py"):
    spec = importlib.util.spec_from_file_location(target.rsplit("/", 1)[-1][:-3], target)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
else:
    importlib.import_module(target)
elapsed = time.perf_counter_ns() - start
if _attempts:
    sys.exit(f"network access attempted during import: {{_attempts}}")
print("{MARKER}" + str(elapsed))
print("\\n".join(sys.modules))
"""


@dataclass(frozen=True)
class FreshImport:
    nanoseconds: int  # the import itself, timed in the child
    modules: list[str]  # every module loaded afterwards


def import_fresh(target: str, handler: Path) -> FreshImport:
    """`target` (a module, or a file by path) imported by a fresh interpreter in the
    folder and Lambda environment of the function whose handler module is `handler`."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, target],
        cwd=handler.parent,
        env=lambda_env(handler),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    found = [n for n, line in enumerate(lines) if line.startswith(MARKER)]
    if done.returncode != 0 or not found:
        raise RuntimeError(
            f"importing {target} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return FreshImport(int(lines[found[-1]].removeprefix(MARKER)), lines[found[-1] + 1 :])
