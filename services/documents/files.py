"""Files of the documents service: uploads (reading, size and emptiness checks, the rows they hold),
the content-addressed blob store's reads and writes, rendering drafts and records to
PDF/DOCX, and serving stored bytes with ``ETag`` = SHA-256.

Rendering policy (why): WeasyPrint takes seconds and is not made for concurrent use, so renders run in a
worker thread, one at a time per process (``DocumentFiles.render_lock``), and never inside a database
transaction; the rendered bytes are stored content-addressed before any row names them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

import asyncpg
from fastapi import Request, Response

from services.documents.blobs import BlobStore
from services.documents.domain import InvalidRequest, RowsRefused, TooLarge, Unavailable
from services.documents.draft import DraftMeta
from services.documents.findings import Finding
from services.documents.intake import IntakeError, Row, check_upload, parse_rows
from services.documents.rendering import MeetingDoc, render_draft_docx, render_draft_pdf
from services.documents.store import meeting_event
from shared.events import FileRef

PDF_MEDIA = "application/pdf"
DOCX_MEDIA = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# Multipart framing around one file; a Content-Length beyond limit + this is refused before reading.
MULTIPART_OVERHEAD = 64 * 1024

# ======================================================================================================
# Uploads
# ======================================================================================================


class Upload(Protocol):
    """One uploaded file as the web framework hands it over (``fastapi.UploadFile`` is one)."""

    @property
    def filename(self) -> str | None: ...

    async def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """The files of one upload request, not read yet: the request's declared ``Content-Length`` (bytes,
    None when absent) and its file parts; ``too_large_hint`` ends the early 413 message."""

    declared_length: int | None
    parts: Sequence[Upload]
    too_large_hint: str = ""

    @classmethod
    def of(cls, request: Request, parts: Sequence[Upload], too_large_hint: str = "") -> Incoming:
        length = request.headers.get("content-length", "")
        return cls(int(length) if length.isdigit() else None, parts, too_large_hint)


@dataclass(frozen=True, slots=True)
class Received:
    """One uploaded file, read and accepted: its ``FileRef`` (NFC name, SHA-256, size) and bytes."""

    ref: FileRef
    data: bytes


def checked(name: str, data: bytes, limit: int) -> FileRef:
    """The ``FileRef`` of an accepted upload; ``TooLarge`` (413) over ``limit`` bytes, ``InvalidRequest``
    (422) for an empty file, each with ``check_upload``'s Indonesian message."""
    check = check_upload(name, data, limit)
    if not check.ok:
        raise (TooLarge if check.problem == "too_large" else InvalidRequest)(check.message)
    return check.file_ref()


async def read_uploads(incoming: Incoming, limit: int) -> list[Received]:
    """Read and check every part (all or nothing). ``TooLarge`` (413) before reading anything when the
    request declares more than ``limit`` bytes per file (plus multipart framing)."""
    length = incoming.declared_length
    if length is not None and length > len(incoming.parts) * (limit + MULTIPART_OVERHEAD):
        raise TooLarge(
            f"The upload is {length:,} bytes; the limit is {limit:,} bytes per file.{incoming.too_large_hint}"
        )
    received: list[Received] = []
    for part in incoming.parts:
        data = await part.read()
        received.append(Received(checked(part.filename or "berkas", data, limit), data))
    return received


def read_rows(received: Received, unit: str) -> list[Row]:
    """The program/kegiatan/sub kegiatan rows of a unit's CSV or XLSX file; ``RowsRefused`` (422) listing
    every error when any row is bad."""
    try:
        return parse_rows(received.ref.name, received.data, unit=unit)
    except IntakeError as exc:
        raise RowsRefused(
            f"{len(exc.errors)} error(s) in {received.ref.name}; fix them and upload the file again: {exc}",
            exc.errors,
        ) from exc


# ======================================================================================================
# Stored and rendered files
# ======================================================================================================


@dataclass(frozen=True, slots=True)
class StoredFile:
    """Stored bytes to serve: their SHA-256 (the ``ETag``), media type and download name."""

    data: bytes
    sha256: str
    media_type: str
    filename: str


@dataclass
class DocumentFiles:
    """The content-addressed blob store (``services.documents.blobs``) and the renderers, one at a time."""

    store: BlobStore
    render_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def put(self, data: bytes) -> str:
        """Store ``data``; its SHA-256."""
        return await self.store.put(data)

    async def read(self, sha: str) -> bytes:
        """The stored bytes; ``Unavailable`` (503) when the file is missing from the store."""
        try:
            return await self.store.read(sha)
        except FileNotFoundError as exc:
            raise Unavailable(f"The stored file {sha[:12]}… is missing from the file store; restore it.") from exc

    async def render(self, renderer: Callable[..., bytes], *args: object) -> bytes:
        """``renderer(*args)`` in a worker thread, serialised with every other render of this process."""
        async with self.render_lock:
            return await asyncio.to_thread(renderer, *args)

    async def render_pdf(self, renderer: Callable[..., bytes], *args: object) -> str:
        """Render a PDF and store it; its SHA-256."""
        return await self.put(await self.render(renderer, *args))

    async def render_draft(
        self, meta: DraftMeta, rows: Sequence[Row], findings: Sequence[Finding]
    ) -> tuple[FileRef, FileRef]:
        """Render and store the draft's PDF and DOCX; their ``FileRef``s."""
        async with self.render_lock:
            pdf = await asyncio.to_thread(render_draft_pdf, meta, rows, findings)
            docx = await asyncio.to_thread(render_draft_docx, meta, rows, findings)
        pdf_sha = await self.put(pdf)
        docx_sha = await self.put(docx)
        return (
            FileRef(name=f"renja-v{meta.version}.pdf", sha256=pdf_sha, size_bytes=len(pdf), media_type=PDF_MEDIA),
            FileRef(name=f"renja-v{meta.version}.docx", sha256=docx_sha, size_bytes=len(docx), media_type=DOCX_MEDIA),
        )

    async def stored(self, sha: str, media_type: str, filename: str) -> StoredFile:
        """The stored file ``sha`` ready to serve (``Unavailable`` when missing)."""
        return StoredFile(await self.read(sha), sha, media_type, filename)


def meeting_doc(record: asyncpg.Record, region: str) -> MeetingDoc:
    """What the daftar hadir and notulen print, from a consumed meeting (``store.get_meeting``)."""
    event = meeting_event(record)
    return MeetingDoc(
        opd=record["opd"], region=region, fiscal_year=record["fiscal_year"], held_at=event.held_at,
        place=event.place, notulis=event.actor.name, draft_version=event.draft_version,
        draft_sha256=event.draft_sha256, attendees=event.attendees, points=event.points,
        decisions=event.decisions, requested_changes=event.requested_changes,
    )  # fmt: skip


# ======================================================================================================
# Serving
# ======================================================================================================


def file_response(request: Request, stored: StoredFile) -> Response:
    """Serve stored bytes with ``ETag`` = SHA-256 (304 for a matching ``If-None-Match``)."""
    etag = f'"{stored.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=0, must-revalidate",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(stored.filename)}",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(content=stored.data, media_type=stored.media_type, headers=headers)
