"""The audit projection's fold: batches of ``renja.events`` records written into one table set.

This module owns how Kafka records become audit rows, for the live projection and for a rebuild alike
(one code path, so a rebuild from offset 0 can be compared row by row with the live tables):

- ``audit_events``: one row per distinct event id, in log order per Renja, with its log position
  (partition, offset), actor, step, draft version/hash, the record as published (Kafka key, identifying
  ``ce_*`` headers, value bytes), the event JSON shown (``store.record_json`` of those bytes),
  ``event_hash`` and ``chain_hash`` over the published bytes (``services.audit.hashchain``) and its
  ``position`` in the Renja's chain (from 1);
- ``audit_cycles``: one row per Renja: OPD, year, status and due step (``shared.sop.evolve``), the chain
  head, and for a closed cycle (distributed or cancelled) the head signed with the audit's Ed25519 key
  (re-signed whenever a later event, e.g. a receipt, extends the chain);
- ``audit_offsets``: the next offset to fold per partition, written in the SAME transaction as the rows,
  so a crash mid-batch rolls back rows and offsets together and the batch is simply folded again;
- ``audit_rejects``: records that are not our CloudEvents (skipped, with the reason);
- ``audit_anomalies``: each record the SOP would not have decided where it stands on the log
  (``shared.sop.classify`` against the state folded so far: unknown Renja, wrong role, out of order, a
  second completion, anything but a receipt after a cancellation), and each record that repeats a stored
  event id with other bytes (``duplicate_id``). A flagged event is still chained and folded: the log is
  the log, the flag says what it means.

Invariants: an event id already stored (or repeated within a batch) is skipped before the chain is
extended, so duplicate delivery changes nothing (the same bytes again are silent; other bytes under the
same id are an anomaly, never chained); rows are written with one ``COPY`` per batch and the
cycles with one pipelined upsert, never one round trip per event.

Who calls it: ``services.audit.live`` (the live consumer) and ``services.audit.replay`` (a rebuild).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import store
from services.audit.hashchain import (
    CHAIN_DOMAIN,
    GENESIS,
    Published,
    event_hash,
    published_from_record,
    record_bytes,
    sign_head,
)
from services.audit.logreader import DecodedBatch, Record, decode_batch
from services.audit.tables import LIVE, TableSet
from services.audit.timeline import version_and_hash
from shared.events import Event
from shared.sop import CLOSED, Anomaly, RenjaState, SopDefinition, classify, evolve

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Cycle:
    """What the fold needs to know about one Renja between events (a row of ``audit_cycles``)."""

    renja_id: UUID
    state: RenjaState
    head_position: int = 0
    head_hash: str = GENESIS
    first_at: datetime | None = None
    last_at: datetime | None = None
    signed_position: int | None = None
    signed_hash: str | None = None
    signature_b64: str | None = None


@dataclass
class BatchResult:
    """Counts of one folded batch: ``applied`` new events, ``duplicates`` skipped, ``rejected`` records,
    ``anomalies`` recorded per kind."""

    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    offsets: dict[int, int] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)


class Projector:
    """Folds batches of Kafka records into one :class:`TableSet`, inside the caller's transaction.

    ``keep_cache=False`` (live): the per-Renja heads are read from the tables at every batch, so nothing
    held in memory can disagree with the database after a rollback or a swap. ``keep_cache=True``
    (rebuild, sole writer of its tables): heads stay in memory between batches (at most ``cache_max``).
    """

    def __init__(
        self,
        sop: SopDefinition,
        signing_key: Ed25519PrivateKey,
        tables: TableSet = LIVE,
        *,
        keep_cache: bool = False,
        cache_max: int = 200_000,
    ) -> None:
        self.sop = sop
        self.skipped_unknown: dict[str, int] = {}
        """Records of event types this release does not know, per ``ce_type`` (skipped, as every reader)."""
        self.key = signing_key
        self.tables = tables
        self.keep_cache = keep_cache
        self.cache_max = cache_max
        self._cycles: dict[UUID, Cycle] = {}

    def forget(self) -> None:
        """Drop the in-memory heads (after a failed transaction)."""
        self._cycles.clear()

    async def apply(self, conn: asyncpg.Connection, records: Sequence[Record]) -> BatchResult:
        """Fold ``records`` (any partitions, each partition's records in offset order) into the tables.

        Must run inside a transaction: rows, cycles and offsets commit together or not at all.
        Never raises for a bad record (it is stored in the rejects table); raises asyncpg errors.
        """
        return await self.apply_decoded(conn, decode_batch(records))

    async def apply_decoded(self, conn: asyncpg.Connection, batch: DecodedBatch) -> BatchResult:
        """:meth:`apply` for a batch already decoded by :func:`decode_batch` (same contract).

        The split lets a rebuild decode the next batch while this one is written (see ``replay``).
        """
        result = BatchResult(offsets=dict(batch.offsets))
        if not batch.size:
            return result
        if not self.keep_cache or len(self._cycles) > self.cache_max:
            self._cycles.clear()
        known = await store.known_event_ids(conn, self.tables, [ev.event_id for _, ev in batch.events])
        await self._load_heads(conn, batch.events)
        rows, touched, anomalies = self._fold(batch.events, known, result)
        result.applied = len(rows)
        if rows:
            await store.copy_events(conn, self.tables, rows)
        if anomalies:
            await store.insert_anomalies(conn, self.tables, anomalies)
            for row in anomalies:
                result.anomalies[row[5]] = result.anomalies.get(row[5], 0) + 1
                log.warning(
                    "audit_anomaly", kind=row[5], renja_id=str(row[3]), event_id=str(row[2]), position=row[4],
                    partition=row[0], offset=row[1], detail=row[7],
                )  # fmt: skip
        if touched:
            await store.upsert_cycles(conn, self.tables, self._cycle_rows(touched))
        self._note_skipped(batch.skipped)
        if batch.rejects:
            await store.insert_rejects(conn, self.tables, batch.rejects)
            result.rejected = len(batch.rejects)
            for partition, offset, reason, _ in batch.rejects:
                log.warning("audit_record_rejected", partition=partition, offset=offset, reason=reason)
        await store.advance_offsets(conn, self.tables, result.offsets)
        return result

    def _note_skipped(self, skipped: list[tuple[int, int, str]]) -> None:
        """Count the records of unknown event types (not folded, not rejected); log each type once."""
        for partition, offset, ce_type in skipped:
            seen = self.skipped_unknown.get(ce_type, 0)
            self.skipped_unknown[ce_type] = seen + 1
            if seen == 0:
                log.info("audit_unknown_event_type_skipped", ce_type=ce_type, partition=partition, offset=offset)

    async def _load_heads(self, conn: asyncpg.Connection, decoded: list[tuple[Record, Event]]) -> None:
        """Read into the cache the stored head of every Renja of the batch not cached yet."""
        missing = {ev.renja_id for _, ev in decoded if ev.renja_id not in self._cycles}
        if not missing:
            return
        for row in await store.load_heads(conn, self.tables, list(missing)):
            self._cycles[row["renja_id"]] = Cycle(
                renja_id=row["renja_id"],
                state=RenjaState.model_validate_json(row["state"]),
                head_position=row["head_position"],
                head_hash=row["head_hash"],
                first_at=row["first_at"],
                last_at=row["last_at"],
                signed_position=row["signed_position"],
                signed_hash=row["signed_hash"],
                signature_b64=row["signature_b64"],
            )

    def _fold(
        self, decoded: list[tuple[Record, Event]], known: dict[UUID, store.Known], result: BatchResult
    ) -> tuple[list[tuple[Any, ...]], list[Cycle], list[tuple[Any, ...]]]:
        """Extend the chains with the batch's new events: the ``audit_events`` rows (``store.EVENT_COLUMNS``),
        the cycles they moved and the ``audit_anomalies`` rows (``store.ANOMALY_COLUMNS``). Counts skipped
        duplicates in ``result``; adds new ids to ``known``."""
        rows: list[tuple[Any, ...]] = []
        anomalies: list[tuple[Any, ...]] = []
        touched: dict[UUID, Cycle] = {}
        cycles = self._cycles
        sha256 = hashlib.sha256  # the loop runs once per event of the log: names bound locally
        for rec, ev in decoded:
            event_id = ev.event_id
            seen = known.get(event_id)
            if seen is not None:
                result.duplicates += 1
                published = published_from_record(rec.key, rec.value, rec.headers)
                if event_hash(record_bytes(published)) != seen.event_hash:
                    # the same id with other bytes: a bug or a forgery; the first record stays the chained one
                    message = f"event id {event_id} seen again with other bytes (first at position {seen.position})"
                    duplicate = Anomaly("duplicate_id", None, message)
                    anomalies.append(_anomaly_row(rec, ev, seen.renja_id, seen.position, duplicate))
                continue
            renja_id = ev.renja_id
            cycle = cycles.get(renja_id)
            if cycle is None:
                cycle = cycles[renja_id] = Cycle(renja_id=renja_id, state=RenjaState())
            published = published_from_record(rec.key, rec.value, rec.headers)
            raw = record_bytes(published)
            # hashchain.chain_hash, inlined: the prefix is always a stored 64-hex link or GENESIS
            link = sha256(CHAIN_DOMAIN + cycle.head_hash.encode("ascii") + b"\n" + raw).hexdigest()
            position = cycle.head_position = cycle.head_position + 1
            cycle.head_hash = link
            entry_hash = sha256(raw).hexdigest()
            known[event_id] = store.Known(renja_id, position, entry_hash)
            flag = classify(cycle.state, ev, self.sop)
            if flag is not None:
                anomalies.append(_anomaly_row(rec, ev, renja_id, position, flag))
            before = cycle.state.completed_steps
            cycle.state = evolve(cycle.state, ev, self.sop)
            # The step this event completed, as the one fold says (an event that raced a cancellation
            # completes nothing): the step that is now done and was not before.
            step_number = next((n for n in cycle.state.completed_steps if n not in before), None)
            occurred_at = ev.occurred_at
            if cycle.first_at is None:
                cycle.first_at = occurred_at
            cycle.last_at = occurred_at
            touched[renja_id] = cycle
            version, sha = version_and_hash(ev)
            actor = ev.actor
            rows.append(
                (
                    rec.partition, rec.offset, event_id, renja_id, position, ev.event_type, ev.source,
                    actor.name, actor.nip, actor.role, occurred_at, step_number, version, sha,
                    _shown(published), entry_hash, link, *_published_columns(published),
                )
            )  # fmt: skip
        return rows, list(touched.values()), anomalies

    def _cycle_rows(self, cycles: Iterable[Cycle]) -> list[tuple[Any, ...]]:
        """The ``audit_cycles`` rows (``store.upsert_cycles``) of the cycles a batch moved; a closed
        cycle whose head moved since it was signed is signed again first."""
        rows = []
        for c in cycles:
            if c.state.status in CLOSED and c.signed_position != c.head_position:
                # a completed Renja's head is vouched for; a later receipt moves the head, so sign again
                c.signed_position, c.signed_hash = c.head_position, c.head_hash
                c.signature_b64 = sign_head(self.key, c.renja_id, c.head_position, c.head_hash)
            s = c.state
            rows.append(
                (
                    c.renja_id, s.opd or None, s.fiscal_year, s.status, s.due_step, c.head_position,
                    c.head_position, c.head_hash, c.first_at, c.last_at, c.signed_position, c.signed_hash,
                    c.signature_b64, s.model_dump_json(),
                )
            )  # fmt: skip
        return rows


def _anomaly_row(rec: Record, ev: Event, renja_id: UUID, position: int, flag: Anomaly) -> tuple[Any, ...]:
    """An ``audit_anomalies`` row (``store.ANOMALY_COLUMNS``) for the record ``rec`` of event ``ev``."""
    return (
        rec.partition, rec.offset, ev.event_id, renja_id, position, flag.kind, flag.step, flag.message,
        ev.event_type, ev.actor.role, ev.occurred_at,
    )  # fmt: skip


def _shown(published: Published) -> str:
    """The ``event`` column (JSON text) of a record: ``store.record_json``, from the bytes alone.

    Fast path (every record our producers send): the value's UTF-8 JSON text with ``"event_type"`` spliced
    in as the object's first member; Postgres parses it into ``jsonb`` (a later duplicate ``event_type``
    wins there, as in ``record_json``). Anything else (not UTF-8, a BOM, possible ``NaN``/``Infinity``)
    goes through ``record_json`` and ``json.dumps``.
    """
    value = published.value
    if b"NaN" not in value and b"Infinity" not in value:
        try:
            text = value.decode("utf-8").lstrip()
        except UnicodeDecodeError:
            text = ""
        if text.startswith("{") and not text[1:].lstrip().startswith("}"):
            return '{"event_type":' + json.dumps(published.ce_type.decode()) + "," + text[1:]
    return json.dumps(store.record_json(published), ensure_ascii=False, separators=(",", ":"))


def _published_columns(
    p: Published,
) -> tuple[bytes, str, str, str, str | None, str | None, bytes, str | None, str | None]:
    """The record as published, as the last ``store.EVENT_COLUMNS`` (``record_key`` … ``signature``).

    Headers become text: the decoder has refused any record whose headers are not UTF-8.
    """
    return (
        p.key,
        p.ce_id.decode(),
        p.ce_type.decode(),
        p.ce_source.decode(),
        None if p.ce_subject is None else p.ce_subject.decode(),
        None if p.ce_time is None else p.ce_time.decode(),
        p.value,
        None if p.signature_key_id is None else p.signature_key_id.decode(),
        None if p.signature is None else p.signature.decode(),
    )
