"""HTTP API of the documents service: SOP step 4 (unit data and files, collection complete), step 5
(Rancangan Awal), step 7 (Rancangan Akhir), every draft version with its findings, diff and rendered
files, and the rendered records of steps 6 (daftar hadir, notulen) and 10 (signed Renja).

Rendering policy (why): a draft's PDF and DOCX are rendered when the draft is created, in a worker
thread *before* the command's transaction (WeasyPrint takes seconds; the transaction must stay short),
and stored content-addressed, so the draft row names files that exist. The meeting records and the
signed Renja are facts consumed from Kafka: the reaction only stores the fact in the consumer's
transaction, and the PDF is rendered on its first GET and its hash recorded (the consumer never waits
on a renderer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.documents import store
from services.documents.draft import (
    ChangeError,
    DraftDiff,
    DraftMeta,
    SkippedChange,
    apply_changes,
    apply_notulen_changes,
    content_sha256,
    diff,
    pagu_total,
)
from services.documents.findings import (
    RULE_NOTULEN_NOT_APPLIED,
    Finding,
    Nomenclature,
    Renstra,
    compute_findings,
    notulen_findings,
    ordered,
)
from services.documents.intake import PAGU_MAX, IntakeError, Row, check_upload, parse_rows
from services.documents.rendering import (
    MeetingDoc,
    SignatureBlock,
    render_daftar_hadir_pdf,
    render_draft_docx,
    render_draft_pdf,
    render_notulen_pdf,
)
from services.documents.settings import DocumentsSettings
from services.documents.store import DraftRecord, FileStore
from shared.auth import ANY_ROLE, SOP_ROLES, require_roles
from shared.events import Actor, Event, FileRef, RequestedChange
from shared.process import load_state
from shared.sop import (
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    InvalidCommand,
    OutOfOrder,
    RenjaClosed,
    RenjaState,
    SopDefinition,
    Unit,
    WrongRole,
    next_step,
)
from shared.web.commands import command_call, command_response, run_command
from shared.web.deps import command_unit, runtime
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["documents"])

# Every SOP role may call a command route; which one may act is the SOP file's step role, checked by
# ``require_turn`` and the shared decider (403 for the wrong role). Auditors never act.
SOP_ACTOR = require_roles(*SOP_ROLES)

DOCX_MEDIA = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# Multipart framing around one file; a Content-Length beyond limit + this is refused before reading.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass
class Documents:
    """What the routes and reactions share: settings, the SOP, the file store and the reference data."""

    settings: DocumentsSettings
    sop: SopDefinition
    files: FileStore
    nomenclature: Nomenclature
    renstra: Renstra
    render_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    draft_locks: dict[UUID, asyncio.Lock] = field(default_factory=dict)

    def draft_lock(self, renja_id: UUID) -> asyncio.Lock:
        """Serialises this process's draft commands on one Renja, so concurrent duplicates wait and are then
        answered from the Idempotency-Key record (or refused as out of order) instead of each rendering
        for seconds. Across processes the decider's version check still lets only one through."""
        return self.draft_locks.setdefault(renja_id, asyncio.Lock())

    @property
    def region(self) -> str:
        return self.settings.region if self.settings.region is not None else self.sop.agency.city


def documents(request: Request) -> Documents:
    docs: Documents = request.app.state.documents
    return docs


# ======================================================================================================
# Models
# ======================================================================================================


class FilePublic(BaseModel):
    """A stored file: name as uploaded (NFC, no directories), SHA-256, size in bytes."""

    name: str
    sha256: str
    size_bytes: int
    media_type: str


class UnitRowsPublic(BaseModel):
    """A unit's rows delivery (step 4): the file they came from, row count and pagu total (rupiah)."""

    renja_id: UUID
    unit: str
    unit_name: str
    file: FilePublic
    rows: int
    rows_sha256: str
    pagu_total: int
    levels: dict[str, int]


class UnitFilesPublic(BaseModel):
    renja_id: UUID
    unit: str
    unit_name: str
    files: list[FilePublic]


class UnitPublic(BaseModel):
    code: str
    name: str
    delivered: bool
    rows_file: FilePublic | None = None
    rows: int = 0
    rows_sha256: str | None = None
    pagu_total: int = 0
    delivered_at: datetime | None = None
    delivered_by: str | None = None
    files: list[FilePublic] = []


class UnitsPublic(BaseModel):
    """Step 4 progress: which configured units delivered what, and which are still missing."""

    renja_id: UUID
    collection_complete: bool
    missing: list[str]
    units: list[UnitPublic]


class RowErrorPublic(BaseModel):
    file: str
    row: int | None
    column: str | None
    column_letter: str | None = None
    message: str


class IntakeErrorPublic(BaseModel):
    error: Literal["invalid_rows"] = "invalid_rows"
    message: str
    details: list[RowErrorPublic]


