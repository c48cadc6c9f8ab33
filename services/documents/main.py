"""Composition root of the documents service (SOP steps 4, 5 and 7; rendered records of steps 6 and 10)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from services.documents import store
from services.documents.api import Documents, router
from services.documents.findings import load_nomenclature, load_renstra
from services.documents.settings import DocumentsSettings
from shared.app import build_service_app
from shared.events import MeetingHeld, Signed
from shared.sop import load_sop


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
        reactions=lambda _rt: {MeetingHeld: store.on_meeting_held, Signed: store.on_signed},
    )
    app.state.documents = Documents(
        settings=settings,
        sop=load_sop(settings.sop_file),
        files=store.FileStore(settings.files_dir),
        nomenclature=load_nomenclature(settings.nomenclature_file),
        renstra=load_renstra(settings.renstra_file),
    )
    return app
