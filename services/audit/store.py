"""Reads of the audit projection: cycles, one Renja's stored events and chain, its timeline, the offsets.

Everything here reads the live tables (``services.audit.tables.LIVE``) unless a table set is given.
The fold's writes are in ``services.audit.projector`` (one batch, one transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.audit.hashchain import ChainEntry
from services.audit.tables import LIVE, TableSet
from services.audit.timeline import Timeline, build_timeline, steps_from_sop
from services.audit.workcalendar import WorkCalendar
from shared.events import EVENT_TYPES, Event
from shared.sop import SopDefinition


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One ``audit_events`` row: the chain entry, the event JSON as hashed, and where it sat in Kafka."""

    entry: ChainEntry
    event_json: dict[str, Any]
    partition: int
    offset: int


def event_from_json(data: dict[str, Any]) -> Event:
    """The event model back from its hashed JSON (``{"event_type": ..., **fields}``).

    Raises ``KeyError`` for an unknown type and ``pydantic.ValidationError`` for altered content.
    """
    fields = {k: v for k, v in data.items() if k != "event_type"}
    return EVENT_TYPES[data["event_type"]].model_validate(fields)


async def load_stored(conn: asyncpg.Connection, renja_id: UUID, tables: TableSet = LIVE) -> list[StoredEvent]:
    """The stored chain of one Renja in position order (empty if unknown)."""
    rows = await conn.fetch(
        f"SELECT position, event_id, event_hash, chain_hash, event::text AS event, kafka_partition, kafka_offset"
        f" FROM {tables.events} WHERE renja_id = $1 ORDER BY position",
        renja_id,
    )
    return [
        StoredEvent(
            entry=ChainEntry(r["position"], str(r["event_id"]), r["event_hash"], r["chain_hash"]),
            event_json=json.loads(r["event"]),
            partition=r["kafka_partition"],
            offset=r["kafka_offset"],
        )
        for r in rows
    ]


async def stored_offsets(conn: asyncpg.Connection, tables: TableSet = LIVE) -> dict[int, int]:
    """``{partition: next offset to fold}`` of one table set (empty before the first batch)."""
    rows = await conn.fetch(f"SELECT kafka_partition, next_offset FROM {tables.offsets}")
    return {r["kafka_partition"]: r["next_offset"] for r in rows}


async def load_cycle(conn: asyncpg.Connection, renja_id: UUID, tables: TableSet = LIVE) -> asyncpg.Record | None:
    """The ``audit_cycles`` row of one Renja, or None."""
    row: asyncpg.Record | None = await conn.fetchrow(f"SELECT * FROM {tables.cycles} WHERE renja_id = $1", renja_id)
    return row


async def list_cycles(conn: asyncpg.Connection, tables: TableSet = LIVE) -> list[asyncpg.Record]:
    """Every Renja cycle the audit has seen, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT renja_id, opd, fiscal_year, status, current_step, events, first_at, last_at,"
        f" signed_position IS NOT NULL AS head_signed FROM {tables.cycles} ORDER BY first_at, renja_id"
    )
    return rows


async def load_timeline(
    conn: asyncpg.Connection,
    renja_id: UUID,
    sop: SopDefinition,
    calendar: WorkCalendar,
    *,
    as_of: datetime | None = None,
    position: int | None = None,
) -> Timeline | None:
    """One Renja's timeline from the stored events (None if the Renja is unknown).

    ``as_of`` (aware): only events that occurred at or before it; ``position`` (≥ 1): only the first
    ``position`` entries of the chain, i.e. the state as it stood at that log position.
    Raises ``ValueError`` for a naive ``as_of`` or a position below 1.
    """
    if position is not None and position < 1:
        raise ValueError("position counts from 1")
    query = f"SELECT event::text AS event FROM {LIVE.events} WHERE renja_id = $1"
    args: list[Any] = [renja_id]
    if position is not None:
        query += " AND position <= $2"
        args.append(position)
    rows = await conn.fetch(query + " ORDER BY position", *args)
    if not rows:
        return None
    events = [event_from_json(json.loads(r["event"])) for r in rows]
    return build_timeline(events, steps_from_sop(sop), calendar, as_of=as_of)
