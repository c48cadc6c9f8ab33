"""The notifier's own rules and refusals: when a receipt time is plausible, how receipt tokens are kept,
and the errors its use cases raise (each a ``DomainError`` carrying its HTTP status and code).

Pure: no I/O, no clock (``now`` is passed in).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from shared.sop import DomainError

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a ``received_at`` may be and still count as "now" (clocks differ)."""


class NotFound(DomainError):
    """A Renja, distribution, receipt link or webhook that does not exist here (HTTP 404)."""

    code = "not_found"
    http_status = 404


class InvalidRequest(DomainError):
    """A request the models accept but the notifier refuses (a future receipt, a bad webhook; HTTP 422)."""

    code = "invalid_request"
    http_status = 422


def token_sha256(token: str) -> str:
    """Receipt tokens are stored hashed: the database alone does not let anyone acknowledge a receipt."""
    return hashlib.sha256(token.encode()).hexdigest()


def received_at(value: datetime | None, now: datetime) -> datetime:
    """The receipt time to record (UTC): ``value``, or ``now`` when not given.

    Raises ``InvalidRequest`` (422) when ``value`` is more than ``CLOCK_SKEW`` after ``now``.
    """
    if value is None:
        return now
    if value > now + CLOCK_SKEW:
        raise InvalidRequest("received_at is in the future; give the moment the Renja was received (UTC).")
    return value
