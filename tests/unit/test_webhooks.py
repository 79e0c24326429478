"""The webhook rules, pure: the retry schedule, the event filter, the signature, the
secrets a rotation leaves signing, which endpoint URLs are refused (SSRF), and the
items endpoints and deliveries are stored as."""

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fundrouter.domain.webhooks import (
    Attempt,
    Delivery,
    DeliveryState,
    Endpoint,
    EndpointSecret,
    RetryPolicy,
    WebhookEventType,
    address_allowed,
    delivery_id,
    event_id,
    signature_header,
    url_problem,
)
from fundrouter.persistence.webhooks import (
    delivery_from_item,
    delivery_item,
    endpoint_from_item,
    endpoint_item,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=30, max_seconds=3600, window_seconds=86400)


def delivery(**fields: object) -> Delivery:
    values: dict[str, object] = {
        "delivery_id": delivery_id(T0, event_id("t", "o", 1)),
        "endpoint_id": "we_" + "0" * 32,
        "tenant_id": "t",
        "event_id": event_id("t", "o", 1),
        "event_type": WebhookEventType.ORDER_STATUS_CHANGED,
        "order_id": "o",
        "order_version": 1,
        "body": "{}",
        "created_at": T0,
        "cycle_started_at": T0,
        "next_attempt_at": T0,
    }
    return Delivery(**(values | fields))  # type: ignore[arg-type]


def failed(at: datetime) -> Attempt:
    return Attempt(at=at, duration_ms=3, status_code=500)


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
def test_failures_wait_longer_each_time_up_to_the_cap_and_are_retried_for_a_day(
    jitter: float,
) -> None:
    current, waits = delivery(), []
    while current.state is DeliveryState.PENDING:
        assert current.next_attempt_at is not None
        current = current.after(failed(current.next_attempt_at), POLICY, jitter)
        if current.next_attempt_at is not None:
            waits.append((current.next_attempt_at - current.attempts[-1].at).total_seconds())

    scale = 0.5 + jitter / 2
    assert waits[:4] == [30 * scale, 60 * scale, 120 * scale, 240 * scale]
    assert max(waits) == 3600 * scale
    assert waits == sorted(waits)
    assert current.state is DeliveryState.DEAD
    # The last attempt is the first at or past the window: retried a full day, no more.
    assert current.attempts[-1].at - T0 >= timedelta(days=1)
    assert current.attempts[-2].at - T0 < timedelta(days=1)
    assert current.attempt_count == len(waits) + 1
    assert len(current.attempts) == min(100, current.attempt_count)


def test_equal_jitter_keeps_every_wait_between_half_and_all_of_the_ceiling() -> None:
    assert POLICY.delay(3, 0.0) == timedelta(seconds=60)
    assert POLICY.delay(3, 1.0) == timedelta(seconds=120)
    assert POLICY.delay(30, 0.25) == timedelta(seconds=1800 + 450)


def test_a_success_is_delivered_and_a_resend_starts_a_new_window() -> None:
    first = delivery().after(failed(T0), POLICY, 0.0)
    delivered = first.after(
        Attempt(at=T0 + timedelta(minutes=1), duration_ms=9, status_code=204), POLICY, 0.0
    )
    later = T0 + timedelta(days=3)

    resent = delivered.resent(later)

    assert (delivered.state, delivered.next_attempt_at) == (DeliveryState.DELIVERED, None)
    assert delivered.finished_at == T0 + timedelta(minutes=1)
    assert (resent.state, resent.next_attempt_at, resent.cycle_started_at) == (
        DeliveryState.PENDING,
        later,
        later,
    )
    assert resent.attempt_count == 2  # the log goes on
    assert resent.after(failed(later), POLICY, 0.0).state is DeliveryState.PENDING


def test_a_redirect_or_no_answer_is_a_failed_attempt() -> None:
    assert not Attempt(at=T0, duration_ms=1, status_code=302).succeeded
    assert not Attempt(at=T0, duration_ms=1, error="timeout").succeeded
    assert Attempt(at=T0, duration_ms=1, status_code=299).succeeded


def endpoint(*events: WebhookEventType) -> Endpoint:
    return Endpoint(
        endpoint_id="we_" + "1" * 32,
        tenant_id="t",
        url="https://example.com/hook",
        events=events,
        description=None,
        secrets=(EndpointSecret("whsec_a", T0),),
        created_at=T0,
        updated_at=T0,
    )


def test_an_endpoint_receives_only_the_event_types_it_asked_for() -> None:
    assert endpoint(WebhookEventType.ORDER_STATUS_CHANGED).wants(
        WebhookEventType.ORDER_STATUS_CHANGED
    )
    assert not endpoint().wants(WebhookEventType.ORDER_STATUS_CHANGED)


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_raw_body() -> None:
    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"whsec_a", b"1764590400." + body, hashlib.sha256).hexdigest()

    assert signature_header(["whsec_a"], 1764590400, body) == f"t=1764590400,v1={expected}"


