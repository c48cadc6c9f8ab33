"""Composition root of the documents service (SOP steps 4, 5 and 7; rendered records of steps 6 and 10)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from services.documents import consumers
from services.documents.api import router, rows_refused
from services.documents.blobs import BlobStore, DirectoryBlobStore, PostgresBlobStore
from services.documents.domain import RowsRefused
from services.documents.files import DocumentFiles
from services.documents.findings import load_nomenclature, load_renstra
from services.documents.service import DocumentsService
from services.documents.settings import DocumentsSettings
from services.documents.verifier import load_sumber_dana
from shared.app import build_service_app
from shared.runtime import Runtime


def create_app(settings: DocumentsSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.documents.main:create_app --factory``.

    Loads the SOP file (units to collect from) and the reference data (nomenclature, Renstra) once;
    a missing or broken file fails the start with a message naming it.
    """
    settings = settings or DocumentsSettings()
    # WeasyPrint logs every layout step at INFO; one line per page per render would drown the service log.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    app = build_service_app(
        settings,
        title="Renja — documents",
        description=(
            "Steps 4, 5 and 7 of the SOP Penyusunan Renja: the units' data and files, the Rancangan Awal and "
            "the Rancangan Akhir as versioned drafts with findings, diffs and rendered PDF/DOCX; plus the "
            "rendered daftar hadir, notulen (step 6) and signed Renja (step 10)."
        ),
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        reactions=consumers.reactions,
    )
    app.add_exception_handler(RowsRefused, rows_refused)
    rt: Runtime = app.state.runtime
    app.state.documents = DocumentsService(
        settings=settings,
        sop=rt.sop,
        pool=rt.require_pool,
        commands=rt.commands,
        files=DocumentFiles(blob_store(settings, rt)),
        nomenclature=load_nomenclature(settings.nomenclature_file),
        renstra=load_renstra(settings.renstra_file) if settings.renstra_file is not None else None,
        sumber_dana=load_sumber_dana(settings.sumber_dana_file),
    )
    return app


def blob_store(settings: DocumentsSettings, rt: Runtime) -> BlobStore:
    """The store ``RENJA_FILE_STORE`` names: the documents database (default) or ``RENJA_FILES_DIR``."""
    if settings.file_store == "directory":
        return DirectoryBlobStore(settings.files_dir)
    return PostgresBlobStore(rt.require_pool)
