"""The SQL of the audit projection: the reads the API and ``verify`` need (cycles, one Renja's stored
chain, its timeline, the offsets), and the statements the projector runs for one batch.

Everything here reads the live tables (``services.audit.tables.LIVE``) unless a table set is given.
The batch writes (``copy_events`` … ``advance_offsets``) run inside the caller's transaction; what they
write, and in which order, is decided by ``services.audit.projector``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.audit.hashchain import ChainEntry, Published
from services.audit.tables import LIVE, TableSet
from services.audit.timeline import Timeline, build_timeline, steps_from_sop
from services.audit.workcalendar import WorkCalendar
from shared.events import Event, parse_event
from shared.sop import SopDefinition


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One ``audit_events`` row: the chain entry, the record as published (what the hashes cover), the
    event JSON the pages show (:func:`record_json` of that record), and where it sat in Kafka."""

    entry: ChainEntry
    published: Published
    event_json: dict[str, Any]
    partition: int
    offset: int


def record_json(p: Published) -> dict[str, Any]:
    """The event JSON shown and queried for a published record: its value parsed as JSON, with
    ``event_type`` (the ``ce_type`` header) first. Depends on the bytes only, never on an event model.
    ``NaN``/``Infinity`` (which JSON and ``jsonb`` lack) become the strings ``"NaN"``/``"Infinity"``.

    Raises ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) for a value that is not JSON.
    """
    return {"event_type": p.ce_type.decode(), **json.loads(p.value, parse_constant=str)}


def event_from_json(data: dict[str, Any]) -> Event:
    """The event model back from its stored JSON (``{"event_type": ..., **fields}``), read as every
    consumer reads (an old version upcast to the current model, fields the model does not know ignored).

    Raises ``UnknownEventType`` for an unknown type and ``pydantic.ValidationError`` for altered content.
    """
    fields = {k: v for k, v in data.items() if k != "event_type"}
    return parse_event(data["event_type"], fields)


def _published(r: asyncpg.Record) -> Published:
    """The published record kept in an ``audit_events`` row (headers stored as text, exact: the decoder
    refuses a header that is not UTF-8, and these five are checked against the event)."""
    subject, time = r["ce_subject"], r["ce_time"]
    return Published(
        key=bytes(r["record_key"]),
        ce_id=r["ce_id"].encode(),
        ce_type=r["ce_type"].encode(),
        ce_source=r["ce_source"].encode(),
        ce_subject=None if subject is None else subject.encode(),
        ce_time=None if time is None else time.encode(),
        value=bytes(r["value"]),
        signature_key_id=None if r["signature_key_id"] is None else r["signature_key_id"].encode(),
        signature=None if r["signature"] is None else r["signature"].encode(),
    )


