"""HTTP API of the audit service: read-only views for auditors (and, read-only, the four SOP roles).

Routes: ``GET /cycles``, ``GET /renja/{id}/timeline`` (JSON, or CSV with ``?format=csv`` or
``/timeline.csv``), ``GET /renja/{id}/timeline.html`` (the page for people), ``GET /renja/{id}/verify``,
``GET /sop/steps``, ``GET /audit/key``, ``POST /rebuild/compare``.

Routes are thin: query parameters → :class:`~services.audit.service.AuditService` → response model
(``services.audit.schemas``); an unknown Renja is a 404 here, in ``_found``.

The HTML page accepts the bearer token either as the usual ``Authorization`` header or as
``?token=<jwt>`` in the URL, because a browser following a link cannot attach a header; the same roles
apply. A token in a URL can end up in browser history and proxy logs, so hand out short-lived tokens for
links (``renja token --hours 1``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.audit.keys import key_id, public_key_b64
from services.audit.schemas import (
    CyclePublic,
    KeyPublic,
    RebuildComparePublic,
    SopStepsPublic,
    TimelinePublic,
    VerifyPublic,
    sop_steps_public,
    timeline_csv,
    timeline_public,
    verify_public,
)
from services.audit.service import AuditService
from shared.auth import ROLES, TokenVerifier, require_roles
from shared.events import Actor
from shared.web.errors import COMMAND_ERRORS, ErrorBody
from shared.web.schemas import INT8_MAX

router = APIRouter(tags=["audit"])

READERS = require_roles(*ROLES)  # auditor, bappeda and the four SOP roles; every route here only reads
AUDITOR = require_roles("auditor")

T = TypeVar("T")


def audit_service(request: Request) -> AuditService:
    """The :class:`AuditService` that ``create_app`` builds at start-up (503 until the service started)."""
    service: AuditService | None = getattr(request.app.state, "audit", None)
    if service is None:
        raise HTTPException(503, "The service is starting: its database is not connected yet.")
    return service


AuditDep = Annotated[AuditService, Depends(audit_service)]
Reader = Annotated[Actor, Depends(READERS)]
AsOf = Annotated[str | None, Query(description="ISO 8601 time with zone: the timeline as it stood then")]
Position = Annotated[int | None, Query(ge=1, le=INT8_MAX, description="chain position: the timeline up to this event")]


def parse_as_of(as_of: str | None) -> datetime | None:
    """``?as_of=`` as an aware datetime (ISO 8601; a value without zone is refused with 422)."""
    if as_of is None:
        return None
    try:
        value = datetime.fromisoformat(as_of.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise HTTPException(422, f"as_of must be an ISO 8601 time with zone, e.g. 2026-08-03T08:00:00Z: {exc}") from exc
    if value.tzinfo is None:
        raise HTTPException(422, "as_of needs a time zone (…Z or …+07:00).")
    return value


def _found(value: T | None, renja_id: UUID) -> T:
    if value is None:
        raise HTTPException(404, f"Renja {renja_id} is not in the audit log (yet).")
    return value


async def _timeline(audit: AuditService, renja_id: UUID, as_of: str | None, position: int | None) -> TimelinePublic:
    view = _found(await audit.timeline_view(renja_id, as_of=parse_as_of(as_of), position=position), renja_id)
    return timeline_public(view.timeline, position, integrity=view.integrity, anomalies=view.anomalies)


def _csv_response(public: TimelinePublic) -> Response:
    return Response(
        timeline_csv(public),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="renja-{public.renja_id}-timeline.csv"'},
    )


@router.get(
    "/cycles",
    response_model=list[CyclePublic],
    summary="All Renja cycles: status and current step (auditor, SOP roles)",
)
async def get_cycles(_: Reader, audit: AuditDep) -> list[CyclePublic]:
    return [CyclePublic(**dict(r)) for r in await audit.cycles()]


@router.get(
    "/renja/{renja_id}/timeline",
    response_model=TimelinePublic,
    summary="Timeline of steps 1-11: who, when, working minutes vs the SOP standard, verified on read, with"
    " anomalies (auditor, SOP roles)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_timeline(
    renja_id: UUID,
    _: Reader,
    audit: AuditDep,
    as_of: AsOf = None,
    position: Position = None,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
) -> Response:
    public = await _timeline(audit, renja_id, as_of, position)
    if format == "csv":
        return _csv_response(public)
    return Response(public.model_dump_json(), media_type="application/json")


@router.get(
    "/renja/{renja_id}/timeline.csv",
    summary="Timeline as CSV (auditor, SOP roles)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_timeline_csv(
    renja_id: UUID, _: Reader, audit: AuditDep, as_of: AsOf = None, position: Position = None
) -> Response:
    return _csv_response(await _timeline(audit, renja_id, as_of, position))


_optional_bearer = HTTPBearer(auto_error=False)


def page_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
    token: Annotated[str | None, Query(description="bearer token, for links opened in a browser")] = None,
) -> Actor:
    """The reader of the HTML page: token from the ``Authorization`` header or ``?token=`` (401/403)."""
    raw = credentials.credentials if credentials is not None else token
    if not raw:
        raise HTTPException(401, "Open the page with ?token=<jwt> (renja token --role auditor ...) or a bearer header.")
    verifier: TokenVerifier = request.app.state.verifier
    actor = verifier.actor(raw)
    if actor.role not in ROLES:
        raise HTTPException(403, f"Role {actor.role} may not read the audit.")
    return actor


@router.get(
    "/renja/{renja_id}/timeline.html",
    response_class=HTMLResponse,
    summary="Timeline page: steps, who and when, working minutes vs standard as bars (auditor, SOP roles)",
)
async def get_timeline_page(
    renja_id: UUID,
    _: Annotated[Actor, Depends(page_reader)],
    audit: AuditDep,
    as_of: AsOf = None,
    position: Position = None,
) -> HTMLResponse:
    html = await audit.timeline_page(renja_id, as_of=parse_as_of(as_of), position=position)
    return HTMLResponse(_found(html, renja_id))


@router.get(
    "/renja/{renja_id}/verify",
    response_model=VerifyPublic,
    summary="Tamper check: hash chain from the projection and from Kafka, and the signed head (auditor, SOP roles)",
)
async def get_verify(
    renja_id: UUID,
    _: Reader,
    audit: AuditDep,
    kafka: Annotated[bool, Query(description="also replay the Renja's partition from Kafka")] = True,
) -> VerifyPublic:
    report = _found(await audit.verify(renja_id, kafka=kafka), renja_id)
    return verify_public(report, public_key_b64(audit.public_key), key_id(audit.public_key))


@router.get(
    "/sop/steps", response_model=SopStepsPublic, summary="The SOP step table with time standards (auditor, SOP roles)"
)
async def get_sop_steps(_: Reader, audit: AuditDep) -> SopStepsPublic:
    return sop_steps_public(audit.sop)


@router.get(
    "/audit/key", response_model=KeyPublic, summary="The public key that verifies signed chain heads (any role)"
)
async def get_key(_: Reader, audit: AuditDep) -> KeyPublic:
    return KeyPublic(key_id=key_id(audit.public_key), public_key_b64=public_key_b64(audit.public_key))


@router.post(
    "/rebuild/compare",
    response_model=RebuildComparePublic,
    summary="Replay the log from offset 0 into scratch tables and compare with the live projection (auditor)",
    responses={401: COMMAND_ERRORS[401], 403: {"model": ErrorBody, "description": "only the auditor may run it"}},
)
async def post_rebuild_compare(_: Annotated[Actor, Depends(AUDITOR)], audit: AuditDep) -> RebuildComparePublic:
    """Nothing is swapped: the scratch tables are dropped afterwards. Takes as long as a replay of the log."""
    check = await audit.compare_rebuild()
    return RebuildComparePublic(rebuild_equals_live=check.equal, seconds=check.seconds)
