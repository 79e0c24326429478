"""The state one invocation carries (settings resolved on first use, one API client,
the consoles) and the way expected failures are shown: one message, a hint, the
fields the API named, and an exit code; never a stack trace."""

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import typer
from fundrouter_client.transport import LOOPBACK
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from fundrouter_cli.client import ApiClient
from fundrouter_cli.config import Settings, resolve
from fundrouter_cli.errors import ApiError, BadInput, CliError

# Width for output that is not a terminal (piped, captured) and has no COLUMNS:
# wide enough for the lines table.
PIPE_WIDTH: Final = 132


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


@dataclass
class Runtime:
    flags: Mapping[str, str | None]
    env_file: Path | None
    timeout: float
    console: Console = field(default_factory=make_console)
    err: Console = field(default_factory=lambda: make_console(stderr=True))
    _settings: Settings | None = None
    _client: ApiClient | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve(self.flags, os.environ, Path.cwd(), self.env_file)
        return self._settings

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.settings, timeout=self.timeout)
        return self._client

    def confirm_writes(self, what: str, yes: bool) -> None:
        """demo and load write lines and orders: outside this machine, only when asked."""
        host = urlsplit(self.settings.api_url).hostname or ""
        if yes or host in LOOPBACK:
            return
        question = f"{what} will write lines and orders to {self.settings.api_url}. Go on?"
        try:
            agreed = typer.confirm(question, default=False)
        except typer.Abort:
            agreed = False
        if not agreed:
            raise BadInput(
                f"not writing to {host} without confirmation", "pass --yes to run anyway"
            )


def runtime(ctx: typer.Context) -> Runtime:
    obj = ctx.find_object(Runtime)
    if obj is None:  # pragma: no cover - the app callback always sets it
        raise RuntimeError("no runtime")
    return obj


def report(error: CliError, err: Console) -> None:
    err.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False)
    if isinstance(error, ApiError):
        for problem in error.fields:
            err.print(f"  [red]{problem.field}[/]: {problem.reason}", markup=True)
    if error.hint:
        err.print(f"[yellow]hint:[/] {error.hint}", markup=True, highlight=False)


def handled[**P, R](command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            report(error, make_console(stderr=True))
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            make_console(stderr=True).print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def command[**P, R](
    group: typer.Typer, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a command of `group` (named after the function unless `name`), its
    expected failures handled."""

    def register(function: Callable[P, R]) -> Callable[P, R]:
        wrapped = handled(function)
        group.command(name)(wrapped)
        return wrapped

    return register


def progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=32),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
