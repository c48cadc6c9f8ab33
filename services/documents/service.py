"""The documents service's use cases: step 4 (a unit's rows and files, collection complete), step 5
(Rancangan Awal), step 7 (Rancangan Akhir), every draft version with its findings, diff and rendered
files, and the rendered records of steps 6 (daftar hadir, notulen) and 10 (signed Renja).

Each use case loads what it needs, checks the documents service's own rules (``domain``) and commits
through the service's ``CommandUnit`` (SOP commands) or one transaction of its own (uploads). No HTTP
here: refusals are ``DomainError`` subclasses carrying their status, answers are public models,
``CommandResult``s or ``StoredFile``s.

Ordering policy (why): a draft's PDF and DOCX are rendered when the draft is created, *before* the
command's transaction (WeasyPrint takes seconds; the transaction must stay short), so the draft row names
files that exist. The meeting records and the signed Renja are facts consumed from Kafka
(``consumers``): the reaction only stores the fact, and the PDF is rendered on its first read and its
hash recorded (the consumer never waits on a renderer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import asyncpg

from services.documents import store
from services.documents.domain import (
    Conflict,
    NotFound,
    akhir_content,
    configured_unit,
    ensure_storable_pagu,
)
from services.documents.draft import DraftMeta, SkippedChange, content_sha256, diff, pagu_total
from services.documents.files import (
    DOCX_MEDIA,
    PDF_MEDIA,
    DocumentFiles,
    Incoming,
    Received,
    StoredFile,
    meeting_doc,
    read_rows,
    read_uploads,
)
from services.documents.findings import Finding, Nomenclature, Renstra, ordered
from services.documents.intake import Row
from services.documents.rendering import (
    SignatureBlock,
    render_daftar_hadir_pdf,
    render_draft_pdf,
    render_notulen_pdf,
)
from services.documents.schemas import (
    AkhirCreate,
    AwalCreate,
    DiffPublic,
    DraftCreatedPublic,
    DraftPublic,
    DraftSummaryPublic,
    FilePublic,
    UnitFilesPublic,
    UnitPublic,
    UnitRowsPublic,
    UnitsPublic,
)
from services.documents.settings import DocumentsSettings
from services.documents.store import DraftRecord
from services.documents.verifier import ReviewContext, SumberDana, bidang_of_unit, review
from shared.command import CommandCall, CommandResult, CommandUnit, UnknownRenja
from shared.events import Actor, Event, RequestedChange
from shared.process import load_state
from shared.sop import (
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    InvalidCommand,
    RenjaState,
    SopDefinition,
    Unit,
    cycle_units,
    ensure_due,
    next_step,
)

T = TypeVar("T")

Record = Callable[[asyncpg.Connection, str, datetime], Awaitable[None]]
"""Writes one accepted delivery in the upload's transaction: ``(conn, delivered_by, now)``."""


def identity_meta(state: RenjaState) -> dict[str, Any]:
    """The draft-meta fields of the cycle's OPD identity (signing place, head's jabatan, letterhead);
    none for a cycle opened before the registry."""
    identity = state.opd_identity
    if identity is None:
        return {}
    return {"signing_place": identity.signing_place, "head_title": identity.head_title,
            "letterhead": identity.letterhead}  # fmt: skip


def review_context(state: RenjaState, default_level: str) -> ReviewContext:
    """What the verifier knows of the cycle: its plan year, and from the OPD identity its arahan recorded
    the SIPD unit code, the bidang urusan that code carries (the OPD's mandate) and its government level.
    A cycle opened before the registry keeps the deployment's level and no mandate check."""
    identity = state.opd_identity
    if identity is None:
        return ReviewContext(plan_year=state.fiscal_year, opd=state.opd or "", government_level=default_level)
    try:
        mandate: tuple[str, ...] | None = bidang_of_unit(identity.code)
    except ValueError:
        mandate = None  # a registry code that is not a SIPD unit code: no mandate to check against
    return ReviewContext(plan_year=state.fiscal_year, opd=identity.code, bidang_urusan=mandate,
                         government_level=identity.government_level or default_level)  # fmt: skip


