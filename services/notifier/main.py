"""Composition root of the notifier service (SOP step 11 and every outbound message)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.notifier.api import router
from services.notifier.consumers import reactions
from services.notifier.dispatch import run_mail_dispatcher, run_webhook_dispatcher
from services.notifier.service import NotifierService
from services.notifier.settings import NotifierSettings
from shared.app import build_service_app
from shared.runtime import Runtime


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.notifier.main:create_app --factory``.

    Every event type gets the same reaction (webhooks, projection, next-actor mail; ``consumers``); the
    ``NotifierService`` (``deps.NotifierDep``) runs the routes' use cases; two dispatcher tasks send what
    the transactions queued and are cancelled with the other runtime tasks on shutdown.
    """
    cfg = settings or NotifierSettings()

    async def start_dispatchers(rt: Runtime) -> None:
        pool = rt.require_pool()
        rt.tasks.append(asyncio.create_task(run_mail_dispatcher(pool, cfg), name="mail-dispatcher"))
        rt.tasks.append(asyncio.create_task(run_webhook_dispatcher(pool, cfg), name="webhook-dispatcher"))

    app = build_service_app(
        cfg,
        title="Renja — notifier",
        description=(
            "Step 11 of the SOP Penyusunan Renja (distribution, archive reference, proof of receipt) and every "
            "outbound message: next-actor e-mails and signed webhooks (Standard Webhooks)."
        ),
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        reactions=lambda rt: reactions(cfg, rt.sop),
        on_startup=start_dispatchers,
    )
    rt: Runtime = app.state.runtime
    app.state.notifier = NotifierService(cfg, rt.sop, rt.require_pool, rt.commands)
    return app
