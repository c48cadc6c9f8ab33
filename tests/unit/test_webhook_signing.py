"""Standard Webhooks signatures of the notifier (``services.notifier.signing``) against known vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from services.notifier import signing

pytestmark = pytest.mark.unit

# The example vector published with the Standard Webhooks specification and its reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_specification_vector() -> None:
    assert signing.sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE


def test_signature_equals_a_hand_computed_hmac_over_id_timestamp_body() -> None:
    key = bytes(range(24))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"type":"renja.Signed.v1","data":{"opd":"Bappeda Kota Bogor"}}'
    event_id = "5f0c7c2e-8d0e-4d7a-9a57-0a1b2c3d4e5f"
    expected = base64.b64encode(hmac.new(key, f"{event_id}.1767225600.".encode() + body, hashlib.sha256).digest())
    assert signing.sign(secret, event_id, 1767225600, body) == "v1," + expected.decode()
    # One changed byte of the body, the id or the timestamp changes the signature.
    assert signing.sign(secret, event_id, 1767225600, body + b" ") != "v1," + expected.decode()
    assert signing.sign(secret, event_id, 1767225601, body) != "v1," + expected.decode()


def test_headers_carry_id_timestamp_and_signature() -> None:
    h = signing.headers(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
    assert h == {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS), "webhook-signature": SPEC_SIGNATURE}


def test_make_secret_is_whsec_and_base64_of_the_random_bytes() -> None:
    secret = signing.make_secret(b"\x01" * 24)
    assert secret == "whsec_" + base64.b64encode(b"\x01" * 24).decode()
    assert signing.secret_key(secret) == b"\x01" * 24
    with pytest.raises(signing.BadSecret):
        signing.make_secret(b"short")
    with pytest.raises(signing.BadSecret):
        signing.secret_key("sk_live_abc")
    with pytest.raises(signing.BadSecret):
        signing.secret_key("whsec_not base64!")


def test_verify_accepts_any_listed_v1_signature_within_tolerance_only() -> None:
    other = signing.sign(signing.make_secret(b"\x02" * 24), SPEC_ID, SPEC_TS, SPEC_BODY)
    header = f"{other} {SPEC_SIGNATURE}"
    assert signing.verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, header, now=SPEC_TS + 10)
    assert not signing.verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, other, now=SPEC_TS)
    assert not signing.verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, header, now=SPEC_TS + 301)
    assert not signing.verify(SPEC_SECRET, SPEC_ID, SPEC_TS, b"{}", header, now=SPEC_TS)


def test_reference_library_verifies_our_signature() -> None:
    import time

    from standardwebhooks.webhooks import Webhook  # type: ignore[import-not-found]

    body = b'{"id":"x"}'
    headers = signing.headers(SPEC_SECRET, "evt_1", int(time.time()), body)  # the library checks freshness
    Webhook(SPEC_SECRET).verify(body, headers)  # raises on a bad signature
