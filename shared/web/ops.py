"""The routes every service serves besides its own: liveness, readiness, the published event JSON
Schemas and (step services) the folded SOP state of one Renja.

``/healthz`` is liveness (no dependency checks); ``/readyz`` checks Postgres, Kafka (a bounded metadata
request, its answer cached a few seconds: ``shared.runtime.KafkaProbe``), the consumer and the relay, and
answers 503 with the failing checks. ``/schemas/events/{file}`` serves the checked-in schema files (no
auth: they are the public contract) so that every record's ``ce_dataschema`` resolves
(``shared.events.schema``).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from shared.auth import ANY_ROLE
from shared.events import Actor
from shared.events.schema import SCHEMA_MEDIA_TYPE, SCHEMA_ROUTE, published_schema
from shared.outbox import failed_count, pending_count
from shared.process import load_state
from shared.runtime import Runtime
from shared.sop import SopStep, next_step
from shared.web.deps import runtime


class StepPublic(BaseModel):
    """One SOP step as clients see it: number, activity, role, time standard (working minutes)."""

    number: int
    activity: str
    role: str
    standard_minutes: int

    @classmethod
    def of(cls, step: SopStep | None) -> StepPublic | None:
        """The public view of ``step`` (None for None: no step is due)."""
        if step is None:
            return None
        return cls(number=step.number, activity=step.activity, role=step.role, standard_minutes=step.standard_minutes)


class StatePublic(BaseModel):
    """A service's current view of one Renja (folded from the events it has seen)."""

    renja_id: UUID
    version: int
    state: dict[str, Any]
    next_step: StepPublic | None


async def readiness(rt: Runtime) -> tuple[bool, dict[str, Any]]:
    """Whether the process can serve, and each check: ``postgres``, ``kafka``, ``consumer``, ``relay_task``
    decide; ``outbox_pending``/``outbox_failed`` (rows), ``relay_leader`` and ``*_error`` inform. Never
    raises; takes at most the Kafka probe's bound (2 s) plus the Postgres query."""
    checks: dict[str, Any] = {}
    try:
        async with rt.require_pool().acquire() as conn:
            await conn.fetchval("SELECT 1")
            checks["outbox_pending"] = await pending_count(conn)
            # rows the broker refused for good: an operator must look (publish_error says why)
            checks["outbox_failed"] = await failed_count(conn)
        checks["postgres"] = True
    except Exception as exc:  # readiness reports, never raises
        checks["postgres"] = False
        checks["postgres_error"] = repr(exc)
    if rt.kafka is not None:
        checks["kafka"], kafka_error = await rt.kafka.check()
        if kafka_error is not None:
            checks["kafka_error"] = kafka_error
    if rt.consumer is not None:
        checks["consumer"] = rt.consumer.running
    if rt.relay is not None:
        checks["relay_task"] = any(not t.done() for t in rt.tasks)
        checks["relay_leader"] = rt.relay.is_leader
    return all(v for k, v in checks.items() if k in ("postgres", "kafka", "consumer", "relay_task")), checks


def common_router(*, state_route: bool = True) -> APIRouter:
    """``/healthz``, ``/readyz``, ``GET /schemas/events/{file}`` (no auth) and ``GET
    /renja/{renja_id}/state`` (any authenticated role)."""
    router = APIRouter()

    @router.get("/healthz", tags=["ops"], summary="Liveness: the process and its event loop answer")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", tags=["ops"], summary="Readiness: Postgres and Kafka answer, consumer and relay are running")
    async def readyz(request: Request) -> JSONResponse:
        ok, checks = await readiness(runtime(request))
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, "checks": checks})

    @router.get(
        SCHEMA_ROUTE + "{file_name}",
        tags=["ops"],
        summary="The published JSON Schema of one event type (a record's ce_dataschema)",
        response_class=Response,
        responses={200: {"content": {SCHEMA_MEDIA_TYPE: {}}}, 404: {"description": "No such schema file"}},
    )
    async def event_schema(file_name: str) -> Response:
        body = published_schema(file_name)
        if body is None:
            raise HTTPException(404, f"No published event schema is named {file_name!r}.")
        return Response(content=body, media_type=SCHEMA_MEDIA_TYPE)

    async def get_state(renja_id: UUID, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> StatePublic:
        rt = runtime(request)
        async with rt.require_pool().acquire() as conn:
            state, version = await load_state(conn, renja_id)
        if version == 0:
            raise HTTPException(404, f"Renja {renja_id} is not known to this service (yet).")
        return StatePublic(
            renja_id=renja_id,
            version=version,
            state=state.model_dump(mode="json"),
            next_step=StepPublic.of(next_step(state, rt.sop)),
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
