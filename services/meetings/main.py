"""Composition root of the meetings service (SOP step 6: consultation meeting, daftar hadir, notulen)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.meetings.api import router
from services.meetings.service import MeetingsService
from services.meetings.settings import MeetingsSettings
from shared.app import build_service_app
from shared.runtime import Runtime


def create_app(settings: MeetingsSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.meetings.main:create_app --factory`` (port 8103 in the local stack).

    The ``MeetingsService`` (``deps.MeetingsDep``) runs on the runtime's command unit and pool.
    """
    app = build_service_app(
        settings or MeetingsSettings(),
        title="Renja — meetings",
        description=(
            "Step 6 of the SOP Penyusunan Renja: the consultation meeting with the Sekretariat and Bidang on the "
            "Rancangan Awal — schedule, daftar hadir, notulen; MeetingHeld once both records exist."
        ),
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
    )
    rt: Runtime = app.state.runtime
    app.state.meetings = MeetingsService(rt.commands, rt.require_pool, rt.sop)
    return app
