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
from services.audit.metrics import AnomalyCollector
from services.audit.projector import Projector
from services.audit.region_api import router as region_router
from services.audit.region_service import RegionService
from services.audit.service import AuditService
from services.audit.settings import AuditSettings
from services.audit.store import anomaly_counts
from services.audit.tables import LIVE
from services.audit.versioning import ensure_projection_version
from services.audit.workcalendar import calendar_from_sop
from shared.app import build_service_app
from shared.origin import process_trust
from shared.runtime import Runtime


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.audit.main:create_app --factory --port 8106``."""
    cfg = settings or AuditSettings()
    anomalies = AnomalyCollector()

    async def start(rt: Runtime) -> None:
        key = load_signing_key(cfg)
        process_trust()  # the key registry: a deployment without one stops here, not at the first record
        calendar = calendar_from_sop(rt.sop)
        assert rt.pool is not None
        await ensure_projection_version(rt.pool)  # a new fold version refolds the log from offset 0
        async with rt.pool.acquire() as conn:
            anomalies.reset(await anomaly_counts(conn))
        app.state.audit = AuditService(settings=cfg, sop=rt.sop, pool=rt.pool, signing_key=key, calendar=calendar)
        # opd_name: the region registry's name for a code; a code it does not know falls back to the name
        # the cycle's arahan carried (services.audit.region.opd_display_name)
        registry = app.state.registry

        def opd_name(code: str) -> str | None:
            found = registry.find(code)
            return found.name if found is not None else None

        app.state.region = RegionService(sop=rt.sop, pool=rt.pool, calendar=calendar, opd_name=opd_name)
        projection = LiveProjection(
            pool=rt.pool,
            bootstrap=cfg.kafka_bootstrap,
            topic=cfg.event_topic,
            projector=Projector(rt.sop, key, LIVE),
            batch_max=cfg.projection_batch_max,
            on_batch=lambda result: anomalies.add(result.anomalies),
        )
        rt.tasks.append(asyncio.create_task(projection.run(), name="audit-projection"))
        rt.projection_lag = lambda: projection.lag

    app = build_service_app(
        cfg,
        title="Renja — audit",
        description=(
            "The auditor's read-only projection of the Renja event log: timelines with working minutes "
            "against the SOP standards, hash-chain verification with signed heads, the SOP step table, and the "
            "region-wide view of every OPD's cycle (GET /region)."
        ),
        routers=[router, region_router],
        migrations=Path(__file__).parent / "migrations",
        on_startup=start,
        consume=False,
        state_route=False,
    )
    app.state.metrics.registry.register(anomalies)
    return app
