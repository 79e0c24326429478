"""Local stacks for the tests that talk to one: its own ministack on its own port and state
directory, started fresh for the session with the same script as `make up`, so the
tests exercise exactly what a developer runs, beside any stack already up."""

import base64
import json
import os
import platform
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from fundrouter_client import Client, Credentials

from tests.support.template import ROOT

PORT = os.environ.get("FUNDROUTER_TEST_PORT", "4577")
STATE_DIR = os.environ.get("FUNDROUTER_TEST_STATE_DIR", ".fundrouter/test-stack")


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalStack:
    settings: dict[str, str]

    @property
    def api_url(self) -> str:
        return self.settings["FUNDROUTER_API_URL"]

    def token(self, who: str, scope: str) -> str:
        client_id = self.settings[f"FUNDROUTER_{who}_CLIENT_ID"]
        secret = self.settings[f"FUNDROUTER_{who}_CLIENT_SECRET"]
        return self.token_of(client_id, secret, scope)

    def token_of(self, client_id: str, secret: str, scope: str) -> str:
        """A client credentials token of any client of the pool (a tenant's)."""
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope})
        answer = http(
            "POST",
            self.settings["FUNDROUTER_TOKEN_URL"],
            form.encode(),
            {
                "authorization": f"Basic {basic}",
                "content-type": "application/x-www-form-urlencoded",
            },
        )
        assert answer.status == 200, answer.body
        return str(answer.body["access_token"])

    def typed_client(self, who: str, scope: str) -> Client:
        """fundrouter-client for one of local.env's OAuth2 clients (TENANT, TENANT2, ADMIN)."""
        credentials = Credentials(
            self.settings["FUNDROUTER_TOKEN_URL"],
            self.settings[f"FUNDROUTER_{who}_CLIENT_ID"],
            self.settings[f"FUNDROUTER_{who}_CLIENT_SECRET"],
            scope,
        )
        return Client(self.api_url, credentials)

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> HttpResult:
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        raw = (
            body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        )
        return http(method, self.api_url + path, raw, headers)

    @property
    def client_id(self) -> str:
        return self.settings["FUNDROUTER_TENANT_CLIENT_ID"]

    def client(self, service: str, config: Config | None = None) -> Any:
        """An SDK client of the stack's AWS endpoint, in a session of its own: threads
        may each take one (boto3's sessions are not thread-safe)."""
        return boto3.session.Session().client(
            service,
            endpoint_url=self.settings["FUNDROUTER_AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="000000000000",
            aws_secret_access_key="local",
            config=config,
        )


def http(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> HttpResult:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    return HttpResult(status, json.loads(raw) if raw else None, headers)


def _script(
    command: str, port: str = PORT, state_dir: str = STATE_DIR, faults: str = ""
) -> subprocess.CompletedProcess[str]:
    # Faults only where asked for, never inherited from the shell.
    env = os.environ | {
        "FUNDROUTER_LOCAL_PORT": port,
        "FUNDROUTER_STATE_DIR": state_dir,
        "FUNDROUTER_FAULTS": faults,
    }
    arch = "arm64" if platform.machine() in {"aarch64", "arm64"} else "x86_64"
    return subprocess.run(
        [sys.executable, "scripts/localstack.py", command, "--arch", arch],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def running_stack(port: str, state_dir: str, faults: str = "") -> Iterator[LocalStack]:
    """A fresh local stack for the duration of the generator, stopped afterwards;
    `faults` (FUNDROUTER_FAULTS' form, tests/faults) makes its functions' AWS calls fail."""
    _script("down", port, state_dir)  # one left by an interrupted run keeps old state
    started = _script("up", port, state_dir, faults)
    if started.returncode != 0:
        _script("down", port, state_dir)
        pytest.fail(f"local stack did not come up:\n{started.stdout}\n{started.stderr}")
    env_file = ROOT / state_dir / "local.env"
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    try:
        yield LocalStack(settings)
    finally:
        _script("down", port, state_dir)
