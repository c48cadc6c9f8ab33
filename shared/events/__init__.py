"""The published language (see ``models``) and its registry ``EVENT_TYPES``: CloudEvents ``type`` → model.

Invariant: every concrete event class appears exactly once in ``EVENT_TYPES`` under its ``event_type``.
"""

from __future__ import annotations

from typing import Any

from shared.events.models import (
    Actor,
    Attendee,
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    DraftReturned,
    Event,
    FileRef,
    Initialed,
    MeetingHeld,
    ReceiptRecorded,
    Recipient,
    RenjaCancelled,
    RequestedChange,
    Role,
    ServiceName,
    Signed,
    UnitDelivery,
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
}


class UnknownEventType(ValueError):
    """The CloudEvents ``type`` is not in the registry (a newer producer, or garbage)."""


def parse_event(event_type: str, data: dict[str, Any] | bytes | str) -> Event:
    """Build the event model for ``event_type`` from JSON data.

    Raises ``UnknownEventType`` for an unregistered type and ``pydantic.ValidationError`` for bad data.
    """
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    if isinstance(data, dict):
        return model.model_validate(data)
    return model.model_validate_json(data)


__all__ = [
    "EVENT_TYPES",
    "Actor",
    "Attendee",
    "DataCollected",
    "DirectiveIssued",
    "Distributed",
    "DraftCreated",
    "DraftReturned",
    "Event",
    "FileRef",
    "Initialed",
    "MeetingHeld",
    "ReceiptRecorded",
    "Recipient",
    "RenjaCancelled",
    "RequestedChange",
    "Role",
    "ServiceName",
    "Signed",
    "UnitDelivery",
    "UnknownEventType",
    "parse_event",
]
