"""Where the CLI finds the stack: flags, then environment, then the env file."""

from pathlib import Path

import pytest
from fundrouter_cli.config import (
    API_URL,
    TENANT_CLIENT_ID,
    TENANT_CLIENT_SECRET,
    TOKEN_URL,
    Role,
    find_env_file,
    mask,
    parse_env_file,
    resolve,
)
from fundrouter_cli.errors import EXIT_USAGE, ConfigError

FILE = """\
# written by make up
FUNDROUTER_API_URL=http://127.0.0.1:4566/_aws/execute-api/abc
FUNDROUTER_TOKEN_URL=http://127.0.0.1:4566/oauth2/token
FUNDROUTER_TENANT_CLIENT_ID=from-file
FUNDROUTER_TENANT_CLIENT_SECRET=file-secret
FUNDROUTER_ADMIN_CLIENT_ID=admin-from-file
FUNDROUTER_ADMIN_CLIENT_SECRET=admin-file-secret
"""


def write_env(directory: Path, text: str = FILE) -> Path:
    path = directory / ".fundrouter" / "local.env"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_flags_win_over_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    env_file = write_env(tmp_path)
    flags = {API_URL: "https://flag.example/api", TENANT_CLIENT_ID: None}
    environ = {API_URL: "https://env.example/api", TENANT_CLIENT_ID: "from-env"}

    settings = resolve(flags, environ, tmp_path)

    assert settings.api_url == "https://flag.example/api"
    assert settings.sources[API_URL] == "--api-url"
    assert settings.credentials(Role.TENANT).client_id == "from-env"
    assert settings.sources[TENANT_CLIENT_ID] == "environment"
    assert settings.credentials(Role.TENANT).secret == "file-secret"
    assert settings.sources[TENANT_CLIENT_SECRET] == ".fundrouter/local.env"
    assert settings.env_file == env_file
    assert settings.token_url == "http://127.0.0.1:4566/oauth2/token"


def test_the_env_file_is_found_from_a_directory_below(tmp_path: Path) -> None:
    env_file = write_env(tmp_path)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)

    assert find_env_file(nested) == env_file
    assert resolve({}, {}, nested).env_file == env_file


def test_an_explicit_env_file_is_used_relative_to_the_working_directory(tmp_path: Path) -> None:
    write_env(tmp_path)  # the one that would be found is ignored
    other = tmp_path / "prod.env"
    other.write_text("FUNDROUTER_API_URL=https://prod.example\n")

    settings = resolve({}, {}, tmp_path, Path("prod.env"))

    assert settings.api_url == "https://prod.example"
    assert settings.env_file == other
    assert TOKEN_URL not in settings.values


def test_a_missing_explicit_env_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as raised:
        resolve({}, {}, tmp_path, Path("missing.env"))

    assert raised.value.exit_code == EXIT_USAGE


def test_nothing_configured_says_how_to_start_the_stack(tmp_path: Path) -> None:
    settings = resolve({}, {}, tmp_path)

    with pytest.raises(ConfigError) as raised:
        _ = settings.api_url

    assert "--api-url" in raised.value.message
    assert raised.value.hint is not None
    assert "make up" in raised.value.hint


def test_missing_credentials_name_the_flag_and_the_variable(tmp_path: Path) -> None:
    settings = resolve({TENANT_CLIENT_ID: "only-id"}, {}, tmp_path)

    with pytest.raises(ConfigError) as raised:
        settings.credentials(Role.TENANT)

    assert "--tenant-client-secret (or FUNDROUTER_TENANT_CLIENT_SECRET)" in raised.value.message
    assert "--tenant-client-id" not in raised.value.message


@pytest.mark.parametrize("url", ["ftp://host/x", "127.0.0.1:4566", "http://", "nonsense"])
def test_urls_must_be_http(tmp_path: Path, url: str) -> None:
    settings = resolve({API_URL: url}, {}, tmp_path)

    with pytest.raises(ConfigError, match="not an http"):
        _ = settings.api_url


def test_a_trailing_slash_is_dropped(tmp_path: Path) -> None:
    assert resolve({API_URL: "http://h/api/"}, {}, tmp_path).api_url == "http://h/api"


def test_env_files_parse_as_a_shell_would_source_them() -> None:
    text = "\n# comment\nexport A=1\nB='two words'\nC=\"x=y\"\nnot a setting\nD=\n"

    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "x=y", "D": ""}


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    write_env(tmp_path)

    rows = {name: (shown, source) for name, shown, source in resolve({}, {}, tmp_path).describe()}

    assert rows[TENANT_CLIENT_SECRET][0] == "set (11 characters)"
    assert "file-secret" not in str(rows)
    assert rows[TENANT_CLIENT_ID][0] == "from-file"
    assert mask("") == "empty"
