"""What the client raises: every failure keeps what the server said, so a caller can
decide (and a CLI can explain) without parsing messages."""

from dataclasses import dataclass
from typing import Any, Literal


class FundrouterError(Exception):
    """Base of everything the client raises on purpose."""


class Unreachable(FundrouterError):
    """No HTTP answer from `endpoint` (the token URL or the API) after the retries."""

    def __init__(self, endpoint: Literal["token", "api"], url: str, reason: str) -> None:
        super().__init__(f"cannot reach the {endpoint} endpoint at {url}: {reason}")
        self.endpoint = endpoint
        self.url = url
        self.reason = reason


class TokenError(FundrouterError):
    """The token endpoint refused: `error` and `description` are OAuth2's
    (`invalid_client`, `invalid_scope`, ...) when it said them."""

    def __init__(self, status: int, error: str | None, description: str | None, raw: bytes):
        super().__init__(
            f"token endpoint answered {status}: {error or 'error'}"
            + (f" ({description})" if description else "")
        )
        self.status = status
        self.error = error
        self.description = description
        self.raw = raw


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str


class ApiError(FundrouterError):
    """The API answered a refusal (or 2xx that is not JSON: `code` "not_json").

    `code` is the API's error code (docs/api.md) when the body has the API's error
    shape, None when the gateway answered (its `{"message": ...}`: 401, 403, 404 for
    a route it does not have, 429 throttling)."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        *,
        code: str | None,
        message: str,
        fields: tuple[FieldProblem, ...] = (),
        body: Any = None,
        raw: bytes = b"",
        content_type: str = "",
    ) -> None:
        super().__init__(f"{method} {path}: {status} {code or 'http_error'}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.body = body
        self.raw = raw
        self.content_type = content_type
