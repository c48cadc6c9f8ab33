"""``renja republish``: rebuild the event log ``renja.events`` from the services' own ``events`` tables.

The way back when the log is lost (the topic deleted, the cluster rebuilt): every producing service keeps
each event it ever produced, so the log can be written again from them (runbook: ``docs/operations.md``,
*Recovering a lost event log*).

Invariants:
- each record is built from its stored row by ``shared.outbox.row_record``, the function the outbox relay
  publishes with: the same key (the Renja id), value bytes and headers as the relay sent;
- per Renja, each service's events keep their ``seq`` order (the service's commit order); across services
  the order is the audit's chain position where the audit database still holds the event, else the time
  the producing service recorded it (``recorded_at``; a consumed cause is always recorded before what it
  caused), then ``occurred_at``; ``merge`` does this and is pure;
- idempotent: the ids already on the topic are read first and never sent again, so a second run (or a
  run after a partial one) adds only what is missing;
- rows the broker refused for good (set aside by the relay, ``publish_failed_at``) are not sent; they are
  counted for the operator.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
import typer

from services.audit.reconcile import kafka_ids
from services.audit.settings import AuditSettings
from shared.cloudevents import KafkaRecord
from shared.kafka import start_producer
from shared.manifest import PRODUCERS, database_of
from shared.outbox import ROW_COLUMNS, row_record

SEND_CHUNK = 1000
"""Records sent before their acknowledgements are awaited (the producer keeps each partition in order)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as a service stored it, with what ``merge`` orders by and the record it is sent as."""

    service: str
    seq: int
    event_id: UUID
    renja_id: UUID
    recorded_at: datetime
    occurred_at: datetime
    record: KafkaRecord


@dataclass
class RepublishReport:
    """What a run found and did: events per service, sent, already on the topic, set aside (not sent), and
    the Renjas whose events already on the topic are not a prefix of their merged order (their missing
    events are appended after them: look at those Renjas)."""

    stored: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    present: int = 0
    set_aside: int = 0
    renjas: int = 0
    out_of_order: list[UUID] = field(default_factory=list)


def merge(events: Iterable[StoredEvent], positions: Mapping[UUID, int]) -> list[StoredEvent]:
    """``events`` in the order to publish them: Renja by Renja (the Renja first recorded first), each a merge
    of its services' streams that keeps every service's ``seq`` order and otherwise orders by the audit's
    chain position (``positions``, event id → position), then ``recorded_at``, ``occurred_at``, service."""
    streams: dict[UUID, dict[str, list[StoredEvent]]] = defaultdict(lambda: defaultdict(list))
    for e in sorted(events, key=lambda e: (e.service, e.seq)):
        streams[e.renja_id][e.service].append(e)

    def rank(e: StoredEvent) -> tuple[float, datetime, datetime, str]:
        return (positions.get(e.event_id, float("inf")), e.recorded_at, e.occurred_at, e.service)

    def first_recorded(renja: UUID) -> tuple[datetime, str]:
        return min(e.recorded_at for s in streams[renja].values() for e in s), str(renja)

    out: list[StoredEvent] = []
    for renja in sorted(streams, key=first_recorded):
        by_service = streams[renja]
        heads = [(rank(s[0]), name, 0) for name, s in by_service.items()]
        heapq.heapify(heads)
        while heads:
            _, name, i = heapq.heappop(heads)
            stream = by_service[name]
            out.append(stream[i])
            if i + 1 < len(stream):
                heapq.heappush(heads, (rank(stream[i + 1]), name, i + 1))
    return out


async def stored_events(service: str, dsn: str, dataschema_base: str | None) -> tuple[list[StoredEvent], int] | None:
    """Every event ``service`` stored (``seq`` order) and how many of them were set aside; None if its
    database or table does not exist."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        rows = await conn.fetch(
            f"SELECT {ROW_COLUMNS}, recorded_at, publish_failed_at IS NOT NULL AND published_at IS NULL AS set_aside"
            " FROM events ORDER BY seq"
        )
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    out = [
        StoredEvent(
            service=service,
            seq=r["seq"],
            event_id=r["event_id"],
            renja_id=r["stream_id"],
            recorded_at=r["recorded_at"],
            occurred_at=r["occurred_at"],
            record=row_record(r, dataschema_base),
        )
        for r in rows
        if not r["set_aside"]
    ]
    return out, sum(1 for r in rows if r["set_aside"])