async def load_stored(conn: asyncpg.Connection, renja_id: UUID, tables: TableSet = LIVE) -> list[StoredEvent]:
    """The stored chain of one Renja in position order (empty if unknown)."""
    rows = await conn.fetch(
        f"SELECT position, event_id, event_hash, chain_hash, event::text AS event, kafka_partition, kafka_offset,"
        f" record_key, ce_id, ce_type, ce_source, ce_subject, ce_time, value, signature_key_id, signature"
        f" FROM {tables.events} WHERE renja_id = $1 ORDER BY position",
        renja_id,
    )
    return [
        StoredEvent(
            entry=ChainEntry(r["position"], str(r["event_id"]), r["event_hash"], r["chain_hash"]),
            published=_published(r),
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
    """Every Renja cycle the audit has seen, oldest first, with how many anomalies were flagged on it."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT renja_id, opd, fiscal_year, status, current_step, events, first_at, last_at,"
        f" signed_position IS NOT NULL AS head_signed,"
        f" (SELECT count(*) FROM {tables.anomalies} a WHERE a.renja_id = c.renja_id)::int AS anomalies"
        f" FROM {tables.cycles} c ORDER BY first_at, renja_id"
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
    return build_timeline(events, steps_from_sop(sop), calendar, as_of=as_of, sop=sop)


# --- the fold's statements (one batch, the caller's transaction) ------------------------------------

EVENT_COLUMNS: tuple[str, ...] = (
    "kafka_partition",
    "kafka_offset",
    "event_id",
    "renja_id",
    "position",
    "event_type",
    "source",
    "actor_name",
    "actor_nip",
    "actor_role",
    "occurred_at",
    "step_number",
    "draft_version",
    "content_sha256",
    "event",
    "event_hash",
    "chain_hash",
    "record_key",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_subject",
    "ce_time",
    "value",
    "signature_key_id",
    "signature",
)
"""The columns of an ``audit_events`` row as :func:`copy_events` takes it, in order."""

_UPSERT_CYCLES = """INSERT INTO {cycles} (renja_id, opd, fiscal_year, status, current_step, events,
       head_position, head_hash, first_at, last_at, signed_position, signed_hash, signature_b64, state)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
   ON CONFLICT (renja_id) DO UPDATE SET opd = EXCLUDED.opd, fiscal_year = EXCLUDED.fiscal_year,
       status = EXCLUDED.status, current_step = EXCLUDED.current_step, events = EXCLUDED.events,
       head_position = EXCLUDED.head_position, head_hash = EXCLUDED.head_hash,
       last_at = EXCLUDED.last_at, signed_position = EXCLUDED.signed_position,
       signed_hash = EXCLUDED.signed_hash, signature_b64 = EXCLUDED.signature_b64,
       state = EXCLUDED.state"""


@dataclass(frozen=True, slots=True)
class Known:
    """An event id already chained: its Renja, chain ``position`` and ``event_hash`` (of the bytes first
    stored under that id, so a later record with the same id and other bytes can be told apart)."""

    renja_id: UUID
    position: int
    event_hash: str


async def known_event_ids(conn: asyncpg.Connection, tables: TableSet, event_ids: list[UUID]) -> dict[UUID, Known]:
    """The ids among ``event_ids`` already stored in ``tables.events``, with where and what was stored."""
    rows = await conn.fetch(
        f"SELECT event_id, renja_id, position, event_hash FROM {tables.events} WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    return {r[0]: Known(r[1], r[2], r[3]) for r in rows}


ANOMALY_COLUMNS: tuple[str, ...] = (
    "kafka_partition",
    "kafka_offset",
    "event_id",
    "renja_id",
    "position",
    "kind",
    "step_number",
    "message",
    "event_type",
    "actor_role",
    "occurred_at",
)
"""The columns of an ``audit_anomalies`` row as :func:`insert_anomalies` takes it, in order."""


async def insert_anomalies(conn: asyncpg.Connection, tables: TableSet, rows: list[tuple[Any, ...]]) -> None:
    """Record ``rows`` (``ANOMALY_COLUMNS`` order), once per Kafka record."""
    columns = ", ".join(ANOMALY_COLUMNS)
    params = ", ".join(f"${i}" for i in range(1, len(ANOMALY_COLUMNS) + 1))
    await conn.executemany(
        f"INSERT INTO {tables.anomalies} ({columns}) VALUES ({params}) ON CONFLICT DO NOTHING",
        rows,
    )


@dataclass(frozen=True, slots=True)
class StoredAnomaly:
    """One ``audit_anomalies`` row (see migration ``audit_0004``)."""

    kind: str
    position: int | None
    step_number: int | None
    message: str
    event_id: str
    event_type: str
    actor_role: str
    occurred_at: datetime
    partition: int
    offset: int


async def load_anomalies(
    conn: asyncpg.Connection, renja_id: UUID, tables: TableSet = LIVE, *, position: int | None = None
) -> list[StoredAnomaly]:
    """The anomalies recorded for one Renja, in log order (up to chain ``position`` when given)."""
    query = (
        f"SELECT kind, position, step_number, message, event_id, event_type, actor_role, occurred_at,"
        f" kafka_partition, kafka_offset FROM {tables.anomalies} WHERE renja_id = $1"
    )
    args: list[Any] = [renja_id]
    if position is not None:
        query += " AND position <= $2"
        args.append(position)
    rows = await conn.fetch(query + " ORDER BY kafka_partition, kafka_offset", *args)
    return [
        StoredAnomaly(
            r["kind"], r["position"], r["step_number"], r["message"], str(r["event_id"]), r["event_type"],
            r["actor_role"], r["occurred_at"], r["kafka_partition"], r["kafka_offset"],
        )
        for r in rows
    ]  # fmt: skip


async def anomaly_counts(conn: asyncpg.Connection, tables: TableSet = LIVE) -> dict[str, int]:
    """``{kind: rows}`` over the whole projection."""
    rows = await conn.fetch(f"SELECT kind, count(*) FROM {tables.anomalies} GROUP BY kind")
    return {r[0]: int(r[1]) for r in rows}


async def load_heads(conn: asyncpg.Connection, tables: TableSet, renja_ids: list[UUID]) -> list[asyncpg.Record]:
    """The ``audit_cycles`` rows of ``renja_ids`` (the chain heads and the folded state as JSON)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT renja_id, state, head_position, head_hash, first_at, last_at, signed_position,"
        f" signed_hash, signature_b64 FROM {tables.cycles} WHERE renja_id = ANY($1::uuid[])",
        renja_ids,
    )
    return rows


async def copy_events(conn: asyncpg.Connection, tables: TableSet, rows: list[tuple[Any, ...]]) -> None:
    """Append ``rows`` (``EVENT_COLUMNS`` order) to ``tables.events`` with one ``COPY``."""
    await conn.copy_records_to_table(tables.events, records=rows, columns=EVENT_COLUMNS)


async def upsert_cycles(conn: asyncpg.Connection, tables: TableSet, rows: list[tuple[Any, ...]]) -> None:
    """Insert or update ``rows`` in ``tables.cycles``, pipelined; each row is ``(renja_id, opd,
    fiscal_year, status, current_step, events, head_position, head_hash, first_at, last_at,
    signed_position, signed_hash, signature_b64, state JSON)``; ``first_at`` is kept from the first insert."""
    await conn.executemany(_UPSERT_CYCLES.format(cycles=tables.cycles), rows)


async def insert_rejects(conn: asyncpg.Connection, tables: TableSet, rejects: list[tuple[int, int, str, str]]) -> None:
    """Record ``(partition, offset, reason, detail)`` of records that are not our events (once each)."""
    await conn.executemany(
        f"INSERT INTO {tables.rejects} (kafka_partition, kafka_offset, reason, detail)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        rejects,
    )


async def advance_offsets(conn: asyncpg.Connection, tables: TableSet, offsets: dict[int, int]) -> None:
    """Set each partition's next offset to fold, never moving one backwards."""
    await conn.executemany(
        f"INSERT INTO {tables.offsets} (kafka_partition, next_offset) VALUES ($1, $2)"
        " ON CONFLICT (kafka_partition) DO UPDATE SET next_offset = GREATEST("
        f"{tables.offsets}.next_offset, EXCLUDED.next_offset)",
        sorted(offsets.items()),
    )


async def renja_in_two_partitions(conn: asyncpg.Connection, tables: TableSet) -> UUID | None:
    """A Renja whose events sit in more than one partition of ``tables.events``, or None (the premise
    of a replay split by partition)."""
    found: UUID | None = await conn.fetchval(
        f"SELECT renja_id FROM {tables.events} GROUP BY renja_id HAVING count(DISTINCT kafka_partition) > 1 LIMIT 1"
    )
    return found
