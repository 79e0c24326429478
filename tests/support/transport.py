"""A scripted fundrouter-client transport: answers in order, every request recorded,
so the clients' retries, tokens and errors are tested without a network."""

import json
from collections.abc import Mapping
from typing import Any

from fundrouter_client.transport import Reply, TransportError


def reply(status: int, body: Any, retry_after: str | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), "application/json", retry_after)


def token_reply(access: str = "tok", expires_in: int = 3600) -> Reply:
    return reply(200, {"access_token": access, "expires_in": expires_in, "token_type": "Bearer"})


class Script:
    """Answers in order; records every request."""

    def __init__(self, *answers: Reply | TransportError) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str, bytes | None, dict[str, str]]] = []

    def __call__(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str], _: float
    ) -> Reply:
        self.sent.append((method, url, data, dict(headers)))
        answer = self.answers.pop(0)
        if isinstance(answer, TransportError):
            raise answer
        return answer