async def audit_positions(dsn: str) -> dict[UUID, int]:
    """Event id → chain position in the audit projection; empty if the audit database is gone too."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError):
        return {}
    try:
        return {r["event_id"]: r["position"] for r in await conn.fetch("SELECT event_id, position FROM audit_events")}
    except asyncpg.PostgresError:
        return {}
    finally:
        await conn.close()


def out_of_order(merged: Sequence[StoredEvent], present: Mapping[UUID, str]) -> list[UUID]:
    """The Renjas whose events already on the topic are not a prefix of their merged order."""
    bad: list[UUID] = []
    missing_seen: dict[UUID, bool] = {}
    for e in merged:
        if e.event_id not in present:
            missing_seen[e.renja_id] = True
        elif missing_seen.get(e.renja_id) and (not bad or bad[-1] != e.renja_id):
            bad.append(e.renja_id)
    return bad


async def republish_log(
    *,
    bootstrap: str,
    topic: str,
    service_dsns: Mapping[str, str],
    audit_dsn: str | None,
    dataschema_base: str | None,
    dry_run: bool = False,
) -> RepublishReport:
    """Send to ``topic`` every stored event not on it yet, in ``merge`` order; the report.

    Raises ``LookupError`` if ``topic`` does not exist (create it first: ``renja up`` or the runbook).
    """
    report = RepublishReport()
    events: list[StoredEvent] = []
    for service, dsn in service_dsns.items():
        found = await stored_events(service, dsn, dataschema_base)
        if found is None:
            continue
        rows, set_aside = found
        report.stored[service] = len(rows)
        report.set_aside += set_aside
        events += rows
    positions = await audit_positions(audit_dsn) if audit_dsn else {}
    merged = merge(events, positions)
    report.renjas = len({e.renja_id for e in merged})
    present = await kafka_ids(bootstrap, topic)
    report.out_of_order = out_of_order(merged, present)
    todo = [e for e in merged if e.event_id not in present]
    report.present = len(merged) - len(todo)
    if dry_run or not todo:
        return report
    producer = await start_producer(bootstrap, client_id="renja-republish")
    try:
        for start in range(0, len(todo), SEND_CHUNK):
            futures = []
            for e in todo[start : start + SEND_CHUNK]:
                r = e.record
                futures.append(await producer.send(topic, value=r.value, key=r.key, headers=r.headers))
            await asyncio.gather(*futures)  # acks=all, in order per partition (idempotent producer)
            report.sent += len(futures)
    finally:
        await producer.stop()
    return report


def republish(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be sent; send nothing")] = False,
    use_audit_order: Annotated[
        bool, typer.Option(help="order across services by the audit's chain positions where it has them")
    ] = True,
) -> None:
    """Write renja.events again from the services' own event tables (what is missing on it), Renja by Renja
    in causal order. Stop the services first and create the topic; see docs/operations.md."""
    settings = AuditSettings()
    dsns = {name: settings.postgres_dsn(database_of(name)) for name in PRODUCERS}

    async def run() -> RepublishReport:
        return await republish_log(
            bootstrap=settings.kafka_bootstrap,
            topic=settings.event_topic,
            service_dsns=dsns,
            audit_dsn=settings.postgres_dsn() if use_audit_order else None,
            dataschema_base=settings.schema_base_url,
            dry_run=dry_run,
        )

    try:
        report = asyncio.run(run())
    except LookupError as exc:
        typer.echo(f"{exc}: create the topic first (renja up creates it with the stack's settings)", err=True)
        raise typer.Exit(1) from exc
    stored = ", ".join(f"{name} {count}" for name, count in report.stored.items())
    typer.echo(f"stored events: {stored} ({report.renjas} Renja)")
    to_send = sum(report.stored.values()) - report.present
    typer.echo(
        f"already on {settings.event_topic}: {report.present}; "
        + (f"to send: {to_send}" if dry_run else f"sent: {report.sent}")
    )
    if report.set_aside:
        typer.echo(f"not sent: {report.set_aside} set-aside rows (the broker refused them; see publish_error)")
    if report.out_of_order:
        typer.echo(
            f"WARNING: {len(report.out_of_order)} Renja had later events on the topic than missing ones; the missing "
            "ones were appended after them: " + ", ".join(str(r) for r in report.out_of_order[:10]),
            err=True,
        )
        raise typer.Exit(1)
