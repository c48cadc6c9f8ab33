"""What every service's FastAPI app shares: the runtime (pool, relay, consumer), health, error mapping,
and the impure shell of the command path (ids, clock, Idempotency-Key) around ``shared.sop.decide``.

Invariants:
- nothing is built at import time: ``build_service_app`` is called from each service's ``create_app``;
- errors become JSON ``{"error": code, "message": text-for-people, ...}`` with 401/403/404/409/413/422;
  bad input never yields a 500 (an unexpected error is logged and answered 500 without a stack trace);
- ``/healthz`` is liveness (no dependency checks); ``/readyz`` checks Postgres, the consumer and the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID, uuid4

import asyncpg
import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import ANY_ROLE, TokenVerifier
from shared.db import create_pool, migrate
from shared.events import Actor, Event
from shared.eventstore import ConcurrencyConflict, EventTooLarge
from shared.inbox import Delivery, IdempotentConsumer
from shared.logging import configure_logging
from shared.outbox import OutboxRelay, failed_count, pending_count
from shared.process import (
    CommandResult,
    Effect,
    Idempotency,
    IdempotencyMismatch,
    execute,
    fold_consumed,
    load_state,
    request_hash,
)
from shared.settings import ServiceSettings
from shared.sop import (
    Command,
    CommandContext,
    DomainError,
    IssueArahan,
    RenjaState,
    SopDefinition,
    decide,
    load_sop,
    next_step,
)

log = structlog.get_logger(__name__)

Reaction = Callable[[asyncpg.Connection, Event, RenjaState, "Runtime"], Awaitable[None]]


@dataclass
class Runtime:
    """The live resources of one service process (kept on ``app.state.runtime``)."""

    settings: ServiceSettings
    sop: SopDefinition
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    consumer: IdempotentConsumer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise HTTPException(503, "The service is starting: its database is not connected yet.")
        return self.pool


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


class ErrorBody(BaseModel):
    """Every error answer: a stable ``error`` code for clients, a ``message`` saying what to fix."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "out_of_order",
                    "message": "Step 9 (Memeriksa dan paraf Rancangan Akhir) is not due: Step 8 (Memeriksa dan "
                    "paraf Rancangan Akhir) is due, by kasubag_pp; you are sekretaris.",
                    "due_step": 8,
                    "due_role": "kasubag_pp",
                }
            ]
        }
    )

    error: str
    message: str
    due_step: int | None = None
    due_role: str | None = None
    details: list[dict[str, Any]] | None = None


COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or it is invalid or expired (`unauthorized`)."},
    403: {
        "model": ErrorBody,
        "description": "Your role may not do this (`forbidden`, `wrong_role`); auditors never act.",
    },
    409: {
        "model": ErrorBody,
        "description": "Not this step's turn (`out_of_order`), a stale draft version or hash (`stale_version`), "
        "a closed Renja (`renja_closed`), or a concurrent change (`concurrent_change`); `due_step` and "
        "`due_role` say what the Renja waits for.",
    },
    422: {
        "model": ErrorBody,
        "description": "The request or its content is invalid (`invalid_request`, `invalid_content`, "
        "`invalid_command`), or an Idempotency-Key was reused for a different request; `details` lists "
        "each problem.",
    },
}
"""``responses=`` for a command route: every error it can answer, in the one shape the handlers below
produce (``ErrorBody``). Routes override an entry with a more precise description where they know more,
e.g. ``responses={**COMMAND_ERRORS, 409: {"model": ErrorBody, "description": "..."}}``."""


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body = ErrorBody(error=code, message=message, **extra).model_dump(exclude_none=True)
    return JSONResponse(status_code=status, content=body)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain and plumbing errors to HTTP statuses in one place."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return _error(exc.http_status, exc.code, exc.message, due_step=exc.due_step, due_role=exc.due_role)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_: Request, exc: ConcurrencyConflict) -> JSONResponse:
        return _error(409, "concurrent_change", "Someone else changed this Renja at the same moment; reload and retry.")

    @app.exception_handler(EventTooLarge)
    async def _too_large(_: Request, exc: EventTooLarge) -> JSONResponse:
        return _error(413, "too_large", f"{exc}: shorten the texts or lists in the request.")

    @app.exception_handler(asyncpg.DataError)
    async def _bad_value(_: Request, exc: asyncpg.DataError) -> JSONResponse:
        # e.g. a NUL character (PostgreSQL text cannot hold it) or a number beyond 64 bits
        return _error(
            422,
            "invalid_value",
            "A value cannot be stored: remove NUL/control characters and keep numbers within range "
            f"({type(exc).__name__}: {str(exc)[:200]}).",
        )

    @app.exception_handler(IdempotencyMismatch)
    async def _idem(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        return _error(422, "idempotency_key_reused", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        summary = "; ".join(f"{d['where']}: {d['problem']}" for d in details[:5])
        return _error(422, "invalid_request", f"Fix the request: {summary}", details=details)

    @app.exception_handler(ValidationError)
    async def _invalid_content(_: Request, exc: ValidationError) -> JSONResponse:
        # A command built from a request the request model allowed, but the SOP's model refuses.
        details = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        summary = "; ".join(f"{d['where']}: {d['problem']}" for d in details[:5])
        return _error(422, "invalid_content", f"Fix the content: {summary}", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            409: "conflict",
            413: "too_large",
            422: "invalid_request",
            503: "unavailable",
        }
        return _error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error=repr(exc))
        return _error(500, "internal", "Unexpected server error; it was logged. Nothing was half-saved.")


class StepPublic(BaseModel):
    number: int
    activity: str
    role: str
    standard_minutes: int


class StatePublic(BaseModel):
    """A service's current view of one Renja (folded from the events it has seen)."""

    renja_id: UUID
    version: int
    state: dict[str, Any]
    next_step: StepPublic | None


def common_router(*, state_route: bool = True) -> APIRouter:
    """``/healthz``, ``/readyz`` and ``GET /renja/{renja_id}/state`` (any authenticated role)."""
    router = APIRouter()

    @router.get("/healthz", tags=["ops"], summary="Liveness: the process and its event loop answer")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", tags=["ops"], summary="Readiness: Postgres answers, consumer and relay are running")
    async def readyz(request: Request) -> JSONResponse:
        rt = runtime(request)
        checks: dict[str, Any] = {}
        try:
            pool = rt.require_pool()
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                checks["outbox_pending"] = await pending_count(conn)
                # rows the broker refused for good: an operator must look (publish_error says why)
                checks["outbox_failed"] = await failed_count(conn)
            checks["postgres"] = True
        except Exception as exc:  # readiness reports, never raises
            checks["postgres"] = False
            checks["postgres_error"] = repr(exc)
        if rt.consumer is not None:
            checks["consumer"] = rt.consumer.running
        if rt.relay is not None:
            checks["relay_task"] = any(not t.done() for t in rt.tasks)
            checks["relay_leader"] = rt.relay.is_leader
        ok = all(v for k, v in checks.items() if k in ("postgres", "consumer", "relay_task"))
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, "checks": checks})

    async def get_state(renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> StatePublic:
        rt = runtime(request)
        async with rt.require_pool().acquire() as conn:
            state, version = await load_state(conn, renja_id)
        if version == 0:
            raise HTTPException(404, f"Renja {renja_id} is not known to this service (yet).")
        step = next_step(state, rt.sop)
        return StatePublic(
            renja_id=renja_id,
            version=version,
            state=state.model_dump(mode="json"),
            next_step=None
            if step is None
            else StepPublic(
                number=step.number, activity=step.activity, role=step.role, standard_minutes=step.standard_minutes
            ),
        )

    if state_route:  # the audit keeps no per-Renja SOP state of this kind, so it has no such route
        router.add_api_route(
            "/renja/{renja_id}/state",
            get_state,
            methods=["GET"],
            response_model=StatePublic,
            tags=["renja"],
            summary="This service's view of a Renja: SOP state and the step now due (any role)",
        )
    return router


async def command_request_hash(request: Request) -> str:
    """The Idempotency-Key request hash of a command request: SHA-256 (hex) over its method, path and raw
    body bytes — what the client sent, never server-made ids or clock. A key reused with another method,
    path (another Renja, another endpoint) or body gets a different hash, hence 422."""
    body = await request.body()
    return request_hash([request.method, request.url.path, body.hex()])


async def run_command(
    request: Request,
    actor: Actor,
    renja_id: UUID,
    command: Command,
    *,
    respond: Callable[[Sequence[Event], RenjaState], Any] | None = None,
    effect: Effect | None = None,
    precheck: Callable[[RenjaState], None] | None = None,
    status_code: int = 201,
) -> JSONResponse:
    """The command path's impure shell: new event id, clock, correlation; then ``shared.process.execute``.

    ``precheck(state)`` may raise ``DomainError``/``HTTPException`` before the decider runs (service rules
    such as "the file must exist"). The response carries ``Idempotent-Replayed: true`` for a replay.
    """
    rt = runtime(request)
    event_id = uuid4()
    now = datetime.now(UTC)
    idem_key = request.headers.get("Idempotency-Key")
    idem = None
    if idem_key:
        if len(idem_key) > 200:
            raise HTTPException(422, "Idempotency-Key must be at most 200 characters.")
        idem = Idempotency(key=idem_key, principal=actor.user_id, request_hash=await command_request_hash(request))

    def decision(state: RenjaState) -> list[Event]:
        if state.renja_id is None and not isinstance(command, IssueArahan):
            raise HTTPException(
                404,
                f"Renja {renja_id} is not known to the {rt.settings.service} service (yet): check the id, "
                "or wait a moment if it was just started.",
            )
        if precheck is not None:
            precheck(state)
        ctx = CommandContext(
            renja_id=renja_id,
            actor=actor,
            source=rt.settings.service,  # type: ignore[arg-type]
            event_id=event_id,
            correlation_id=state.correlation_id or renja_id,
            now=now,
        )
        return decide(state, command, ctx, rt.sop)

    def default_respond(events: Sequence[Event], state: RenjaState) -> Any:
        step = next_step(state, rt.sop)
        return {
            "renja_id": str(renja_id),
            "events": [{"event_id": str(e.event_id), "type": e.event_type} for e in events],
            "next_step": None if step is None else {"number": step.number, "role": step.role},
        }

    result: CommandResult = await execute(
        rt.require_pool(),
        service=rt.settings.service,
        renja_id=renja_id,
        decide=decision,
        respond=respond or default_respond,
        effect=effect,
        idempotency=idem,
        status_code=status_code,
        traceparent=request.headers.get("traceparent"),
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return JSONResponse(status_code=result.status_code, content=result.body, headers=headers)


def build_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    migrations: Path | None,
    reactions: dict[str, Reaction] | None = None,
    on_startup: Callable[[Runtime], Awaitable[None]] | None = None,
    consume: bool = True,
    state_route: bool = True,
) -> FastAPI:
    """Assemble a service: settings → SOP → token verifier → lifespan (pool, migrations, relay, consumer).

    ``reactions`` maps an event type to what this service does, beyond folding the SOP state, when it
    consumes that event (e.g. the notifier mails the next actor); they run in the consumer's transaction.
    """
    configure_logging(settings.service, settings.log_level)
    sop = load_sop(settings.sop_file)
    rt = Runtime(settings=settings, sop=sop)
    reaction_map = dict(reactions or {})

    async def handle(conn: asyncpg.Connection, event: Event, _: Delivery) -> None:
        structlog.contextvars.bind_contextvars(event_id=str(event.event_id), renja_id=str(event.renja_id))
        state = await fold_consumed(conn, event)
        reaction = reaction_map.get(event.event_type)
        if reaction is not None:
            await reaction(conn, event, state, rt)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.postgres_dsn()
        rt.pool = await create_pool(dsn, max_size=settings.postgres_pool_max)
        await migrate(dsn, migrations)
        rt.relay = OutboxRelay(
            dsn=dsn,
            service=settings.service,
            bootstrap=settings.kafka_bootstrap,
            topic=settings.event_topic,
            batch_max=settings.relay_batch_max,
            poll_seconds=settings.relay_poll_seconds,
        )
        rt.tasks.append(asyncio.create_task(rt.relay.run(), name="outbox-relay"))
        if consume:
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
        if on_startup is not None:
            await on_startup(rt)
        log.info("service_started", service=settings.service)
        try:
            yield
        finally:
            for task in rt.tasks:
                task.cancel()
            for task in rt.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await rt.pool.close()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.runtime = rt
    app.state.verifier = TokenVerifier(settings)
    install_error_handlers(app)
    app.include_router(common_router(state_route=state_route))
    for router in routers:
        app.include_router(router)
    return app