class DocumentsService:
    """The documents service's use cases (built once in ``main.create_app``).

    ``pool`` returns the service's connection pool (503 ``ServiceStarting`` before the app started).
    """

    def __init__(
        self,
        *,
        settings: DocumentsSettings,
        sop: SopDefinition,
        pool: Callable[[], asyncpg.Pool],
        commands: CommandUnit,
        files: DocumentFiles,
        nomenclature: Nomenclature,
        renstra: Renstra | None,
        sumber_dana: SumberDana | None = None,
    ) -> None:
        self.settings = settings
        self.sop = sop
        self.pool = pool
        self.commands = commands
        self.files = files
        self.nomenclature = nomenclature
        self.renstra = renstra
        self.sumber_dana = sumber_dana
        self._draft_locks: dict[UUID, asyncio.Lock] = {}

    def region(self, state: RenjaState) -> str:
        """The region printed on the cycle's records: its OPD identity's (registry snapshot), else
        ``RENJA_REGION``, else none — never the SOP file's owner (only the SOP's provenance)."""
        if state.opd_identity is not None:
            return state.opd_identity.region
        return self.settings.region or ""

    def draft_lock(self, renja_id: UUID) -> asyncio.Lock:
        """Serialises this process's draft commands on one Renja, so concurrent duplicates wait and are then
        answered from the Idempotency-Key record (or refused as out of order) instead of each rendering
        for seconds. Across processes the decider's version check still lets only one through."""
        return self._draft_locks.setdefault(renja_id, asyncio.Lock())

    # ==================================================================================================
    # Step 4: data intake
    # ==================================================================================================

    async def upload_rows(self, renja_id: UUID, unit_code: str, actor: Actor, incoming: Incoming) -> UnitRowsPublic:
        """Parse and store one unit's rows, replacing its earlier delivery (until collection is complete).

        All or nothing: a file with any bad row is refused (``RowsRefused``, every error listed).
        """
        unit, (got,), rows = await self._deliver(renja_id, unit_code, actor, incoming, lambda u, g: read_rows(g[0], u))
        total = pagu_total(rows)

        async def record(conn: asyncpg.Connection, by: str, now: datetime) -> None:
            await store.replace_unit_rows(conn, renja_id=renja_id, unit=unit.code, file=got.ref, rows=rows,
                                          pagu_total=total, actor=by, now=now)  # fmt: skip

        await self._record(renja_id, actor, [got], record)
        levels = {level: sum(r.level == level for r in rows) for level in ("program", "kegiatan", "sub_kegiatan")}
        return UnitRowsPublic(
            renja_id=renja_id, unit=unit.code, unit_name=unit.name, file=FilePublic.of(got.ref), rows=len(rows),
            rows_sha256=store.rows_sha256(rows), pagu_total=total, levels=levels,
        )  # fmt: skip

    async def upload_files(self, renja_id: UUID, unit_code: str, actor: Actor, incoming: Incoming) -> UnitFilesPublic:
        """Store the unit's attached files (0-byte: 422; over ``max_upload_bytes``: 413). All or nothing."""
        unit, got, _ = await self._deliver(renja_id, unit_code, actor, incoming, lambda u, g: None)

        async def record(conn: asyncpg.Connection, by: str, now: datetime) -> None:
            for r in got:
                await store.add_unit_file(conn, renja_id=renja_id, unit=unit.code, file=r.ref, actor=by, now=now)

        await self._record(renja_id, actor, got, record)
        return UnitFilesPublic(
            renja_id=renja_id, unit=unit.code, unit_name=unit.name, files=[FilePublic.of(r.ref) for r in got]
        )

    async def _deliver(
        self,
        renja_id: UUID,
        unit_code: str,
        actor: Actor,
        incoming: Incoming,
        accept: Callable[[str, list[Received]], T],
    ) -> tuple[Unit, list[Received], T]:
        """The first half of every step-4 delivery: the configured unit (404), the turn (refused before
        reading a byte), the uploads read and checked (413/422), then ``accept(unit code, files)``."""
        async with self.pool().acquire() as conn:
            state = await self._known_state(conn, renja_id)
        unit = configured_unit(cycle_units(state, self.sop), unit_code)
        ensure_due(state, self.sop.plan.number("data_collection"), actor.role, self.sop)
        got = await read_uploads(incoming, self.settings.max_upload_bytes)
        return unit, got, accept(unit.code, got)

    async def _record(self, renja_id: UUID, actor: Actor, got: Sequence[Received], record: Record) -> None:
        """The second half: store the bytes, then ``record`` the delivery in one transaction if step 4 is
        still this actor's turn."""
        for r in got:
            await self.files.put(r.data)
        now = self.commands.clock()
        async with self.pool().acquire() as conn, conn.transaction():
            # The row lock orders this write against a concurrent "collection complete" on the same Renja.
            state, _ = await load_state(conn, renja_id, for_update=True)
            ensure_due(state, self.sop.plan.number("data_collection"), actor.role, self.sop)
            await record(conn, f"{actor.name} ({actor.nip})", now)

    async def units(self, renja_id: UUID) -> UnitsPublic:
        """Step 4 progress: which configured units delivered what, and which are still missing."""
        async with self.pool().acquire() as conn:
            state = await self._known_state(conn, renja_id)
            rows = await store.unit_rows(conn, renja_id)
            files = await store.unit_files(conn, renja_id)
        units = [
            UnitPublic.of(unit, rows.get(unit.code), files.get(unit.code, [])) for unit in cycle_units(state, self.sop)
        ]
        return UnitsPublic(
            renja_id=renja_id,
            collection_complete=4 in state.completed_steps,
            missing=[u.code for u in units if not u.delivered],
            units=units,
        )

    async def unit_file(self, renja_id: UUID, unit_code: str, sha256: str) -> StoredFile:
        """A file a unit delivered (rows file or attachment), by its SHA-256; ``NotFound`` (404)."""
        async with self.pool().acquire() as conn:
            row = await store.unit_file(conn, renja_id, unit_code, sha256)
        if row is None:
            raise NotFound(f"Unit {unit_code} of Renja {renja_id} delivered no file with SHA-256 {sha256}.")
        return await self.files.stored(sha256, row["media_type"], row["name"])

    async def complete_collection(self, call: CommandCall) -> CommandResult:
        """Publish ``DataCollected`` naming every unit's delivery; ``InvalidCommand`` (422) while every unit
        is missing, ``InvalidRequest`` (422) for an unstorable pagu sum, ``Conflict`` (409) when a delivery
        changes meanwhile."""
        renja_id = call.renja_id
        async with self.pool().acquire() as conn:
            state = await self._known_state(conn, renja_id)
            codes = tuple(u.code for u in cycle_units(state, self.sop))
            delivered = await store.deliveries(conn, renja_id, codes)
            if not delivered:
                ensure_due(state, self.sop.plan.number("data_collection"), call.actor.role, self.sop)
                raise InvalidCommand(
                    f"{self.sop.step(4).label}: not yet delivered: {', '.join(codes)}.",
                    due_step=state.due_step,
                    due_role=self.sop.step(4).role,
                )
        ensure_storable_pagu(delivered)

        async def unchanged(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
            # A delivery replaced between reading and committing would make the event lie about the data.
            if await store.deliveries(conn, renja_id, codes) != delivered:
                raise Conflict("A unit's delivery changed while collection was being completed; retry.")

        return await self.commands.run(call, CompleteDataCollection(units=tuple(delivered)), effect=unchanged)

    # ==================================================================================================
    # Steps 5 and 7: drafts
    # ==================================================================================================

    async def create_awal(self, call: CommandCall, body: AwalCreate | None) -> CommandResult:
        """Step 5: the Rancangan Awal from every unit's collected rows (a retry replays its first answer)."""
        async with self.draft_lock(call.renja_id):
            if (replay := await self.commands.replayed(call)) is not None:
                return replay
            async with self.pool().acquire() as conn:
                state = await self._known_state(conn, call.renja_id)
                ensure_due(state, self.sop.plan.number("rancangan_awal"), call.actor.role, self.sop)
                codes = tuple(u.code for u in cycle_units(state, self.sop))
                rows = await store.collected_rows(conn, call.renja_id, codes)
            record = await self._build_draft(state, rows, call, stage="awal", note=body.note if body else "")
            command = CreateRancanganAwal(
                version=record.meta.version, content_sha256=record.content_sha256, rows=len(record.rows),
                pagu_total=record.pagu_total, blocking_findings=record.blocking, warning_findings=record.warning,
            )  # fmt: skip
            return await self._commit_draft(call, command, record)

    async def create_akhir(self, call: CommandCall, body: AkhirCreate) -> CommandResult:
        """Step 7: the latest draft + the meeting's ``requested_changes`` (once: not again on a draft that
        already applied them, e.g. after a return) + ``body.changes``, in that order (``akhir_content``).

        ``Conflict`` (409) while the notulen has not reached this service; ``InvalidRequest`` (422) for a
        change of ``body.changes`` that cannot apply (nothing is created). A retry replays its first answer.
        """
        async with self.draft_lock(call.renja_id):
            if (replay := await self.commands.replayed(call)) is not None:
                return replay
            state, base, notulen = await self._akhir_inputs(call)
            already = base.meta.stage == "akhir" and base.meeting_id == state.meeting_id
            content = akhir_content(base, () if already else notulen, body.changes, body.note,
                                    notulen_applied_before=already)  # fmt: skip
            record = await self._build_draft(state, content.rows, call, stage="akhir", based_on=base,
                                             applied=content.applied, note=content.note,
                                             extra_findings=content.extra_findings)  # fmt: skip
            assert record.meeting_id is not None and record.notulen_sha256 is not None
            command = CreateRancanganAkhir(
                version=record.meta.version, content_sha256=record.content_sha256, based_on_version=base.meta.version,
                meeting_id=record.meeting_id, notulen_sha256=record.notulen_sha256, rows=len(record.rows),
                pagu_total=record.pagu_total, blocking_findings=record.blocking, warning_findings=record.warning,
            )  # fmt: skip
            return await self._commit_draft(call, command, record, content.skipped)

    async def _akhir_inputs(self, call: CommandCall) -> tuple[RenjaState, DraftRecord, Sequence[RequestedChange]]:
        """Step 7's inputs once it is the actor's turn: the state, the latest draft, the notulen's changes."""
        async with self.pool().acquire() as conn:
            state = await self._known_state(conn, call.renja_id)
            ensure_due(state, self.sop.plan.number("rancangan_akhir"), call.actor.role, self.sop)
            assert state.meeting_id is not None  # step 7 is due only after MeetingHeld
            meeting = await store.get_meeting(conn, call.renja_id, state.meeting_id)
            base = await store.latest_draft(conn, call.renja_id)
        if meeting is None or base is None:
            raise Conflict(f"The notulen of meeting {state.meeting_id} has not reached this service yet; retry.")
        return state, base, store.meeting_event(meeting).requested_changes

    async def _build_draft(
        self,
        state: RenjaState,
        rows: Sequence[Row],
        call: CommandCall,
        *,
        stage: Literal["awal", "akhir"],
        based_on: DraftRecord | None = None,
        applied: Sequence[RequestedChange] = (),
        note: str = "",
        extra_findings: Sequence[Finding] = (),
    ) -> DraftRecord:
        """Steps 5/7: the next draft version of ``rows``: canonical hash, findings (the checks' plus
        ``extra_findings``), rendered and stored files. ``Conflict`` (409) before the arahan is known."""
        if state.fiscal_year is None:
            raise Conflict("The Renja's OPD and fiscal year are not known yet (no arahan received).")
        meta = DraftMeta(
            opd=state.opd, fiscal_year=state.fiscal_year, stage=stage, version=state.next_draft_version(),
            region=self.region(state), nomenclature=self.nomenclature.regulation,
            renstra=self.renstra.title if self.renstra else "", **identity_meta(state),
        )  # fmt: skip
        context = review_context(state, self.settings.government_level)
        checks = review(rows, nomenclature=self.nomenclature, renstra=self.renstra, sumber_dana=self.sumber_dana,
                        context=context)  # fmt: skip
        findings = ordered([*checks, *extra_findings])
        pdf, docx = await self.files.render_draft(meta, rows, findings)
        return DraftRecord(
            renja_id=call.renja_id, meta=meta, content_sha256=content_sha256(rows, meta), rows=tuple(rows),
            pagu_total=pagu_total(rows), findings=tuple(findings), pdf_sha256=pdf.sha256, pdf_size=pdf.size_bytes,
            docx_sha256=docx.sha256, docx_size=docx.size_bytes, created_by=f"{call.actor.name} ({call.actor.nip})",
            created_at=self.commands.clock(), based_on_version=based_on.meta.version if based_on else None,
            meeting_id=state.meeting_id if stage == "akhir" else None,
            notulen_sha256=state.notulen_sha256 if stage == "akhir" else None,
            applied_changes=tuple(applied), note=note,
        )  # fmt: skip

    async def _commit_draft(
        self,
        call: CommandCall,
        command: CreateRancanganAwal | CreateRancanganAkhir,
        record: DraftRecord,
        skipped: Sequence[SkippedChange] = (),
    ) -> CommandResult:
        """Decide ``command`` and keep ``record`` in the same transaction; answer ``DraftCreatedPublic``."""

        async def keep(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
            await store.insert_draft(conn, record)

        def respond(events: Sequence[Event], state: RenjaState) -> Any:
            created = DraftCreatedPublic.of(record, events, next_step(state, self.sop), skipped)
            return created.model_dump(mode="json")

        return await self.commands.run(call, command, effect=keep, respond=respond)

    async def drafts(self, renja_id: UUID) -> list[DraftSummaryPublic]:
        """Every draft version, oldest first; ``UnknownRenja`` (404) for a Renja this service never saw."""
        async with self.pool().acquire() as conn:
            records = await store.list_drafts(conn, renja_id)
            if not records:
                await self._known_state(conn, renja_id)
        return [DraftSummaryPublic.of(r) for r in records]

    async def draft(self, renja_id: UUID, version: int) -> DraftRecord:
        """Draft ``version`` of the Renja; ``NotFound`` (404)."""
        async with self.pool().acquire() as conn:
            return await self._draft_or_404(conn, renja_id, version)

    async def draft_public(self, renja_id: UUID, version: int) -> DraftPublic:
        """Draft ``version``: meta, rows, applied changes."""
        return DraftPublic.of_record(await self.draft(renja_id, version))

    async def findings(self, renja_id: UUID, version: int) -> list[Finding]:
        """The findings of draft ``version``, in their stored order."""
        return list((await self.draft(renja_id, version)).findings)

    async def diff(self, renja_id: UUID, from_version: int, to_version: int) -> DiffPublic:
        """What changed from draft ``from_version`` to ``to_version`` (each ``NotFound`` when missing)."""
        async with self.pool().acquire() as conn:
            old = await self._draft_or_404(conn, renja_id, from_version)
            new = await self._draft_or_404(conn, renja_id, to_version)
        return DiffPublic(renja_id=renja_id, from_version=from_version, to_version=to_version,
                          diff=diff(old.rows, new.rows))  # fmt: skip

    async def draft_file(self, renja_id: UUID, version: int, kind: Literal["pdf", "docx"]) -> StoredFile:
        """Draft ``version`` rendered as PDF or DOCX (``Unavailable`` when the stored file is missing)."""
        record = await self.draft(renja_id, version)
        sha = record.pdf_sha256 if kind == "pdf" else record.docx_sha256
        media = PDF_MEDIA if kind == "pdf" else DOCX_MEDIA
        return await self.files.stored(sha, media, f"renja-{record.meta.stage}-v{version}.{kind}")

    # ==================================================================================================
    # Rendered records of steps 6 and 10 (facts consumed from Kafka, rendered on first read)
    # ==================================================================================================

    async def meeting_pdf(
        self, renja_id: UUID, meeting_id: UUID, kind: Literal["daftar-hadir", "notulen"]
    ) -> StoredFile:
        """The meeting's daftar hadir or notulen as PDF, rendered and recorded on first read."""
        key = kind.replace("-", "_")
        async with self.pool().acquire() as conn:
            record = await store.get_meeting(conn, renja_id, meeting_id)
            state, _ = await load_state(conn, renja_id)
        if record is None:
            raise NotFound(f"Meeting {meeting_id} of Renja {renja_id} is not known to this service (yet).")
        sha: str | None = record[f"{key}_pdf"]
        if sha is None:
            renderer = render_daftar_hadir_pdf if key == "daftar_hadir" else render_notulen_pdf
            rendered = await self.files.render_pdf(renderer, meeting_doc(record, self.region(state)))
            async with self.pool().acquire() as conn:
                sha = await store.set_meeting_pdf(conn, renja_id, meeting_id, key, rendered)
        return await self.files.stored(sha, PDF_MEDIA, f"{kind}-{meeting_id}.pdf")

    async def signed_pdf(self, renja_id: UUID) -> StoredFile:
        """The signed Renja as PDF with the signature block, rendered and recorded on first read.

        ``NotFound`` (404) before the signature arrived; ``Conflict`` (409) when the signed hash is not the
        signed draft version's.
        """
        async with self.pool().acquire() as conn:
            signed = await store.get_signature(conn, renja_id)
            if signed is None:
                raise NotFound(f"Renja {renja_id} is not signed (or the signature has not reached us yet).")
            event, sha = signed
            record = await self._draft_or_404(conn, renja_id, event.version)
        if sha is None:
            if record.content_sha256 != event.content_sha256:
                raise Conflict(
                    f"The signature names hash {event.content_sha256[:12]}…, but draft version {event.version} "
                    f"has {record.content_sha256[:12]}…; the signed PDF cannot be produced."
                )
            signature = SignatureBlock(
                signer_name=event.actor.name, signer_nip=event.actor.nip,
                signer_position=record.meta.head_title or f"Kepala {record.meta.opd}", signed_at=event.occurred_at,
                content_sha256=event.content_sha256, key_id=event.key_id,
            )  # fmt: skip
            rendered = await self.files.render_pdf(
                render_draft_pdf, record.meta, record.rows, record.findings, signature
            )
            async with self.pool().acquire() as conn:
                sha = await store.set_signature_pdf(conn, renja_id, rendered)
        return await self.files.stored(sha, PDF_MEDIA, f"renja-signed-v{event.version}.pdf")

    # ==================================================================================================
    # Loading
    # ==================================================================================================

    async def _known_state(self, conn: asyncpg.Connection, renja_id: UUID) -> RenjaState:
        state, version = await load_state(conn, renja_id)
        if version == 0:
            raise UnknownRenja(f"Renja {renja_id} is not known to the documents service (yet).")
        return state

    async def _draft_or_404(self, conn: asyncpg.Connection, renja_id: UUID, version: int) -> DraftRecord:
        record = await store.get_draft(conn, renja_id, version)
        if record is None:
            raise NotFound(f"Renja {renja_id} has no draft version {version}.")
        return record
