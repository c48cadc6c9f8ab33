"""Composition root of the directive service (SOP steps 1-3 and cancellation)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.directive.api import router
from services.directive.service import DirectiveService
from services.directive.settings import DirectiveSettings
from shared.app import build_service_app
from shared.runtime import Runtime


def create_app(settings: DirectiveSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.directive.main:create_app --factory``.

    The ``DirectiveService`` (on ``app.state.directive``, reached through ``deps.DirectiveDep``) runs on
    the runtime's command unit and pool.
    """
    settings = settings or DirectiveSettings()
    app = build_service_app(
        settings,
        title="Renja — directive",
        description="Steps 1-3 of the SOP Penyusunan Renja: arahan, instruksi, perintah; and cancellation.",
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
    )
    rt: Runtime = app.state.runtime
    app.state.directive = DirectiveService(rt.commands, rt.require_pool, app.state.registry, settings)
    return app