def test_after_a_rotation_both_secrets_sign_until_the_grace_ends() -> None:
    rotated = endpoint().rotated("whsec_b", T0, timedelta(hours=24))
    header = signature_header(rotated.signing_secrets(T0 + timedelta(hours=1)), 5, b"x")

    assert rotated.signing_secrets(T0 + timedelta(hours=23)) == ["whsec_b", "whsec_a"]
    assert rotated.signing_secrets(T0 + timedelta(hours=24)) == ["whsec_b"]
    assert header.count("v1=") == 2
    assert rotated.version == 2
    # Rotating again drops what no longer signs, keeps what still does.
    again = rotated.rotated("whsec_c", T0 + timedelta(hours=30), timedelta(0))
    assert again.signing_secrets(T0 + timedelta(hours=30)) == ["whsec_c"]
    assert [s.secret for s in again.secrets] == ["whsec_c"]


def test_endpoints_and_deliveries_read_back_from_their_items_as_written() -> None:
    rotated = endpoint().rotated("whsec_b", T0, timedelta(hours=1))
    described = replace(endpoint(WebhookEventType.ORDER_STATUS_CHANGED), description="shop")
    for written in (endpoint(), rotated, described):
        assert endpoint_from_item(endpoint_item(written)) == written
    dead = delivery(state=DeliveryState.DEAD, attempts=(failed(T0), Attempt(T0, 9, error="x")))
    for sent in (delivery(), replace(dead, attempt_count=2, failures=2, finished_at=T0)):
        assert delivery_from_item(delivery_item(sent)) == sent
    leased = delivery_item(delivery()) | {"leasedUntil": {"S": "2026-12-01T12:00:30.000Z"}}
    assert delivery_from_item(leased).leased_until == T0 + timedelta(seconds=30)


def test_one_status_change_has_one_event_id_and_deliveries_sort_by_its_time() -> None:
    assert event_id("t", "o", 2) == event_id("t", "o", 2)
    assert len({event_id("t", "o", 2), event_id("t", "o", 3), event_id("u", "o", 2)}) == 3
    earlier = delivery_id(T0, event_id("t", "z", 9))
    assert earlier < delivery_id(T0 + timedelta(milliseconds=1), event_id("t", "a", 1))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "must be an https:// URL"),
        ("ftp://example.com/hook", "must be an https:// URL"),
        ("https://user:pw@example.com/", "must not carry a user name or password"),
        ("https://example.com/#x", "must not have a fragment"),
        ("https://localhost/hook", "must name a public host"),
        ("https://metadata.internal/", "must name a public host"),
        ("https://intranet/", "must name a public host"),
        ("https://10.0.0.8/", "must not be a private, loopback or link-local address"),
        ("https://169.254.169.254/latest", "must not be a private, loopback or link-local address"),
        ("https://127.0.0.1/", "must not be a private, loopback or link-local address"),
        ("https://[::1]/", "must not be a private, loopback or link-local address"),
        ("https://[fd00::1]/", "must not be a private, loopback or link-local address"),
        ("https://[::ffff:192.168.0.1]/", "must not be a private, loopback or link-local address"),
        ("https://example.com:99999/", "not a URL"),
        ("https:///nohost", "has no host"),
    ],
)
def test_endpoint_urls_must_be_https_to_a_public_host(url: str, reason: str) -> None:
    assert url_problem(url, allow_loopback=False) == reason


def test_the_local_stack_setting_allows_127_0_0_1_and_nothing_else() -> None:
    assert url_problem("https://hooks.example.com/a?b=c", allow_loopback=False) is None
    assert url_problem("http://127.0.0.1:4725/hook", allow_loopback=False) is not None
    assert url_problem("http://127.0.0.1:4725/hook", allow_loopback=True) is None
    assert url_problem("https://127.0.0.1:4725/hook", allow_loopback=True) is None
    assert url_problem("http://10.0.0.1/hook", allow_loopback=True) is not None
    assert url_problem("http://localhost:4725/hook", allow_loopback=True) is not None
    # The local stack never reaches out of the machine, not even to a public host.
    assert url_problem("https://hooks.example.com/", allow_loopback=True) == (
        "the local stack delivers to 127.0.0.1 only"
    )
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert not address_allowed("127.0.0.2", allow_loopback=True)
    assert not address_allowed("93.184.216.34", allow_loopback=True)
    assert not address_allowed("224.0.0.1", allow_loopback=False)
    assert address_allowed("93.184.216.34", allow_loopback=False)
