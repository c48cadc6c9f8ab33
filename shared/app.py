"""The composition of a service's FastAPI app: settings → SOP → runtime (pool, relay, consumer, command
unit) → routes, error mapping and ops routes (``shared.web``).

Invariants:
- nothing is built at import time: ``build_service_app`` is called from each service's ``create_app``;
- the lifespan opens the pool, runs the migrations, starts the outbox relay and (unless ``consume=False``)
  the idempotent consumer, and cancels every task on shutdown;
- each app has its own metrics registry (``shared.web.metrics``) and Kafka readiness probe: several apps
  in one process (the tests) never share counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
import structlog
from fastapi import APIRouter, FastAPI

from shared.auth import TokenVerifier
from shared.command import CommandUnit, Reactions
from shared.db import create_pool, migrate
from shared.events import Event
from shared.inbox import Delivery, Handler, IdempotentConsumer
from shared.logging import configure_logging
from shared.origin import process_trust, service_signer
from shared.outbox import OutboxRelay
from shared.process import fold_consumed
from shared.registry import load_registry
from shared.registry_api import router as registry_router
from shared.runtime import KafkaProbe, Runtime
from shared.settings import ServiceSettings
from shared.sop import load_sop
from shared.tracing import configure_tracing, instrument_app
from shared.web.commands import publication_router
from shared.web.errors import install_error_handlers
from shared.web.metrics import install_metrics
from shared.web.middleware import RequestContextMiddleware
from shared.web.openapi import document_errors
from shared.web.ops import common_router

log = structlog.get_logger(__name__)


def build_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    migrations: Path | None,
    reactions: Callable[[Runtime], Reactions] | None = None,
    on_startup: Callable[[Runtime], Awaitable[None]] | None = None,
    consume: bool = True,
    state_route: bool = True,
) -> FastAPI:
    """Assemble a service: settings → SOP and region registry → token verifier → lifespan (pool,
    migrations, relay, consumer). The registry is ``app.state.registry`` (``GET /registry/...``).

    ``reactions(rt)`` maps an event class to what this service does, beyond folding the SOP state, when
    that event happens (e.g. the notifier mails the next actor): for other services' events in the
    consumer's transaction, for the service's own events in the command's (``shared.command``) — each
    event reaches its reaction once.
    """
    configure_logging(settings.service, settings.log_level)
    configure_tracing(settings.service, settings.tracing, settings.trace_file)
    sop = load_sop(settings.sop_file)
    registry = load_registry(settings.registry_file)  # RegistryFileError (file:line: field) stops start-up
    rt = Runtime(
        settings=settings,
        sop=sop,
        commands=CommandUnit(lambda: rt.require_pool(), service=settings.service, sop=sop, clock=settings.clock().now),
    )
    reaction_map: Reactions = dict(reactions(rt)) if reactions is not None else {}
    rt.commands.reactions = reaction_map

    async def handle(conn: asyncpg.Connection, event: Event, _: Delivery) -> None:
        state = await fold_consumed(conn, event, sop)
        reaction = reaction_map.get(type(event))
        if reaction is not None:
            await reaction(conn, event, state)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _start(rt, migrations, handle if consume else None)
        if on_startup is not None:
            await on_startup(rt)
        log.info("service_started", service=settings.service)
        try:
            yield
        finally:
            await _stop(rt)

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.runtime = rt
    app.state.registry = registry
    app.state.verifier = TokenVerifier(settings, registry)
    install_error_handlers(app)
    install_metrics(app, rt)
    app.add_middleware(RequestContextMiddleware)  # outermost: a clean log context and X-Request-ID
    instrument_app(app)  # HTTP server spans (when tracing is on)
    app.include_router(common_router(state_route=state_route))
    app.include_router(registry_router)
    if state_route:  # a step service: its commands may answer 202 with a status link
        app.include_router(publication_router())
    for router in routers:
        app.include_router(router)
    document_errors(app)
    return app


async def _start(rt: Runtime, migrations: Path | None, handle: Handler | None) -> None:
    """Open the pool and the Kafka probe, migrate, start the outbox relay and (with ``handle``) the consumer."""
    settings = rt.settings
    dsn = settings.postgres_dsn()
    rt.pool = await create_pool(dsn, max_size=settings.postgres_pool_max)
    rt.kafka = KafkaProbe(settings.kafka_bootstrap, settings.event_topic)
    if settings.migrate_on_start:
        await migrate(dsn, migrations)
    # the signing key and the key registry (shared.origin): a deployment without them stops here
    service_signer(settings.service)
    process_trust()
    rt.relay = OutboxRelay(
        dsn=dsn,
        service=settings.service,
        bootstrap=settings.kafka_bootstrap,
        topic=settings.event_topic,
        batch_max=settings.relay_batch_max,
        poll_seconds=settings.relay_poll_seconds,
        dataschema_base=settings.schema_base_url,
    )
    rt.tasks.append(asyncio.create_task(rt.relay.run(), name="outbox-relay"))
    rt.commands.publication = rt.published
    if handle is not None:
        rt.consumer = IdempotentConsumer(
            pool=rt.pool,
            bootstrap=settings.kafka_bootstrap,
            topic=settings.event_topic,
            group_id=settings.group_id,
            dlq_topic=settings.dlq_topic,
            handler=handle,
            batch_max=settings.consumer_batch_max,
            consumer_name=settings.service,
        )
        rt.tasks.append(asyncio.create_task(rt.consumer.run(), name="consumer"))


async def _stop(rt: Runtime) -> None:
    """Cancel every background task, then close the Kafka probe and the pool."""
    for task in rt.tasks:
        task.cancel()
    for task in rt.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if rt.kafka is not None:
        await rt.kafka.close()
    if rt.pool is not None:
        await rt.pool.close()
