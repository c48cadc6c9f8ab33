"""The per-service event store: an append-only ``events`` table that doubles as the transactional outbox.

Invariants:
- ``UNIQUE(stream_id, version)``: optimistic concurrency — of two appends at the same expected version
  exactly one commits, the other raises ``ConcurrencyConflict``;
- ``UNIQUE(event_id)``: an event is stored once; re-appending the same event id raises ``DuplicateEvent``;
- the rows are written in the caller's transaction, so events, their outbox flag and the state change
  commit (or roll back) together; a ``NOTIFY`` on ``outbox_<service>`` wakes the relay at commit time;
- stream = Renja id; ``version`` is the service's view of the Renja's version (own and consumed events);
- each row keeps the exact bytes it is published with (``payload``) and the service's Ed25519 signature
  over them and the identifying headers (``signature``, ``signature_key_id``; ``shared.origin``), written
  with the row: whoever sends the row later (relay, publish-on-commit, republish) sends that signature.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from uuid import UUID

import asyncpg

from shared.cloudevents import build_headers, encode_data
from shared.events import Event, parse_event
from shared.origin import Signer, service_signer


class ConcurrencyConflict(Exception):
    """Another writer appended to ``stream_id`` at ``expected_version`` first (HTTP 409 after retries)."""

    def __init__(self, stream_id: UUID, expected_version: int) -> None:
        super().__init__(f"stream {stream_id} moved past version {expected_version}; reload and retry")
        self.stream_id = stream_id
        self.expected_version = expected_version


class DuplicateEvent(Exception):
    """An event with this id is already stored."""


MAX_EVENT_BYTES = 256 * 1024
"""Largest event data accepted (bytes of JSON). Kafka's default record limit is 1 MiB; an event the
broker would refuse must never enter the outbox, where it would wait forever (HTTP 413 instead)."""


class EventTooLarge(ValueError):
    """An event's JSON data exceeds ``MAX_EVENT_BYTES``; nothing was stored."""


def notify_channel(service: str) -> str:
    return f"outbox_{service}"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    stream_id: UUID
    version: int
    event: Event
    published: bool


async def append(
    conn: asyncpg.Connection,
    *,
    service: str,
    stream_id: UUID,
    expected_version: int,
    events: Sequence[Event],
    traceparent: str | None = None,
    tracestate: str | None = None,
    signer: Signer | None = None,
) -> int:
    """Append ``events`` to ``stream_id`` at versions ``expected_version+1 …`` inside the caller's transaction.

    Each event is signed by ``signer`` (default: this process's key of ``service``,
    ``shared.origin.service_signer``) over the record it will be published as.
    Returns the new stream version. Raises ``EventTooLarge`` (before writing anything),
    ``ConcurrencyConflict`` or ``DuplicateEvent``; the caller's
    transaction is then unusable and must be rolled back (use ``async with conn.transaction()``).
    """
    if not events:
        return expected_version
    trace_context = {"traceparent": traceparent, "tracestate": tracestate}
    headers = json.dumps({k: v for k, v in trace_context.items() if v})
    encoded = [encode_data(e) for e in events]
    for event, data in zip(events, encoded, strict=True):
        if len(data) > MAX_EVENT_BYTES:
            raise EventTooLarge(
                f"{event.event_type} would be {len(data):,} bytes; at most {MAX_EVENT_BYTES:,} fit in the event log"
            )
    sign = signer or service_signer(service)
    rows = [
        (
            e.event_id,
            stream_id,
            expected_version + i + 1,
            e.event_type,
            e.source,
            e.occurred_at,
            data.decode(),
            headers,
            data,
            _signature(sign, stream_id, e, data),
            sign.key_id,
        )
        for i, (e, data) in enumerate(zip(events, encoded, strict=True))
    ]
    try:
        await conn.executemany(
            """INSERT INTO events (event_id, stream_id, version, event_type, source, occurred_at, data, headers,
                                   payload, signature, signature_key_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11)""",
            rows,
        )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "events_stream_version_key":
            raise ConcurrencyConflict(stream_id, expected_version) from exc
        raise DuplicateEvent(str(exc)) from exc
    await conn.execute("SELECT pg_notify($1, '')", notify_channel(service))
    return expected_version + len(events)


def _signature(signer: Signer, stream_id: UUID, event: Event, data: bytes) -> str:
    """The signature of the record ``shared.cloudevents.record_from_row`` will make of this event's row."""
    headers = build_headers(
        event_id=event.event_id,
        source=event.source,
        event_type=event.event_type,
        time=event.occurred_at.astimezone(UTC),
        subject=stream_id,
        dataschema_base="",  # not signed (a deployment's URL)
    )
    return signer.signature(str(stream_id).encode(), data, headers)


async def stream_version(conn: asyncpg.Connection, stream_id: UUID) -> int:
    """Highest stored version of ``stream_id`` in this database (0 when empty)."""
    value = await conn.fetchval("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1", stream_id)
    return int(value)


def _row_to_stored(row: Any) -> StoredEvent:
    return StoredEvent(
        seq=row["seq"],
        stream_id=row["stream_id"],
        version=row["version"],
        event=parse_event(row["event_type"], row["data"]),
        published=row["published_at"] is not None,
    )


async def load_stream(conn: asyncpg.Connection, stream_id: UUID) -> list[StoredEvent]:
    """Every event this service stored for ``stream_id``, in version order."""
    rows = await conn.fetch(
        "SELECT seq, stream_id, version, event_type, data::text AS data, published_at FROM events"
        " WHERE stream_id = $1 ORDER BY version",
        stream_id,
    )
    return [_row_to_stored(r) for r in rows]


async def all_event_ids(conn: asyncpg.Connection) -> set[UUID]:
    """The ids of every event this service produced (for ``renja reconcile``)."""
    return {r["event_id"] for r in await conn.fetch("SELECT event_id FROM events")}
