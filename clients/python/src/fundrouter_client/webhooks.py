"""Checking that a webhook delivery came from fundrouter, unchanged and recent.

Each delivery carries ``Fundrouter-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``
where each hex is HMAC-SHA256(secret, f"{t}.".encode() + raw_body) under one of the
endpoint's valid secrets: while a secret is being rotated, the old and the new one
each sign, so a receiver that holds either accepts the delivery.
"""

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Final

from fundrouter_client.errors import FundrouterError

SIGNATURE_HEADER: Final = "Fundrouter-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300


class InvalidSignature(FundrouterError):
    """The delivery must not be trusted: `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_webhook(
    secrets: str | bytes | Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> int:
    """The delivery's timestamp when some `v1` signature matches some secret over the
    raw `body` (the bytes as received, before any JSON parsing) and the timestamp is
    within `tolerance` seconds of `now`; else InvalidSignature."""
    header = _header(headers)
    if header is None:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse(header)
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not keys:
        raise InvalidSignature("no secret to verify with")
    signed = f"{timestamp}.".encode() + body
    expected = [
        hmac.new(key.encode() if isinstance(key, str) else key, signed, hashlib.sha256).hexdigest()
        for key in keys
    ]
    # compare_digest for every pair: how long this takes tells nothing about the secret.
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise InvalidSignature("no signature matches the secret(s) and the body")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        raise InvalidSignature(f"timestamp {timestamp} is {abs(age):.0f} s away from now")
    return timestamp


def _header(headers: Mapping[str, str]) -> str | None:
    wanted = SIGNATURE_HEADER.lower()
    return next((value for name, value in headers.items() if name.lower() == wanted), None)


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: bad t")
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.lower())
    if timestamp is None:
        raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: no t")
    if not signatures:
        raise InvalidSignature(f"malformed {SIGNATURE_HEADER}: no v1 signature")
    return timestamp, signatures
