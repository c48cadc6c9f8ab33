"""HTTP edge of the documents service: thin routes for SOP step 4 (unit data and files, collection
complete), step 5 (Rancangan Awal), step 7 (Rancangan Akhir), every draft version with its findings,
diff and rendered files, and the rendered records of steps 6 (daftar hadir, notulen) and 10 (signed Renja).

Each route turns the request into the use case's inputs (``services.documents.service``) and its answer
into a response; refusals are ``DomainError``s mapped to their status by ``shared.web.errors``, except
``RowsRefused`` whose answer lists every row error (``rows_refused``, installed in ``main.create_app``).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from services.documents.deps import DocumentsDep
from services.documents.domain import RowsRefused
from services.documents.files import DOCX_MEDIA, Incoming, file_response
from services.documents.findings import Finding
from services.documents.schemas import (
    AkhirCreate,
    AwalCreate,
    DiffPublic,
    DraftCreatedPublic,
    DraftPublic,
    DraftSummaryPublic,
    IntakeErrorPublic,
    RowErrorPublic,
    UnitFilesPublic,
    UnitRowsPublic,
    UnitsPublic,
)
from shared.auth import ANY_ROLE, SOP_ROLES, require_roles
from shared.events import Actor
from shared.web.commands import authorise_opd, command_call, command_response
from shared.web.errors import COMMAND_ERRORS, ErrorBody
from shared.web.schemas import INT4_MAX, DraftVersion

router = APIRouter(tags=["documents"])

# Every SOP role may call a command route; which one may act is the SOP file's step role, checked by
# ``shared.sop.ensure_due`` and the shared decider (403 for the wrong role). Auditors never act.
SOP_ACTOR = require_roles(*SOP_ROLES)
SopActor = Annotated[Actor, Depends(SOP_ACTOR)]
Reader = Annotated[Actor, Depends(ANY_ROLE)]


async def rows_refused(_: Request, exc: Exception) -> JSONResponse:
    """``RowsRefused`` as ``IntakeErrorPublic`` (422 ``invalid_rows``): every error with file, row, column."""
    assert isinstance(exc, RowsRefused)
    body = IntakeErrorPublic(message=exc.message, details=[RowErrorPublic(**e.model_dump()) for e in exc.errors])
    return JSONResponse(status_code=422, content=body.model_dump())


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
        422: {
            "model": IntakeErrorPublic | ErrorBody,
            "description": "rows with errors (`invalid_rows`: file, row, column; nothing stored), or an invalid "
            "request (`invalid_request`)",
        },
    },
)
async def upload_rows(
    renja_id: UUID,
    unit_code: str,
    request: Request,
    actor: SopActor,
    documents: DocumentsDep,
    file: Annotated[UploadFile, File(description="CSV (UTF-8/BOM, ; or ,) or XLSX")],
) -> UnitRowsPublic:
    """Parse and store one unit's rows, replacing its earlier delivery (until collection is complete).

    All or nothing: a file with any bad row is refused with every error listed, and nothing is stored.
    """
    await authorise_opd(request, actor, renja_id)
    incoming = Incoming.of(request, [file], too_large_hint=" Split or compress it.")
    return await documents.upload_rows(renja_id, unit_code, actor, incoming)


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
    actor: SopActor,
    documents: DocumentsDep,
    files: Annotated[list[UploadFile], File(description="one or more files; all are refused if one is")],
) -> UnitFilesPublic:
    """Store the unit's files (0-byte: 422; over ``max_upload_bytes``: 413). All or nothing."""
    await authorise_opd(request, actor, renja_id)
    return await documents.upload_files(renja_id, unit_code, actor, Incoming.of(request, files))


@router.get(
    "/renja/{renja_id}/units",
    response_model=UnitsPublic,
    summary="Step 4 — which units delivered what (any role)",
)
async def list_units(renja_id: UUID, _: Reader, documents: DocumentsDep) -> UnitsPublic:
    return await documents.units(renja_id)


