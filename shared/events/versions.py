"""Every version of every event type: the current models (``EVENT_TYPES``) and the upcasters from older ones.

The log is kept forever, so a reader meets records of every version ever published. A change that adds a
required field, or changes a field, is a new version (``renja.<Name>.v<N+1>``) and one pure upcaster from
the old version's data to the next (docs/events.md "Versions"); every reader (``shared.cloudevents
.from_kafka``, ``shared.events.parse_event``) applies the chain before validating against the current model.
The published bytes are never rewritten: the audit hashes them as they are (issue 10, item 3).

Invariants (``tests/unit/test_event_versions.py``):
- every key of ``UPCASTERS`` is an old type, never a current one, and its chain ends at a current type;
- an upcaster is pure: it returns a new dict and leaves its argument untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.events.models import (
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    DraftReturned,
    Event,
    Initialed,
    MeetingHeld,
    ReceiptRecorded,
    RenjaCancelled,
    Signed,
    StepOverdue,
    StepReminderDue,
)

EVENT_TYPES: dict[str, type[Event]] = {
    DirectiveIssued.event_type: DirectiveIssued,
    DataCollected.event_type: DataCollected,
    DraftCreated.event_type: DraftCreated,
    MeetingHeld.event_type: MeetingHeld,
    Initialed.event_type: Initialed,
    Signed.event_type: Signed,
    DraftReturned.event_type: DraftReturned,
    RenjaCancelled.event_type: RenjaCancelled,
    Distributed.event_type: Distributed,
    ReceiptRecorded.event_type: ReceiptRecorded,
    StepReminderDue.event_type: StepReminderDue,
    StepOverdue.event_type: StepOverdue,
}
"""The current version of each event type: CloudEvents ``type`` → model (what writers produce)."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _directive_issued_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v2 adds the required, nullable ``opd_code`` (the OPD's SIPD unit code); a v1 record never knew it."""
    return {**data, "opd_code": None}


UPCASTERS: dict[str, tuple[str, Upcaster]] = {
    "renja.DirectiveIssued.v1": ("renja.DirectiveIssued.v2", _directive_issued_v1_to_v2),
}
"""Old CloudEvents ``type`` → (the next version's type, the pure function from its data to the next's)."""


def upcast(ce_type: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(type, data)`` of an old version carried up to the current version by the chain of upcasters.

    A current type, or a type nobody knows, comes back unchanged (``is_known`` tells them apart).
    """
    while ce_type in UPCASTERS:
        ce_type, step = UPCASTERS[ce_type]
        data = step(data)
    return ce_type, data


def is_upcastable(ce_type: str) -> bool:
    """True for an old version that an upcaster chain carries to a current type."""
    return ce_type in UPCASTERS


def is_known(ce_type: str) -> bool:
    """True for a type this release reads: a current type, or an old version it upcasts."""
    return ce_type in EVENT_TYPES or ce_type in UPCASTERS
