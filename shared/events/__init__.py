"""The published language (see ``models``) and its registry ``EVENT_TYPES``: CloudEvents ``type`` → model.

Invariant: every concrete event class appears exactly once in ``EVENT_TYPES`` under its ``event_type``; older
versions of a type are read through their upcasters (``versions``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import ValidationError

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
    OpdIdentity,
    OpdUnit,
    ReceiptRecorded,
    Recipient,
    RenjaCancelled,
    RequestedChange,
    Role,
    ServiceName,
    Signed,
    StepOverdue,
    StepReminderDue,
    UnitDelivery,
)
from shared.events.versions import EVENT_TYPES, UPCASTERS, is_known, upcast


class UnknownEventType(ValueError):
    """The CloudEvents ``type`` is not in the registry (a newer producer, or garbage)."""


def parse_event(event_type: str, data: dict[str, Any] | bytes | str) -> Event:
    """Build the current event model for ``event_type`` (current, or an old version carried up by its
    upcasters, ``versions.upcast``) from JSON data, as a tolerant reader (``read_tolerantly``).

    Raises ``UnknownEventType`` for a type this release does not know and ``pydantic.ValidationError`` for
    bad data (``json.JSONDecodeError`` for old-version data that is not JSON).
    """
    if event_type in UPCASTERS:
        fields = data if isinstance(data, dict) else json.loads(data)
        event_type, data = upcast(event_type, fields)
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    return read_tolerantly(model, data)


def read_tolerantly(model: type[Event], data: dict[str, Any] | bytes | str) -> Event:
    """Validate ``data`` as ``model`` ignoring fields the model does not know, at any depth.

    The models forbid unknown fields, so writers (who build events in code) stay strict; a reader must
    accept what a newer producer added (docs/events.md: additive changes only, readers ignore unknown
    fields). Only ``extra_forbidden`` errors are forgiven: the fields they name are dropped and the rest
    is validated as strictly as ever. Raises ``pydantic.ValidationError`` for anything else.
    """
    try:
        if isinstance(data, dict):
            return model.model_validate(data)
        return model.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not errors or any(e["type"] != "extra_forbidden" for e in errors):
            raise
        known = json.loads(data) if not isinstance(data, dict) else copy.deepcopy(data)
        for error in errors:
            _drop(known, error["loc"])
        return model.model_validate(known)


def _drop(data: Any, loc: tuple[int | str, ...]) -> None:
    """Remove the value at path ``loc`` (keys and list indexes) from nested ``data``, if it is there."""
    for step in loc[:-1]:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(loc[-1], None)


__all__ = [
    "EVENT_TYPES",
    "UPCASTERS",
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
    "OpdIdentity",
    "OpdUnit",
    "ReceiptRecorded",
    "Recipient",
    "RenjaCancelled",
    "RequestedChange",
    "Role",
    "ServiceName",
    "Signed",
    "StepOverdue",
    "StepReminderDue",
    "UnitDelivery",
    "UnknownEventType",
    "is_known",
    "parse_event",
    "read_tolerantly",
    "upcast",
]
