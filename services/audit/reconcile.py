"""``reconcile``: do the three witnesses of the history agree on which events exist?

The witnesses (DESIGN.md, *Decisions*): each service's own ``events`` table (the events it produced),
the Kafka log ``renja.events`` (every event, with its ``ce_source``), and the audit projection. An event
id in Kafka must be in the producing service's table and in the audit; an id in a service table must be
in Kafka (unless still waiting in that service's outbox) and in the audit; the audit holds nothing else.

``compare_witnesses`` is pure; ``collect`` reads the witnesses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from services.audit.logreader import read_from_start
from shared.events import is_known

PRODUCERS: tuple[str, ...] = ("directive", "documents", "meetings", "approvals", "notifier")
"""The services that produce events (the audit produces none)."""


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One event id and what is wrong: ``missing`` from ``where`` (``kafka``, ``audit`` or a service
    name), ``extra`` in ``where``, or ``unpublished`` (in a service's outbox, not yet on Kafka)."""

    event_id: str
    problem: str
    where: str
    source: str | None = None


@dataclass
class Witnesses:
    """What each witness holds. ``services[name]`` is ``{event_id: published?}`` or None when that
    service's database does not exist; ``kafka`` maps id → producing service."""

    kafka: dict[UUID, str] = field(default_factory=dict)
    audit: set[UUID] = field(default_factory=set)
    unknown_types: set[UUID] = field(default_factory=set)
    """Ids on Kafka whose ``ce_type`` this release does not know: every reader skips them, so the audit
    is not expected to hold them (services and Kafka still must agree)."""
    services: dict[str, dict[UUID, bool] | None] = field(default_factory=dict)


@dataclass
class ReconcileReport:
    """The discrepancies (empty = all witnesses agree) and how many ids each witness holds."""

    discrepancies: list[Discrepancy]
    counts: dict[str, int | None]

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def compare_witnesses(w: Witnesses) -> ReconcileReport:
    """Every id missing or extra anywhere, sorted by id then witness; pure."""
    out: list[Discrepancy] = []
    service_of: dict[UUID, str] = {}
    for name, ids in w.services.items():
        for eid, published in (ids or {}).items():
            service_of[eid] = name
            if eid not in w.kafka:
                problem = "missing" if published else "unpublished"
                out.append(Discrepancy(str(eid), problem, "kafka", name))
            if eid not in w.audit and eid not in w.unknown_types:
                out.append(Discrepancy(str(eid), "missing", "audit", name))
    for eid, source in w.kafka.items():
        if eid not in w.audit and eid not in w.unknown_types:
            out.append(Discrepancy(str(eid), "missing", "audit", source))
        held = w.services.get(source)
        if source in w.services and (held is None or eid not in held):
            out.append(Discrepancy(str(eid), "missing", source, source))
        elif source not in w.services:
            out.append(Discrepancy(str(eid), "extra", "kafka", source))
    for eid in w.audit:
        if eid not in w.kafka and eid not in service_of:
            out.append(Discrepancy(str(eid), "extra", "audit"))
    unique = sorted(set(out), key=lambda d: (d.event_id, d.where, d.problem))
    counts: dict[str, int | None] = {"kafka": len(w.kafka), "audit": len(w.audit)}
    for name, ids in w.services.items():
        counts[name] = None if ids is None else len(ids)
    return ReconcileReport(unique, counts)


async def kafka_ids(bootstrap: str, topic: str, unknown_types: set[UUID] | None = None) -> dict[UUID, str]:
    """``{ce_id: producing service}`` of every record from offset 0 to the end offsets (headers only);
    the ids of records whose ``ce_type`` this release does not know are also added to ``unknown_types``."""
    out: dict[UUID, str] = {}
    async for batch in read_from_start(bootstrap, topic, "audit-reconcile", batch_max=10000):
        for rec in batch:
            headers = {k: v for k, v in rec.headers or ()}
            try:
                eid = UUID(headers["ce_id"].decode())
            except (KeyError, ValueError, UnicodeDecodeError):
                continue  # not one of our events: the audit's rejects table lists it
            out[eid] = headers.get("ce_source", b"").decode(errors="replace").rsplit("/", 1)[-1]
            if unknown_types is not None and not is_known(headers.get("ce_type", b"").decode(errors="replace")):
                unknown_types.add(eid)
    return out


async def service_ids(dsn: str) -> dict[UUID, bool] | None:
    """``{event_id: published?}`` of one service database's ``events`` table; None if the database or
    the table does not exist (the service has not been deployed)."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        rows = await conn.fetch("SELECT event_id, published_at IS NOT NULL AS published FROM events")
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()
    return {r["event_id"]: r["published"] for r in rows}


async def collect(
    *,
    bootstrap: str,
    topic: str,
    audit_dsn: str,
    service_dsns: Mapping[str, str],
) -> Witnesses:
    """Read every witness: ``service_dsns`` maps producing service name → its database DSN."""
    unknown: set[UUID] = set()
    w = Witnesses(kafka=await kafka_ids(bootstrap, topic, unknown), unknown_types=unknown)
    conn = await asyncpg.connect(audit_dsn)
    try:
        w.audit = {r[0] for r in await conn.fetch("SELECT event_id FROM audit_events")}
    finally:
        await conn.close()
    for name, dsn in service_dsns.items():
        w.services[name] = await service_ids(dsn)
    return w


def format_report(report: ReconcileReport, limit: int = 200) -> Sequence[str]:
    """Lines for people: the counts, then one line per discrepancy (at most ``limit``)."""
    lines = ["held: " + ", ".join(f"{k}={'absent' if v is None else v}" for k, v in report.counts.items())]
    for d in report.discrepancies[:limit]:
        extra = f" (produced by {d.source})" if d.source else ""
        lines.append(f"{d.event_id}: {d.problem} in {d.where}{extra}")
    if len(report.discrepancies) > limit:
        lines.append(f"... and {len(report.discrepancies) - limit} more")
    lines.append("OK: all witnesses agree" if report.ok else f"{len(report.discrepancies)} discrepancies")
    return lines
