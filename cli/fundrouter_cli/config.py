"""Where the stack is and who the CLI is: resolved from flags, then environment
variables, then an env file (``.fundrouter/local.env`` found from the current
directory upward, as ``make up`` writes it, or the file ``--env-file`` names).

Pure: the environment, the working directory and the flags are all arguments, so
the precedence is tested without touching the process.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from fundrouter_cli.errors import ConfigError

LOCAL_ENV: Final = Path(".fundrouter") / "local.env"

API_URL: Final = "FUNDROUTER_API_URL"
TOKEN_URL: Final = "FUNDROUTER_TOKEN_URL"  # noqa: S105 - a variable name
TENANT_CLIENT_ID: Final = "FUNDROUTER_TENANT_CLIENT_ID"
TENANT_CLIENT_SECRET: Final = "FUNDROUTER_TENANT_CLIENT_SECRET"  # noqa: S105 - a variable name
ADMIN_CLIENT_ID: Final = "FUNDROUTER_ADMIN_CLIENT_ID"
ADMIN_CLIENT_SECRET: Final = "FUNDROUTER_ADMIN_CLIENT_SECRET"  # noqa: S105 - a variable name

# Setting name -> the command-line flag that sets it.
FLAGS: Final[Mapping[str, str]] = {
    API_URL: "--api-url",
    TOKEN_URL: "--token-url",
    TENANT_CLIENT_ID: "--tenant-client-id",
    TENANT_CLIENT_SECRET: "--tenant-client-secret",
    ADMIN_CLIENT_ID: "--admin-client-id",
    ADMIN_CLIENT_SECRET: "--admin-client-secret",
}
SECRETS: Final = frozenset({TENANT_CLIENT_SECRET, ADMIN_CLIENT_SECRET})
NOT_CONFIGURED_HINT: Final = (
    "Start the local stack with `make up` (it writes .fundrouter/local.env), or point the "
    "CLI at a deployed stack with --api-url/--token-url and client credentials "
    "(or the FUNDROUTER_* environment variables)."
)


class Role(StrEnum):
    """The two OAuth2 clients: a business system (tenant) and an operator (admin)."""

    TENANT = "TENANT"
    ADMIN = "ADMIN"

    @property
    def scope(self) -> str:
        if self is Role.TENANT:
            return "fundrouter/orders.write fundrouter/orders.read"
        return "fundrouter/lines.admin"


@dataclass(frozen=True)
class Credentials:
    role: Role
    client_id: str
    secret: str


@dataclass(frozen=True)
class Settings:
    """The resolved values and where each came from ("--api-url", "environment",
    or the env file's path)."""

    values: Mapping[str, str]
    sources: Mapping[str, str]
    env_file: Path | None = None

    @property
    def api_url(self) -> str:
        return self._url(API_URL)

    @property
    def token_url(self) -> str:
        return self._url(TOKEN_URL)

    def credentials(self, role: Role) -> Credentials:
        id_name, secret_name = f"FUNDROUTER_{role}_CLIENT_ID", f"FUNDROUTER_{role}_CLIENT_SECRET"
        missing = [name for name in (id_name, secret_name) if not self.values.get(name)]
        if missing:
            raise ConfigError(
                f"no {role.lower()} client credentials: set "
                + " and ".join(f"{FLAGS[name]} (or {name})" for name in missing),
                self._hint(),
            )
        return Credentials(role, self.values[id_name], self.values[secret_name])

    def _url(self, name: str) -> str:
        value = self.values.get(name)
        if not value:
            raise ConfigError(f"no {FLAGS[name]} (or {name}) configured", self._hint())
        problem = url_problem(value)
        if problem:
            source = self.sources[name]
            where = "" if source == FLAGS[name] else f" (from {source})"
            raise ConfigError(f"{FLAGS[name]}{where}: {problem}")
        return value.rstrip("/")

    def _hint(self) -> str:
        if self.env_file is None:
            return "no .fundrouter/local.env found here or above. " + NOT_CONFIGURED_HINT
        return NOT_CONFIGURED_HINT

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, shown value, source) for every setting; secrets masked."""
        rows = []
        for name in FLAGS:
            value = self.values.get(name)
            if value is None:
                rows.append((name, "-", "not set"))
                continue
            shown = mask(value) if name in SECRETS else value
            rows.append((name, shown, self.sources[name]))
        return rows


def mask(secret: str) -> str:
    return f"set ({len(secret)} characters)" if secret else "empty"


def url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return f"{value!r} is not an http(s) URL"
    return None


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as a shell would source them: blank lines and # comments
    skipped, an optional ``export``, matching quotes around the value removed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in {"'", '"'}:
            value = value[1:-1]
        values[key] = value
    return values


def find_env_file(start: Path) -> Path | None:
    """``.fundrouter/local.env`` in `start` or the nearest directory above it."""
    for directory in (start, *start.parents):
        candidate = directory / LOCAL_ENV
        if candidate.is_file():
            return candidate
    return None


def resolve(
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    cwd: Path,
    env_file: Path | None = None,
) -> Settings:
    """Flags win over environment variables, which win over the env file.

    `env_file` is the file ``--env-file`` named: it must exist. Without it the
    nearest ``.fundrouter/local.env`` is used when there is one.
    """
    if env_file is not None:
        path = env_file if env_file.is_absolute() else cwd / env_file
        if not path.is_file():
            raise ConfigError(f"--env-file {env_file}: no such file")
        found: Path | None = path
    else:
        found = find_env_file(cwd)
    from_file: dict[str, str] = {}
    if found is not None:
        try:
            from_file = parse_env_file(found.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read {found}: {error}") from error
    label = str(found)
    if found is not None:
        relative = os.path.relpath(found, cwd)
        label = relative if len(relative) < len(label) else label
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, flag in FLAGS.items():
        flagged, exported, filed = flags.get(name), environ.get(name), from_file.get(name)
        if flagged:
            values[name], sources[name] = flagged, flag
        elif exported:
            values[name], sources[name] = exported, "environment"
        elif filed:
            values[name], sources[name] = filed, label
    return Settings(values, sources, found)
