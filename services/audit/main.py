"""Composition root of the audit service: the auditor's projection of ``renja.events`` (port 8106).

The generic per-event consumer is off (``consume=False``): the audit folds the log in batches with its
own :class:`~services.audit.live.LiveProjection`, offsets stored with the rows. At start-up, once the
pool exists, this module loads the signing key, refolds after a new ``PROJECTION_VERSION``, builds the
:class:`~services.audit.service.AuditService` the routes depend on (``api.AuditDep``) and starts the
live loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.audit.api import router
from services.audit.keys import load_signing_key
from services.audit.live import LiveProjection
from services.audit.projector import Projector
from services.audit.service import AuditService
from services.audit.settings import AuditSettings
from services.audit.tables import LIVE
from services.audit.versioning import ensure_projection_version
from services.audit.workcalendar import calendar_from_sop
from shared.app import build_service_app
from shared.origin import process_trust
from shared.runtime import Runtime


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.audit.main:create_app --factory --port 8106``."""
    cfg = settings or AuditSettings()

    async def start(rt: Runtime) -> None:
        key = load_signing_key(cfg)
        process_trust()  # the key registry: a deployment without one stops here, not at the first record
        calendar = calendar_from_sop(rt.sop)
        assert rt.pool is not None
        await ensure_projection_version(rt.pool)  # a new fold version refolds the log from offset 0
        app.state.audit = AuditService(settings=cfg, sop=rt.sop, pool=rt.pool, signing_key=key, calendar=calendar)
        projection = LiveProjection(
            pool=rt.pool,
            bootstrap=cfg.kafka_bootstrap,
            topic=cfg.event_topic,
            projector=Projector(rt.sop, key, LIVE),
            batch_max=cfg.projection_batch_max,
        )
        rt.tasks.append(asyncio.create_task(projection.run(), name="audit-projection"))
        rt.projection_lag = lambda: projection.lag

    app = build_service_app(
        cfg,
        title="Renja — audit",
        description=(
            "The auditor's read-only projection of the Renja event log: timelines with working minutes "
            "against the SOP standards, hash-chain verification with signed heads, the SOP step table."
        ),
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
        on_startup=start,
        consume=False,
        state_route=False,
    )
    return app