class AwalCreate(BaseModel):
    """Step 5 request: an optional note; the content is every unit's collected rows."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"note": "Rancangan Awal disusun dari data lima unit yang terkumpul per 10 Maret 2025."}]
        }
    )

    note: str = ""


class AkhirCreate(BaseModel):
    """Step 7 request: corrections beyond the meeting's notulen (after a return: the reviewers' notes)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "changes": [
                        {
                            "kode": "5.01.01.2.01.0001",
                            "field": "catatan",
                            "new_value": "Pagu nol: kegiatan didanai dari DAK tahun berjalan.",
                            "note": "menindaklanjuti pengembalian oleh Kasubag PP",
                        }
                    ],
                    "note": "Rancangan Akhir versi perbaikan setelah dikembalikan pada langkah 8.",
                },
                {"changes": [], "note": ""},
            ]
        }
    )

    changes: list[RequestedChange] = Field(
        default_factory=list,
        examples=[[{"kode": "5.01.01", "field": "pagu", "new_value": "8.646.986.715", "note": "ikut koreksi"}]],
    )
    note: str = ""


class DraftSummaryPublic(BaseModel):
    """One draft version: money in rupiah; findings counted by severity."""

    version: int
    stage: Literal["awal", "akhir"]
    content_sha256: str
    based_on_version: int | None
    meeting_id: UUID | None
    notulen_sha256: str | None
    rows: int
    pagu_total: int
    blocking_findings: int
    warning_findings: int
    pdf_sha256: str
    docx_sha256: str
    note: str
    created_by: str
    created_at: datetime


class DraftPublic(DraftSummaryPublic):
    meta: DraftMeta
    applied_changes: list[RequestedChange]
    content: list[Row]


class DraftCreatedPublic(BaseModel):
    renja_id: UUID
    version: int
    stage: Literal["awal", "akhir"]
    content_sha256: str
    based_on_version: int | None
    meeting_id: UUID | None
    notulen_sha256: str | None
    rows: int
    pagu_total: int
    blocking_findings: int
    warning_findings: int
    pdf_sha256: str
    docx_sha256: str
    applied_changes: list[RequestedChange]
    skipped_changes: list[SkippedChange] = Field(
        default_factory=list,
        description="notulen changes that do not apply to the draft (unknown kode...), each with the reason; "
        "also listed in the note and as `notulen_change_not_applied` warning findings",
    )
    note: str = ""
    events: list[dict[str, str]]
    next_step: dict[str, Any] | None


class DiffPublic(BaseModel):
    """Rows added/removed and fields changed from draft ``from_version`` to ``to_version``."""

    renja_id: UUID
    from_version: int
    to_version: int
    diff: DraftDiff


# ======================================================================================================
# Helpers
# ======================================================================================================


def require_turn(state: RenjaState, number: int, actor: Actor, sop: SopDefinition) -> None:
    """Refuse early (before parsing or rendering) unless step ``number`` is due and ``actor`` holds its
    role: ``RenjaClosed``/``WrongRole``/``OutOfOrder`` as the shared decider would. The decider still
    makes the final decision inside the command's transaction."""
    step = sop.step(number)
    due = next_step(state, sop)
    where: dict[str, Any] = {"due_step": due.number if due else None, "due_role": due.role if due else None}
    due_text = f"{due.label} is due, by {due.role}" if due else f"no step is due (the Renja is {state.status})"
    if state.is_closed:
        raise RenjaClosed(f"This Renja is {state.status}; {step.label} can no longer be done.", **where)
    if actor.role != step.role:
        raise WrongRole(f"{step.label} is done by {step.role}; you are {actor.role}. Now {due_text}.", **where)
    if state.due_step != number:
        raise OutOfOrder(f"{step.label} is not due: {due_text}.", **where)


def _unit(sop: SopDefinition, code: str) -> Unit:
    for unit in sop.units:
        if unit.code == code:
            return unit
    known = ", ".join(sop.unit_codes)
    raise HTTPException(404, f"Unit {code!r} is not configured in the SOP file; the units are: {known}.")


