"""The audit's use cases: what the read-only HTTP API (and nothing else) asks of the projection.

One :class:`AuditService` per process, built at start-up by ``services.audit.main.create_app`` (the
composition root) once the pool and the signing key exist. Nothing here imports FastAPI: a result for
an unknown Renja is ``None``, and the HTTP edge (``services.audit.api``) turns that into a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.page import render_timeline_html
from services.audit.projector import Projector
from services.audit.rebuild import rebuild_equals_live
from services.audit.settings import AuditSettings
from services.audit.store import StoredAnomaly, list_cycles, load_timeline
from services.audit.tables import REBUILD
from services.audit.timeline import Timeline
from services.audit.verify import Integrity, VerifyReport, integrity, verify_renja
from services.audit.workcalendar import WorkCalendar
from shared.sop import RenjaState, SopDefinition


@dataclass(frozen=True, slots=True)
class RebuildCheck:
    """Whether a replay from offset 0 equals the live projection, and how long it took (seconds, 3 dp)."""

    equal: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class TimelineView:
    """A timeline as every read serves it: with the Renja's verification (``report``, its one-line
    ``integrity``) and the anomalies up to the timeline's position / time."""

    timeline: Timeline
    report: VerifyReport
    integrity: Integrity
    anomalies: list[StoredAnomaly]


def page_header(state: RenjaState) -> str:
    """The timeline page's header line: the cycle's own OPD and region (the identity its arahan recorded),
    else the OPD name it was opened with — never the SOP file's owner, whose SOP this only is."""
    identity = state.opd_identity
    return f"{identity.name} · {identity.region}" if identity is not None else state.opd


class AuditService:
    """Reads of the audit projection, verification of hash chains, and the rebuild comparison.

    ``pool``: the audit database; ``signing_key``: the audit's Ed25519 key (its public half checks the
    signed heads); ``calendar``: the agency's working calendar for the timeline's working minutes.
    """

    def __init__(
        self,
        *,
        settings: AuditSettings,
        sop: SopDefinition,
        pool: asyncpg.Pool,
        signing_key: Ed25519PrivateKey,
        calendar: WorkCalendar,
    ) -> None:
        self.settings = settings
        self.sop = sop
        self.pool = pool
        self.signing_key = signing_key
        self.calendar = calendar

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key that verifies the signed chain heads (published at ``GET /audit/key``)."""
        return self.signing_key.public_key()

    async def cycles(self) -> list[asyncpg.Record]:
        """Every Renja cycle the audit has seen, oldest first (``store.list_cycles`` rows)."""
        async with self.pool.acquire() as conn:
            return await list_cycles(conn)

    async def timeline(
        self, renja_id: UUID, *, as_of: datetime | None = None, position: int | None = None
    ) -> Timeline | None:
        """One Renja's timeline as it stood at ``as_of`` (aware) or chain ``position``; None if unknown."""
        async with self.pool.acquire() as conn:
            return await load_timeline(conn, renja_id, self.sop, self.calendar, as_of=as_of, position=position)

    async def timeline_view(
        self, renja_id: UUID, *, as_of: datetime | None = None, position: int | None = None
    ) -> TimelineView | None:
        """The timeline verified on read: the cheap checks (stored bytes against stored hashes, the signed
        head; one read of the Renja's rows, bounded by its chain length) run at every call, so an altered
        history is served marked as altered. None if the Renja is unknown."""
        async with self.pool.acquire() as conn:
            timeline = await load_timeline(conn, renja_id, self.sop, self.calendar, as_of=as_of, position=position)
            if timeline is None:
                return None
            report = await verify_renja(conn, renja_id, self.public_key)
        if report is None:  # pragma: no cover - a Renja with a timeline has rows
            return None
        shown = {e.position for e in timeline.entries}
        anomalies = [a for a in report.anomalies if a.position in shown]
        return TimelineView(timeline, report, integrity(report), anomalies)

    async def timeline_page(
        self, renja_id: UUID, *, as_of: datetime | None = None, position: int | None = None
    ) -> str | None:
        """The timeline page as HTML, with the integrity box and the anomalies; None if the Renja is unknown."""
        view = await self.timeline_view(renja_id, as_of=as_of, position=position)
        if view is None:
            return None
        meta = {
            "agency": page_header(view.timeline.state),
            "generated_at": datetime.now(UTC),
            "chain": view.report,
            "integrity": view.integrity,
            "anomalies": view.anomalies,
        }
        return render_timeline_html(view.timeline, meta)

    async def verify(self, renja_id: UUID, *, kafka: bool = True) -> VerifyReport | None:
        """Every check of one Renja's chain; ``kafka`` also replays its partition. None if unknown."""
        async with self.pool.acquire() as conn:
            return await verify_renja(
                conn,
                renja_id,
                self.public_key,
                bootstrap=self.settings.kafka_bootstrap if kafka else None,
                topic=self.settings.event_topic if kafka else None,
            )

    async def compare_rebuild(self) -> RebuildCheck:
        """Replay the log from offset 0 into scratch tables and compare them with the live ones (nothing
        swapped, the scratch tables dropped). Takes as long as a replay of the log."""
        started = datetime.now(UTC)
        equal = await rebuild_equals_live(
            self.pool,
            bootstrap=self.settings.kafka_bootstrap,
            topic=self.settings.event_topic,
            projector=Projector(self.sop, self.signing_key, REBUILD, keep_cache=True),
        )
        return RebuildCheck(equal, round((datetime.now(UTC) - started).total_seconds(), 3))
