"""Expected failures, each with the message a person needs and its exit code.

Anything raised as a CliError is printed as one clear message (no stack trace);
anything else is a bug in the CLI and keeps its traceback.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

EXIT_FAILED: Final = 1  # the command ran and found a problem (audit violation, API refusal)
EXIT_USAGE: Final = 2  # bad input or configuration (also what typer uses for bad arguments)
EXIT_UNREACHABLE: Final = 3  # the stack did not answer
EXIT_AUTH: Final = 4  # credentials refused or missing scope


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str


class CliError(Exception):
    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(CliError):
    exit_code = EXIT_USAGE


class BadInput(CliError):
    exit_code = EXIT_USAGE


class Unreachable(CliError):
    exit_code = EXIT_UNREACHABLE


class RouteMissing(Unreachable):
    """The gateway has no such route: a wrong API URL, or a stack deployed from an
    older template than the CLI expects."""


class AuthError(CliError):
    exit_code = EXIT_AUTH


class ApiError(CliError):
    """The API answered with its error shape (or something that is not JSON)."""

    exit_code = EXIT_FAILED

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[FieldProblem] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}", hint)
        self.status = status
        self.code = code
        self.api_message = message
        self.fields = tuple(fields)
