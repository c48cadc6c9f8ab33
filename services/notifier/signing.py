"""Standard Webhooks signatures (https://www.standardwebhooks.com/): secrets, signing, verification.

The convention: a secret is ``whsec_`` + base64 of random key bytes; each delivery carries
``webhook-id``, ``webhook-timestamp`` (unix seconds) and ``webhook-signature`` =
``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), space-separated when several keys sign.
Pure: random bytes and the clock come in as parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


class BadSecret(ValueError):
    """The secret is not ``whsec_`` + base64 of the key bytes."""


def make_secret(random_bytes: bytes) -> str:
    """``whsec_`` + base64(``random_bytes``); pass ``secrets.token_bytes(SECRET_BYTES)``."""
    if len(random_bytes) < 16:
        raise BadSecret("a webhook secret needs at least 16 random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key bytes of a ``whsec_...`` secret. Raises ``BadSecret``."""
    if not secret.startswith(SECRET_PREFIX):
        raise BadSecret(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise BadSecret("the part after 'whsec_' is not base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value ``v1,<base64 HMAC-SHA256>`` for one delivery attempt.

    ``timestamp`` is unix seconds (UTC) of the attempt; ``body`` the exact bytes sent.
    """
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str, *, now: int, tolerance_s: int = 300
) -> bool:
    """True if any ``v1`` signature in ``signature_header`` matches and the timestamp is within tolerance.

    For receivers and tests; the comparison is constant-time.
    """
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for part in signature_header.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False
