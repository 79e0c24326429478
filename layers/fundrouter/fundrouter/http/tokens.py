"""Bearer tokens the function verifies itself (decision 30): on the routes a tenant
calls, the gateway's JWT authorizer cannot know every tenant's client id, so the
function checks the user pool's access tokens as the authorizer would.

RS256 is verified as RFC 8017 (8.2.2) says: the expected PKCS #1 v1.5 encoding of
the digest is built and compared whole with the signature raised to the key's
exponent, never parsed, so no malformed padding can pass. The keys come from the
pool's JWKS, read once per container and again (at most once a minute) when a token
names a key not seen yet."""

import base64
import binascii
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final

from fundrouter import bootstrap
from fundrouter.domain.errors import Unavailable
from fundrouter.http.auth import Unauthenticated

# DER of DigestInfo for SHA-256 (RFC 8017, 9.2, note 1).
SHA256_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420")
REFRESH_SECONDS: Final = 60
LEEWAY_SECONDS: Final = 0

type Keys = Mapping[str, tuple[int, int]]  # kid -> (modulus, exponent)


def fetch_jwks(url: str) -> Keys:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - https or the emulator's
        document = json.loads(response.read())
    return {
        str(k["kid"]): (_integer(k["n"]), _integer(k["e"]))
        for k in document.get("keys", [])
        if k.get("kty") == "RSA" and k.get("alg", "RS256") == "RS256"
    }


def rs256_valid(signing_input: bytes, signature: bytes, modulus: int, exponent: int) -> bool:
    size = (modulus.bit_length() + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) != size or value >= modulus:
        return False
    digest = SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    return hmac.compare_digest(pow(value, exponent, modulus).to_bytes(size, "big"), expected)


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        load_keys: Callable[[], Keys],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._load_keys = load_keys
        self._clock = clock
        self._keys: Keys = {}
        self._loaded_at: float | None = None

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of a pool's access token; Unauthenticated otherwise."""
        try:
            head, body, signature = (_decoded(part) for part in token.split("."))
            header, claims = json.loads(head), json.loads(body)
        except (ValueError, binascii.Error):
            raise Unauthenticated from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Unauthenticated
        key = self._key(header.get("kid")) if header.get("alg") == "RS256" else None
        signed = token.rsplit(".", 1)[0].encode()
        if key is None or not rs256_valid(signed, signature, *key):
            raise Unauthenticated
        expires = claims.get("exp")
        if (
            claims.get("iss") != self._issuer
            or claims.get("token_use") != "access"
            or not isinstance(expires, int | float)
            or expires + LEEWAY_SECONDS <= self._clock()
        ):
            raise Unauthenticated
        return claims

    def _key(self, kid: object) -> tuple[int, int] | None:
        if not isinstance(kid, str):
            return None
        stale = self._loaded_at is None or self._clock() - self._loaded_at >= REFRESH_SECONDS
        if kid not in self._keys and stale:
            try:
                self._keys, self._loaded_at = self._load_keys(), self._clock()
            except (OSError, ValueError, KeyError) as error:  # unreachable or garbled: for now
                raise Unavailable("the user pool's keys could not be read") from error
        return self._keys.get(kid)


def _decoded(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _integer(text: str) -> int:
    return int.from_bytes(_decoded(text), "big")


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(app: Any, next_middleware: Any) -> Any:
    """A request the gateway did not authorize carries no claims: its bearer token is
    verified here and its claims put where the gateway's would be, so everything after
    reads one place. No token at all: 401."""
    event = app.current_event.raw_event
    context = event.setdefault("requestContext", {})
    if not ((context.get("authorizer") or {}).get("jwt") or {}).get("claims"):
        token = bearer(app.current_event.headers)
        if token is None:
            raise Unauthenticated
        build = app.dependency_overrides.get(bootstrap.token_verifier, bootstrap.token_verifier)
        context["authorizer"] = {"jwt": {"claims": build().claims(token), "scopes": None}}
    return next_middleware(app)
