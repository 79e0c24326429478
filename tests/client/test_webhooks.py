"""verify_webhook against signatures computed here from the documented scheme:
HMAC-SHA256(secret, f"{t}.".encode() + raw_body), hex, in `Fundrouter-Signature`."""

import hashlib
import hmac

import pytest
from fundrouter_client import InvalidSignature, verify_webhook

BODY = b'{"orderId":"o-1","status":"APPROVED","version":3}'
NOW = 1_764_547_200
OLD, NEW = "whsec_old", "whsec_new"


def v1(secret: str, timestamp: int, body: bytes = BODY) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def headers(*secrets: str, timestamp: int = NOW) -> dict[str, str]:
    signatures = ",".join(f"v1={v1(secret, timestamp)}" for secret in secrets)
    return {
        "Content-Type": "application/json",
        "fundrouter-signature": f"t={timestamp},{signatures}",
    }


def test_a_delivery_signed_with_the_secret_verifies_and_gives_its_timestamp() -> None:
    assert verify_webhook(NEW, headers(NEW), BODY, now=NOW + 299) == NOW
    assert verify_webhook(NEW.encode(), headers(NEW), BODY, now=NOW - 300) == NOW


def test_a_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify_webhook(NEW, headers(NEW), BODY.replace(b"APPROVED", b"REPAID"), now=NOW)


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify_webhook("whsec_other", headers(NEW), BODY, now=NOW)


def test_a_stale_or_future_timestamp_is_refused_even_when_the_signature_matches() -> None:
    with pytest.raises(InvalidSignature, match="301 s away"):
        verify_webhook(NEW, headers(NEW), BODY, now=NOW + 301)
    with pytest.raises(InvalidSignature, match="away from now"):
        verify_webhook(NEW, headers(NEW), BODY, 60, now=NOW - 61)


def test_a_timestamp_changed_after_signing_is_refused() -> None:
    forged = headers(NEW)["fundrouter-signature"].replace(f"t={NOW}", f"t={NOW + 100}")
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify_webhook(NEW, {"Fundrouter-Signature": forged}, BODY, now=NOW + 100)


def test_during_a_rotation_either_secret_verifies_a_delivery_signed_with_both() -> None:
    rotating = headers(OLD, NEW)

    assert verify_webhook(OLD, rotating, BODY, now=NOW) == NOW  # a receiver not yet updated
    assert verify_webhook(NEW, rotating, BODY, now=NOW) == NOW
    assert verify_webhook([NEW, OLD], headers(OLD), BODY, now=NOW) == NOW  # receiver holds both
    with pytest.raises(InvalidSignature):
        verify_webhook("whsec_other", rotating, BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Fundrouter-Signature header"),
        (f"v1={v1(NEW, NOW)}", "no t"),
        (f"t=soon,v1={v1(NEW, NOW)}", "bad t"),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0={v1(NEW, NOW)}", "no v1 signature"),
    ],
)
def test_a_missing_or_malformed_header_is_refused(header: str | None, reason: str) -> None:
    sent = {} if header is None else {"Fundrouter-Signature": header}
    with pytest.raises(InvalidSignature, match=reason):
        verify_webhook(NEW, sent, BODY, now=NOW)


def test_no_secret_verifies_nothing() -> None:
    with pytest.raises(InvalidSignature, match="no secret"):
        verify_webhook([], headers(NEW), BODY, now=NOW)