@router.get(
    "/renja/{renja_id}/units/{unit_code}/files/{sha256}",
    summary="Step 4 — download a unit's delivered file by its SHA-256 (any role)",
    response_class=Response,
)
async def download_unit_file(
    renja_id: UUID, unit_code: str, sha256: str, request: Request, _: Reader, documents: DocumentsDep
) -> Response:
    return file_response(request, await documents.unit_file(renja_id, unit_code, sha256))


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
    renja_id: UUID, request: Request, actor: SopActor, documents: DocumentsDep
) -> JSONResponse:
    """Publish ``DataCollected`` naming every unit's delivery; refused (422) while a unit is missing."""
    return command_response(await documents.complete_collection(await command_call(request, actor, renja_id)))


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
    renja_id: UUID, request: Request, actor: SopActor, documents: DocumentsDep, body: AwalCreate | None = None
) -> JSONResponse:
    return command_response(await documents.create_awal(await command_call(request, actor, renja_id), body))


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
    renja_id: UUID, body: AkhirCreate, request: Request, actor: SopActor, documents: DocumentsDep
) -> JSONResponse:
    """The new version = the latest draft + the meeting's ``requested_changes`` (once: not again on a
    draft that already applied them, e.g. after a return) + ``body.changes``, in that order.

    A notulen change that does not apply to the draft (unknown or duplicated kode...) is skipped and
    reported in ``skipped_changes``, the note and a ``notulen_change_not_applied`` warning finding; a bad
    change in ``body.changes`` refuses the request (422) and nothing is created."""
    return command_response(await documents.create_akhir(await command_call(request, actor, renja_id), body))


@router.get(
    "/renja/{renja_id}/drafts",
    response_model=list[DraftSummaryPublic],
    summary="Every draft version: stage, hash, rows, pagu total, findings counts (any role)",
)
async def list_drafts(renja_id: UUID, _: Reader, documents: DocumentsDep) -> list[DraftSummaryPublic]:
    return await documents.drafts(renja_id)


# Declared before /drafts/{version}: "diff" is not a version number.
@router.get(
    "/renja/{renja_id}/drafts/diff",
    response_model=DiffPublic,
    summary="What changed between two draft versions: rows added, removed, changed field by field (any role)",
)
async def draft_diff(
    renja_id: UUID,
    _: Reader,
    documents: DocumentsDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=INT4_MAX)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=INT4_MAX)],
) -> DiffPublic:
    return await documents.diff(renja_id, from_version, to_version)


@router.get(
    "/renja/{renja_id}/drafts/{version}",
    response_model=DraftPublic,
    summary="One draft version: meta, rows, applied changes (any role)",
)
async def get_draft(renja_id: UUID, version: DraftVersion, _: Reader, documents: DocumentsDep) -> DraftPublic:
    return await documents.draft_public(renja_id, version)


@router.get(
    "/renja/{renja_id}/drafts/{version}/findings",
    response_model=list[Finding],
    summary="Findings of a draft version: severity, rule, codes, message, source (any role)",
)
async def get_findings(renja_id: UUID, version: DraftVersion, _: Reader, documents: DocumentsDep) -> list[Finding]:
    return await documents.findings(renja_id, version)


@router.get(
    "/renja/{renja_id}/drafts/{version}/document.{kind}",
    summary="A draft version rendered as PDF or DOCX; ETag = SHA-256 of the file (any role)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, DOCX_MEDIA: {}}}},
)
async def get_document(
    renja_id: UUID,
    version: DraftVersion,
    kind: Literal["pdf", "docx"],
    request: Request,
    _: Reader,
    documents: DocumentsDep,
) -> Response:
    return file_response(request, await documents.draft_file(renja_id, version, kind))


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
    _: Reader,
    documents: DocumentsDep,
) -> Response:
    return file_response(request, await documents.meeting_pdf(renja_id, meeting_id, kind))


@router.get(
    "/renja/{renja_id}/signed.pdf",
    summary="Step 10 record: the signed Renja as PDF with the signature block (any role)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def get_signed_pdf(renja_id: UUID, request: Request, _: Reader, documents: DocumentsDep) -> Response:
    return file_response(request, await documents.signed_pdf(renja_id))