async def _read_upload(request: Request, upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes; 413 early when the request is far beyond ``limit`` bytes (not read at all)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise HTTPException(
            413, f"The upload is {int(length):,} bytes; the limit is {limit:,} bytes per file. Split or compress it."
        )
    return await upload.read()


def _checked(name: str, data: bytes, limit: int) -> FileRef:
    check = check_upload(name, data, limit)
    if not check.ok:
        raise HTTPException(413 if check.problem == "too_large" else 422, check.message)
    return check.file_ref()


def _file_public(ref: FileRef) -> FilePublic:
    return FilePublic(name=ref.name, sha256=ref.sha256, size_bytes=ref.size_bytes, media_type=ref.media_type)


async def _known_state(conn: asyncpg.Connection, renja_id: UUID) -> RenjaState:
    state, version = await load_state(conn, renja_id)
    if version == 0:
        raise HTTPException(404, f"Renja {renja_id} is not known to the documents service (yet).")
    return state


def _file_response(request: Request, data: bytes, sha: str, media_type: str, filename: str) -> Response:
    """Serve stored bytes with ``ETag`` = SHA-256 (304 for a matching ``If-None-Match``)."""
    etag = f'"{sha}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=0, must-revalidate",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=media_type, headers=headers)


async def _stored(docs: Documents, sha: str) -> bytes:
    try:
        return await asyncio.to_thread(docs.files.read, sha)
    except FileNotFoundError as exc:
        raise HTTPException(503, f"The stored file {sha[:12]}… is missing from the file store; restore it.") from exc


async def _replayed(request: Request, actor: Actor, renja_id: UUID) -> JSONResponse | None:
    """The stored answer of an earlier identical request under the same ``Idempotency-Key``, if any.

    Draft commands derive their content (version, hash) from the current state, so a retry after the
    first one committed would be a different command; it is answered here, before anything is derived
    (``CommandUnit.replayed``: the same key with another request is 422 ``idempotency_key_reused``).
    """
    result = await command_unit(request).replayed(await command_call(request, actor, renja_id))
    return None if result is None else command_response(result)


async def _render_draft(
    docs: Documents, meta: DraftMeta, rows: Sequence[Row], findings: Sequence[Finding]
) -> tuple[FileRef, FileRef]:
    """Render and store the draft's PDF and DOCX (serialised: one renderer at a time per process)."""
    async with docs.render_lock:
        pdf = await asyncio.to_thread(render_draft_pdf, meta, rows, findings)
        docx = await asyncio.to_thread(render_draft_docx, meta, rows, findings)
    pdf_sha = await asyncio.to_thread(docs.files.put, pdf)
    docx_sha = await asyncio.to_thread(docs.files.put, docx)
    return (
        FileRef(name=f"renja-v{meta.version}.pdf", sha256=pdf_sha, size_bytes=len(pdf),
                      media_type="application/pdf"),
        FileRef(name=f"renja-v{meta.version}.docx", sha256=docx_sha, size_bytes=len(docx),
                      media_type=DOCX_MEDIA),
    )  # fmt: skip


async def _build_draft(
    docs: Documents,
    state: RenjaState,
    rows: Sequence[Row],
    *,
    renja_id: UUID,
    stage: Literal["awal", "akhir"],
    actor: Actor,
    based_on: DraftRecord | None = None,
    applied: Sequence[RequestedChange] = (),
    note: str = "",
    extra_findings: Sequence[Finding] = (),
) -> DraftRecord:
    """Steps 5/7: the next draft version of ``rows``: canonical hash, findings (the checks' plus
    ``extra_findings``), rendered files."""
    if state.fiscal_year is None:
        raise HTTPException(409, "The Renja's OPD and fiscal year are not known yet (no arahan received).")
    meta = DraftMeta(
        opd=state.opd,
        fiscal_year=state.fiscal_year,
        stage=stage,
        version=state.next_draft_version(),
        region=docs.region,
        nomenclature=docs.nomenclature.regulation,
        renstra=docs.renstra.title,
    )
    findings = ordered(
        [
            *compute_findings(
                rows,
                nomenclature=docs.nomenclature,
                renstra=docs.renstra,
                government_level=docs.settings.government_level,
            ),
            *extra_findings,
        ]
    )
    pdf, docx = await _render_draft(docs, meta, rows, findings)
    return DraftRecord(
        renja_id=renja_id,
        meta=meta,
        content_sha256=content_sha256(rows, meta),
        rows=tuple(rows),
        pagu_total=pagu_total(rows),
        findings=tuple(findings),
        pdf_sha256=pdf.sha256,
        pdf_size=pdf.size_bytes,
        docx_sha256=docx.sha256,
        docx_size=docx.size_bytes,
        created_by=f"{actor.name} ({actor.nip})",
        created_at=datetime.now(UTC),
        based_on_version=based_on.meta.version if based_on else None,
        meeting_id=state.meeting_id if stage == "akhir" else None,
        notulen_sha256=state.notulen_sha256 if stage == "akhir" else None,
        applied_changes=tuple(applied),
        note=note,
    )


def _draft_respond(record: DraftRecord, docs: Documents, skipped: Sequence[SkippedChange] = ()) -> Any:
    def respond(events: Sequence[Event], state: RenjaState) -> Any:
        step = next_step(state, docs.sop)
        return DraftCreatedPublic(
            renja_id=record.renja_id,
            version=record.meta.version,
            stage=record.meta.stage,
            content_sha256=record.content_sha256,
            based_on_version=record.based_on_version,
            meeting_id=record.meeting_id,
            notulen_sha256=record.notulen_sha256,
            rows=len(record.rows),
            pagu_total=record.pagu_total,
            blocking_findings=record.blocking,
            warning_findings=record.warning,
            pdf_sha256=record.pdf_sha256,
            docx_sha256=record.docx_sha256,
            applied_changes=list(record.applied_changes),
            skipped_changes=list(skipped),
            note=record.note,
            events=[{"event_id": str(e.event_id), "type": e.event_type} for e in events],
            next_step=None if step is None else {"number": step.number, "role": step.role},
        ).model_dump(mode="json")

    return respond


def _summary(r: asyncpg.Record | DraftRecord) -> dict[str, Any]:
    if isinstance(r, DraftRecord):
        return {
            "version": r.meta.version, "stage": r.meta.stage, "content_sha256": r.content_sha256,
            "based_on_version": r.based_on_version, "meeting_id": r.meeting_id, "notulen_sha256": r.notulen_sha256,
            "rows": len(r.rows), "pagu_total": r.pagu_total, "blocking_findings": r.blocking,
            "warning_findings": r.warning, "pdf_sha256": r.pdf_sha256, "docx_sha256": r.docx_sha256,
            "note": r.note, "created_by": r.created_by, "created_at": r.created_at,
        }  # fmt: skip
    return {
        "version": r["version"], "stage": r["stage"], "content_sha256": r["content_sha256"],
        "based_on_version": r["based_on_version"], "meeting_id": r["meeting_id"],
        "notulen_sha256": r["notulen_sha256"], "rows": r["row_count"], "pagu_total": r["pagu_total"],
        "blocking_findings": r["blocking"], "warning_findings": r["warning"], "pdf_sha256": r["pdf_sha256"],
        "docx_sha256": r["docx_sha256"], "note": r["note"], "created_by": r["created_by"],
        "created_at": r["created_at"],
    }  # fmt: skip


async def _draft_or_404(conn: asyncpg.Connection, renja_id: UUID, version: int) -> DraftRecord:
    record = await store.get_draft(conn, renja_id, version)
    if record is None:
        raise HTTPException(404, f"Renja {renja_id} has no draft version {version}.")
    return record


# ======================================================================================================
# Step 4: data intake
# ======================================================================================================


@router.post(
    "/renja/{renja_id}/units/{unit_code}/rows",
    status_code=201,
    response_model=UnitRowsPublic,
    summary="Step 4 — a unit's program/kegiatan/sub kegiatan rows, CSV or XLSX (staf)",
    responses={
        **COMMAND_ERRORS,
        413: {"model": ErrorBody, "description": "file over the size limit"},
        422: {"model": IntakeErrorPublic, "description": "rows with errors (file, row, column); nothing stored"},
    },
)
async def upload_rows(
    renja_id: UUID,
    unit_code: str,
    request: Request,
    actor: Annotated[Actor, Depends(SOP_ACTOR)],
    file: Annotated[UploadFile, File(description="CSV (UTF-8/BOM, ; or ,) or XLSX")],
) -> Any:
    """Parse and store one unit's rows, replacing its earlier delivery (until collection is complete).

    All or nothing: a file with any bad row is refused with every error listed, and nothing is stored.
    """
    docs = documents(request)
    pool = runtime(request).require_pool()
    unit = _unit(docs.sop, unit_code)
    async with pool.acquire() as conn:
        require_turn(await _known_state(conn, renja_id), 4, actor, docs.sop)
    data = await _read_upload(request, file, docs.settings.max_upload_bytes)
    ref = _checked(file.filename or "berkas", data, docs.settings.max_upload_bytes)
    try:
        rows = parse_rows(ref.name, data, unit=unit.code)
    except IntakeError as exc:
        body = IntakeErrorPublic(
            message=f"{len(exc.errors)} error(s) in {ref.name}; fix them and upload the file again: {exc}",
            details=[RowErrorPublic(**e.model_dump()) for e in exc.errors],
        )
        return JSONResponse(status_code=422, content=body.model_dump())
    total = pagu_total(rows)
    await asyncio.to_thread(docs.files.put, data)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        # The row lock orders this write against a concurrent "collection complete" on the same Renja.
        state, _ = await load_state(conn, renja_id, for_update=True)
        require_turn(state, 4, actor, docs.sop)
        await store.replace_unit_rows(
            conn, renja_id=renja_id, unit=unit.code, file=ref, rows=rows, pagu_total=total,
            actor=f"{actor.name} ({actor.nip})", now=now,
        )  # fmt: skip
    levels = {level: sum(r.level == level for r in rows) for level in ("program", "kegiatan", "sub_kegiatan")}
    return UnitRowsPublic(
        renja_id=renja_id, unit=unit.code, unit_name=unit.name, file=_file_public(ref), rows=len(rows),
        rows_sha256=store.rows_sha256(rows), pagu_total=total, levels=levels,
    )  # fmt: skip


@router.post(
    "/renja/{renja_id}/units/{unit_code}/files",
    status_code=201,
    response_model=UnitFilesPublic,
    summary="Step 4 — a unit's attached files (berkas), any name, stored with SHA-256 (staf)",
    responses={
        **COMMAND_ERRORS,
        413: {"model": ErrorBody, "description": "a file over the size limit"},
        422: {"model": ErrorBody, "description": "an empty file, or an invalid request"},
    },
)
async def upload_files(
    renja_id: UUID,
    unit_code: str,
    request: Request,
    actor: Annotated[Actor, Depends(SOP_ACTOR)],
    files: Annotated[list[UploadFile], File(description="one or more files; all are refused if one is")],
) -> UnitFilesPublic:
    """Store the unit's files (0-byte: 422; over ``max_upload_bytes``: 413). All or nothing."""
    docs = documents(request)
    pool = runtime(request).require_pool()
    unit = _unit(docs.sop, unit_code)
    limit = docs.settings.max_upload_bytes
    async with pool.acquire() as conn:
        require_turn(await _known_state(conn, renja_id), 4, actor, docs.sop)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > len(files) * (limit + MULTIPART_OVERHEAD):
        raise HTTPException(413, f"The upload is {int(length):,} bytes; the limit is {limit:,} bytes per file.")
    checked: list[tuple[FileRef, bytes]] = []
    for upload in files:
        data = await upload.read()
        checked.append((_checked(upload.filename or "berkas", data, limit), data))
    for _, data in checked:
        await asyncio.to_thread(docs.files.put, data)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        state, _ = await load_state(conn, renja_id, for_update=True)
        require_turn(state, 4, actor, docs.sop)
        for ref, _ in checked:
            await store.add_unit_file(conn, renja_id=renja_id, unit=unit.code, file=ref,
                                      actor=f"{actor.name} ({actor.nip})", now=now)  # fmt: skip
    return UnitFilesPublic(
        renja_id=renja_id, unit=unit.code, unit_name=unit.name, files=[_file_public(ref) for ref, _ in checked]
    )


@router.get(
    "/renja/{renja_id}/units",
    response_model=UnitsPublic,
    summary="Step 4 — which units delivered what (any role)",
)
async def list_units(renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> UnitsPublic:
    docs = documents(request)
    async with runtime(request).require_pool().acquire() as conn:
        state = await _known_state(conn, renja_id)
        rows = await store.unit_rows(conn, renja_id)
        files = await store.unit_files(conn, renja_id)
    units: list[UnitPublic] = []
    for unit in docs.sop.units:
        r = rows.get(unit.code)
        attached = [
            FilePublic(name=f["name"], sha256=f["sha256"], size_bytes=f["size_bytes"], media_type=f["media_type"])
            for f in files.get(unit.code, [])
        ]
        units.append(
            UnitPublic(
                code=unit.code,
                name=unit.name,
                delivered=r is not None or bool(attached),
                rows_file=None
                if r is None
                else FilePublic(
                    name=r["file_name"], sha256=r["file_sha256"], size_bytes=r["file_size"], media_type=r["media_type"]
                ),
                rows=r["row_count"] if r else 0,
                rows_sha256=r["rows_sha256"] if r else None,
                pagu_total=r["pagu_total"] if r else 0,
                delivered_at=r["delivered_at"] if r else None,
                delivered_by=r["delivered_by"] if r else None,
                files=attached,
            )
        )
    return UnitsPublic(
        renja_id=renja_id,
        collection_complete=4 in state.completed_steps,
        missing=[u.code for u in units if not u.delivered],
        units=units,
    )


@router.get(
    "/renja/{renja_id}/units/{unit_code}/files/{sha256}",
    summary="Step 4 — download a unit's delivered file by its SHA-256 (any role)",
    response_class=Response,
)
async def download_unit_file(
    renja_id: UUID, unit_code: str, sha256: str, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> Response:
    docs = documents(request)
    async with runtime(request).require_pool().acquire() as conn:
        row = await conn.fetchrow(
            "SELECT name, media_type FROM unit_files WHERE renja_id = $1 AND unit = $2 AND sha256 = $3"
            " UNION ALL SELECT file_name, media_type FROM unit_rows"
            " WHERE renja_id = $1 AND unit = $2 AND file_sha256 = $3 LIMIT 1",
            renja_id,
            unit_code,
            sha256,
        )
    if row is None:
        raise HTTPException(404, f"Unit {unit_code} of Renja {renja_id} delivered no file with SHA-256 {sha256}.")
    return _file_response(request, await _stored(docs, sha256), sha256, row["media_type"], row["name"])


@router.post(
    "/renja/{renja_id}/collection/complete",
    status_code=201,
    summary="Step 4 — data collected and checked from every configured unit: DataCollected (staf)",
    responses={
        **COMMAND_ERRORS,
        409: {"model": ErrorBody, "description": "step 4 not due, or a delivery changed meanwhile"},
        422: {"model": ErrorBody, "description": "units still missing (`invalid_command`), or an invalid request"},
    },
)
async def complete_collection(
    renja_id: UUID, request: Request, actor: Annotated[Actor, Depends(SOP_ACTOR)]
) -> JSONResponse:
    """Publish ``DataCollected`` naming every unit's delivery; refused (422) while a unit is missing."""
    docs = documents(request)
    async with runtime(request).require_pool().acquire() as conn:
        delivered = await store.deliveries(conn, renja_id, docs.sop.unit_codes)
        if not delivered:
            state = await _known_state(conn, renja_id)
            require_turn(state, 4, actor, docs.sop)
            raise InvalidCommand(
                f"{docs.sop.step(4).label}: not yet delivered: {', '.join(docs.sop.unit_codes)}.",
                due_step=state.due_step,
                due_role=docs.sop.step(4).role,
            )

    total = sum(u.pagu_total for u in delivered)
    if total > PAGU_MAX:
        # The Rancangan Awal's pagu total is this sum, stored as bigint: refuse now, while a unit can still
        # deliver a corrected file, rather than at step 5 when step 4 is closed.
        biggest = ", ".join(f"{u.unit} {u.pagu_total:,}" for u in sorted(delivered, key=lambda u: -u.pagu_total)[:3])
        raise HTTPException(
            422,
            f"The units' pagu totals add up to {total:,} rupiah, beyond the storable {PAGU_MAX:,}; "
            f"correct the largest deliveries ({biggest}) and upload them again.",
        )

    async def unchanged(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
        # A delivery replaced between reading and committing would make the event lie about the data.
        if await store.deliveries(conn, renja_id, docs.sop.unit_codes) != delivered:
            raise HTTPException(409, "A unit's delivery changed while collection was being completed; retry.")

    command = CompleteDataCollection(units=tuple(delivered))
    return await run_command(request, actor, renja_id, command, effect=unchanged)


# ======================================================================================================
# Steps 5 and 7: drafts
# ======================================================================================================


@router.post(
    "/renja/{renja_id}/drafts/awal",
    status_code=201,
    response_model=DraftCreatedPublic,
    summary="Step 5 — Rancangan Awal from the collected rows: version, hash, findings, PDF/DOCX (staf)",
    responses=COMMAND_ERRORS,
)
async def create_awal(
    renja_id: UUID, request: Request, actor: Annotated[Actor, Depends(SOP_ACTOR)], body: AwalCreate | None = None
) -> JSONResponse:
    docs = documents(request)
    async with docs.draft_lock(renja_id):
        if (replay := await _replayed(request, actor, renja_id)) is not None:
            return replay
        return await _create_awal(docs, renja_id, request, actor, body.note if body else "")


async def _create_awal(docs: Documents, renja_id: UUID, request: Request, actor: Actor, note: str) -> JSONResponse:
    async with runtime(request).require_pool().acquire() as conn:
        state = await _known_state(conn, renja_id)
        require_turn(state, 5, actor, docs.sop)
        rows = await store.collected_rows(conn, renja_id, docs.sop.unit_codes)
    record = await _build_draft(docs, state, rows, renja_id=renja_id, stage="awal", actor=actor, note=note)
    command = CreateRancanganAwal(
        version=record.meta.version, content_sha256=record.content_sha256, rows=len(record.rows),
        pagu_total=record.pagu_total, blocking_findings=record.blocking, warning_findings=record.warning,
    )  # fmt: skip

    async def keep(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
        await store.insert_draft(conn, record)

    return await run_command(request, actor, renja_id, command, effect=keep, respond=_draft_respond(record, docs))


@router.post(
    "/renja/{renja_id}/drafts/akhir",
    status_code=201,
    response_model=DraftCreatedPublic,
    summary="Step 7 — Rancangan Akhir: the latest draft with the notulen's changes (and corrections) (staf)",
    responses={
        **COMMAND_ERRORS,
        422: {
            "model": ErrorBody,
            "description": "one of the request's own `changes` cannot be applied (unknown kode, field or amount), "
            "or an invalid request; a notulen change that does not apply is skipped and reported instead",
        },
    },
)
async def create_akhir(
    renja_id: UUID, body: AkhirCreate, request: Request, actor: Annotated[Actor, Depends(SOP_ACTOR)]
) -> JSONResponse:
    """The new version = the latest draft + the meeting's ``requested_changes`` (once: not again on a
    draft that already applied them, e.g. after a return) + ``body.changes``, in that order.

    A notulen change that does not apply to the draft (unknown or duplicated kode...) is skipped and
    reported in ``skipped_changes``, the note and a ``notulen_change_not_applied`` warning finding; a bad
    change in ``body.changes`` refuses the request (422) and nothing is created."""
    docs = documents(request)
    async with docs.draft_lock(renja_id):
        if (replay := await _replayed(request, actor, renja_id)) is not None:
            return replay
        return await _create_akhir(docs, renja_id, body, request, actor)


async def _create_akhir(
    docs: Documents, renja_id: UUID, body: AkhirCreate, request: Request, actor: Actor
) -> JSONResponse:
    async with runtime(request).require_pool().acquire() as conn:
        state = await _known_state(conn, renja_id)
        require_turn(state, 7, actor, docs.sop)
        assert state.meeting_id is not None  # step 7 is due only after MeetingHeld
        meeting = await store.get_meeting(conn, renja_id, state.meeting_id)
        base = await store.latest_draft(conn, renja_id)
    if meeting is None or base is None:
        raise HTTPException(409, f"The notulen of meeting {state.meeting_id} has not reached this service yet; retry.")
    already = base.meta.stage == "akhir" and base.meeting_id == state.meeting_id
    notulen = () if already else store.meeting_event(meeting).requested_changes
    # The notulen's changes apply one by one (a final record: one that does not fit is reported, never a
    # refusal); the staff's own changes are all or nothing (their request: they can correct it).
    rows, applied, skipped = apply_notulen_changes(base.rows, notulen)
    try:
        rows = apply_changes(rows, body.changes)
    except ChangeError as exc:
        raise HTTPException(422, f"A change cannot be applied to draft version {base.meta.version}: {exc}") from exc
    # After a return the notulen is not applied again, so what it could not apply is carried over as is.
    carried = [f for f in base.findings if f.rule == RULE_NOTULEN_NOT_APPLIED] if already else []
    note = body.note
    if skipped:
        listed = "; ".join(f"{k.change.kode} {k.change.field}: {k.reason}" for k in skipped)
        note = f"{note}\n\n" if note else ""
        note += f"Perubahan notulen yang tidak dapat diterapkan ({len(skipped)}): {listed}"
    extra = [*carried, *notulen_findings((k.change, k.reason) for k in skipped)]
    record = await _build_draft(docs, state, rows, renja_id=renja_id, stage="akhir", actor=actor, based_on=base,
                                applied=[*applied, *body.changes], note=note, extra_findings=extra)  # fmt: skip
    assert record.meeting_id is not None and record.notulen_sha256 is not None
    command = CreateRancanganAkhir(
        version=record.meta.version, content_sha256=record.content_sha256, based_on_version=base.meta.version,
        meeting_id=record.meeting_id, notulen_sha256=record.notulen_sha256, rows=len(record.rows),
        pagu_total=record.pagu_total, blocking_findings=record.blocking, warning_findings=record.warning,
    )  # fmt: skip

    async def keep(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
        await store.insert_draft(conn, record)

    return await run_command(
        request, actor, renja_id, command, effect=keep, respond=_draft_respond(record, docs, skipped)
    )


@router.get(
    "/renja/{renja_id}/drafts",
    response_model=list[DraftSummaryPublic],
    summary="Every draft version: stage, hash, rows, pagu total, findings counts (any role)",
)
async def list_drafts(
    renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> list[DraftSummaryPublic]:
    async with runtime(request).require_pool().acquire() as conn:
        records = await store.list_drafts(conn, renja_id)
        if not records:
            await _known_state(conn, renja_id)
    return [DraftSummaryPublic(**_summary(r)) for r in records]


# Declared before /drafts/{version}: "diff" is not a version number.
@router.get(
    "/renja/{renja_id}/drafts/diff",
    response_model=DiffPublic,
    summary="What changed between two draft versions: rows added, removed, changed field by field (any role)",
)
async def draft_diff(
    renja_id: UUID,
    request: Request,
    _: Annotated[Actor, Depends(ANY_ROLE)],
    from_version: Annotated[int, Query(alias="from", ge=1)],
    to_version: Annotated[int, Query(alias="to", ge=1)],
) -> DiffPublic:
    async with runtime(request).require_pool().acquire() as conn:
        old = await _draft_or_404(conn, renja_id, from_version)
        new = await _draft_or_404(conn, renja_id, to_version)
    return DiffPublic(renja_id=renja_id, from_version=from_version, to_version=to_version,
                      diff=diff(old.rows, new.rows))  # fmt: skip


@router.get(
    "/renja/{renja_id}/drafts/{version}",
    response_model=DraftPublic,
    summary="One draft version: meta, rows, applied changes (any role)",
)
async def get_draft(
    renja_id: UUID, version: int, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> DraftPublic:
    async with runtime(request).require_pool().acquire() as conn:
        record = await _draft_or_404(conn, renja_id, version)
    return DraftPublic(
        **_summary(record), meta=record.meta, applied_changes=list(record.applied_changes), content=list(record.rows)
    )


@router.get(
    "/renja/{renja_id}/drafts/{version}/findings",
    response_model=list[Finding],
    summary="Findings of a draft version: severity, rule, codes, message, source (any role)",
)
async def get_findings(
    renja_id: UUID, version: int, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]
) -> list[Finding]:
    async with runtime(request).require_pool().acquire() as conn:
        record = await _draft_or_404(conn, renja_id, version)
    return list(record.findings)


@router.get(
    "/renja/{renja_id}/drafts/{version}/document.{kind}",
    summary="A draft version rendered as PDF or DOCX; ETag = SHA-256 of the file (any role)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, DOCX_MEDIA: {}}}},
)
async def get_document(
    renja_id: UUID,
    version: int,
    kind: Literal["pdf", "docx"],
    request: Request,
    _: Annotated[Actor, Depends(ANY_ROLE)],
) -> Response:
    docs = documents(request)
    async with runtime(request).require_pool().acquire() as conn:
        record = await _draft_or_404(conn, renja_id, version)
    sha = record.pdf_sha256 if kind == "pdf" else record.docx_sha256
    media = "application/pdf" if kind == "pdf" else DOCX_MEDIA
    name = f"renja-{record.meta.stage}-v{version}.{kind}"
    return _file_response(request, await _stored(docs, sha), sha, media, name)


# ======================================================================================================
# Rendered records of steps 6 and 10 (facts consumed from Kafka, rendered on first GET)
# ======================================================================================================


@router.get(
    "/renja/{renja_id}/meetings/{meeting_id}/{kind}.pdf",
    summary="Step 6 records: the meeting's daftar hadir or notulen as PDF (any role)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def get_meeting_pdf(
    renja_id: UUID,
    meeting_id: UUID,
    kind: Literal["daftar-hadir", "notulen"],
    request: Request,
    _: Annotated[Actor, Depends(ANY_ROLE)],
) -> Response:
    docs = documents(request)
    key = kind.replace("-", "_")
    pool = runtime(request).require_pool()
    async with pool.acquire() as conn:
        record = await store.get_meeting(conn, renja_id, meeting_id)
    if record is None:
        raise HTTPException(404, f"Meeting {meeting_id} of Renja {renja_id} is not known to this service (yet).")
    sha: str | None = record[f"{key}_pdf"]
    if sha is None:
        event = store.meeting_event(record)
        meeting = MeetingDoc(
            opd=record["opd"], region=docs.region, fiscal_year=record["fiscal_year"], held_at=event.held_at,
            place=event.place, notulis=event.actor.name, draft_version=event.draft_version,
            draft_sha256=event.draft_sha256, attendees=event.attendees, points=event.points,
            decisions=event.decisions, requested_changes=event.requested_changes,
        )  # fmt: skip
        renderer = render_daftar_hadir_pdf if key == "daftar_hadir" else render_notulen_pdf
        async with docs.render_lock:
            pdf = await asyncio.to_thread(renderer, meeting)
        rendered = await asyncio.to_thread(docs.files.put, pdf)
        async with pool.acquire() as conn:
            sha = await store.set_meeting_pdf(conn, renja_id, meeting_id, key, rendered)
    return _file_response(request, await _stored(docs, sha), sha, "application/pdf", f"{kind}-{meeting_id}.pdf")


@router.get(
    "/renja/{renja_id}/signed.pdf",
    summary="Step 10 record: the signed Renja as PDF with the signature block (any role)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def get_signed_pdf(renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> Response:
    docs = documents(request)
    pool = runtime(request).require_pool()
    async with pool.acquire() as conn:
        signed = await store.get_signature(conn, renja_id)
        if signed is None:
            raise HTTPException(404, f"Renja {renja_id} is not signed (or the signature has not reached us yet).")
        event, sha = signed
        record = await _draft_or_404(conn, renja_id, event.version)
    if sha is None:
        if record.content_sha256 != event.content_sha256:
            raise HTTPException(
                409, f"The signature names hash {event.content_sha256[:12]}…, but draft version {event.version} "
                f"has {record.content_sha256[:12]}…; the signed PDF cannot be produced.",
            )  # fmt: skip
        signature = SignatureBlock(
            signer_name=event.actor.name, signer_nip=event.actor.nip,
            signer_position=f"Kepala {docs.sop.agency.short_name}", signed_at=event.occurred_at,
            content_sha256=event.content_sha256, key_id=event.key_id,
        )  # fmt: skip
        async with docs.render_lock:
            pdf = await asyncio.to_thread(render_draft_pdf, record.meta, record.rows, record.findings, signature)
        rendered = await asyncio.to_thread(docs.files.put, pdf)
        async with pool.acquire() as conn:
            sha = await store.set_signature_pdf(conn, renja_id, rendered)
    return _file_response(
        request, await _stored(docs, sha), sha, "application/pdf", f"renja-signed-v{event.version}.pdf"
    )
