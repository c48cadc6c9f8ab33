"""HTTP API of the audit service: read-only views for auditors (and, read-only, the four SOP roles).

Routes: ``GET /cycles``, ``GET /renja/{id}/timeline`` (JSON, or CSV with ``?format=csv`` or
``/timeline.csv``), ``GET /renja/{id}/timeline.html`` (the page for people), ``GET /renja/{id}/verify``,
``GET /sop/steps``, ``GET /audit/key``.

The HTML page accepts the bearer token either as the usual ``Authorization`` header or as
``?token=<jwt>`` in the URL, because a browser following a link cannot attach a header; the same roles
apply. A token in a URL can end up in browser history and proxy logs, so hand out short-lived tokens for
links (``renja token --hours 1``).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from services.audit.keys import key_id, public_key_b64
from services.audit.projection import REBUILD, Projector
from services.audit.rebuild import rebuild_equals_live
from services.audit.store import list_cycles, load_timeline
from services.audit.timeline import Timeline, render_timeline_html
from services.audit.verify import VerifyReport, verify_renja
from shared.auth import ROLES, TokenVerifier, require_roles
from shared.events import Actor
from shared.runtime import Runtime
from shared.web.deps import runtime
from shared.web.errors import COMMAND_ERRORS, ErrorBody

router = APIRouter(tags=["audit"])

READERS = require_roles(*ROLES)  # auditor plus the four SOP roles; every route here only reads


class CyclePublic(BaseModel):
    renja_id: UUID
    opd: str | None
    fiscal_year: int | None
    status: str
    current_step: int | None
    events: int
    first_at: datetime
    last_at: datetime
    head_signed: bool


class StepStandardPublic(BaseModel):
    number: int
    name: str
    activity: str
    gloss: str
    role: str
    input: str | None
    output: str
    standard_minutes: int
    completed_by: str


class SopStepsPublic(BaseModel):
    title: str
    agency: str
    timezone: str
    total_standard_minutes: int
    steps: list[StepStandardPublic]


class TimelineEntryPublic(BaseModel):
    position: int
    event_id: str
    event_type: str
    occurred_at: datetime
    actor_name: str
    actor_nip: str
    actor_role: str
    source: str
    step_number: int | None
    step_name: str | None
    attempt: int | None
    draft_version: int | None
    content_sha256: str | None
    started_at: datetime | None
    working_minutes: float | None
    standard_minutes: int | None
    overdue: bool | None
    note: str


class OpenStepPublic(BaseModel):
    number: int
    name: str
    role: str
    standard_minutes: int
    enabled_at: datetime | None
    elapsed_minutes: float | None
    overdue: bool | None


class TimelinePublic(BaseModel):
    """One Renja's timeline; minutes are working minutes on the agency calendar (``timezone``)."""

    renja_id: UUID
    opd: str | None
    fiscal_year: int | None
    status: str
    current_step: OpenStepPublic | None
    as_of: datetime | None
    position: int | None
    timezone: str
    total_working_minutes: float
    total_standard_minutes: int
    overdue_count: int
    entries: list[TimelineEntryPublic]


class CheckPublic(BaseModel):
    name: str
    ok: bool
    position: int | None
    kind: str | None
    reason: str
    event_id: str | None


class VerifyPublic(BaseModel):
    """``ok`` only if every check passed; otherwise the first bad chain position and its event."""

    renja_id: UUID
    ok: bool
    entries: int
    log_entries: int | None
    head_signed: bool
    first_bad_position: int | None
    first_bad_event_id: str | None
    reason: str
    checks: list[CheckPublic]
    key_id: str
    public_key_b64: str


class KeyPublic(BaseModel):
    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str
    public_key_b64: str


CSV_COLUMNS = list(TimelineEntryPublic.model_fields)


def timeline_public(timeline: Timeline, position: int | None) -> TimelinePublic:
    """The JSON shape of a :class:`Timeline`."""
    assert timeline.renja_id is not None
    cur = timeline.current_step
    return TimelinePublic(
        renja_id=timeline.renja_id,
        opd=timeline.opd,
        fiscal_year=timeline.fiscal_year,
        status=timeline.status,
        current_step=None
        if cur is None
        else OpenStepPublic(
            number=cur.number,
            name=cur.name,
            role=cur.role,
            standard_minutes=cur.standard_minutes,
            enabled_at=cur.enabled_at,
            elapsed_minutes=cur.elapsed_minutes,
            overdue=cur.overdue,
        ),
        as_of=timeline.as_of,
        position=position,
        timezone=timeline.timezone,
        total_working_minutes=timeline.total_working_minutes,
        total_standard_minutes=timeline.total_standard_minutes,
        overdue_count=timeline.overdue_count,
        entries=[
            TimelineEntryPublic(
                position=e.position,
                event_id=e.event_id,
                event_type=e.event_type,
                occurred_at=e.occurred_at,
                actor_name=e.actor.name,
                actor_nip=e.actor.nip,
                actor_role=e.actor.role,
                source=e.source,
                step_number=e.step_number,
                step_name=e.step_name,
                attempt=e.attempt,
                draft_version=e.draft_version,
                content_sha256=e.content_sha256,
                started_at=e.started_at,
                working_minutes=e.working_minutes,
                standard_minutes=e.standard_minutes,
                overdue=e.overdue,
                note=e.note,
            )
            for e in timeline.entries
        ],
    )


def timeline_csv(public: TimelinePublic) -> str:
    """The timeline's entries as CSV (header row; times ISO 8601 UTC; minutes as decimals)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in public.entries:
        row = entry.model_dump(mode="json")
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


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


async def _timeline(rt: Runtime, renja_id: UUID, as_of: str | None, position: int | None) -> Timeline:
    async with rt.require_pool().acquire() as conn:
        timeline = await load_timeline(
            conn, renja_id, rt.sop, rt.extras["calendar"], as_of=parse_as_of(as_of), position=position
        )
    if timeline is None:
        raise HTTPException(404, f"Renja {renja_id} is not in the audit log (yet).")
    return timeline


AsOf = Annotated[str | None, Query(description="ISO 8601 time with zone: the timeline as it stood then")]
Position = Annotated[int | None, Query(ge=1, description="chain position: the timeline up to this event")]


@router.get(
    "/cycles",
    response_model=list[CyclePublic],
    summary="All Renja cycles: status and current step (auditor, SOP roles)",
)
async def get_cycles(request: Request, _: Annotated[Actor, Depends(READERS)]) -> list[CyclePublic]:
    async with runtime(request).require_pool().acquire() as conn:
        rows = await list_cycles(conn)
    return [CyclePublic(**dict(r)) for r in rows]


@router.get(
    "/renja/{renja_id}/timeline",
    response_model=TimelinePublic,
    summary="Timeline of steps 1-11: who, when, working minutes vs the SOP standard (auditor, SOP roles)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_timeline(
    renja_id: UUID,
    request: Request,
    _: Annotated[Actor, Depends(READERS)],
    as_of: AsOf = None,
    position: Position = None,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
) -> Response:
    public = timeline_public(await _timeline(runtime(request), renja_id, as_of, position), position)
    if format == "csv":
        return _csv_response(public)
    return Response(public.model_dump_json(), media_type="application/json")


def _csv_response(public: TimelinePublic) -> Response:
    return Response(
        timeline_csv(public),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="renja-{public.renja_id}-timeline.csv"'},
    )


@router.get(
    "/renja/{renja_id}/timeline.csv",
    summary="Timeline as CSV (auditor, SOP roles)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_timeline_csv(
    renja_id: UUID,
    request: Request,
    _: Annotated[Actor, Depends(READERS)],
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    return _csv_response(timeline_public(await _timeline(runtime(request), renja_id, as_of, position), position))


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
    request: Request,
    _: Annotated[Actor, Depends(page_reader)],
    as_of: AsOf = None,
    position: Position = None,
) -> HTMLResponse:
    rt = runtime(request)
    timeline = await _timeline(rt, renja_id, as_of, position)
    async with rt.require_pool().acquire() as conn:
        # the page shows the cheap checks (projection + signed head); /verify also replays Kafka
        chain = await verify_renja(conn, renja_id, rt.extras["signing_key"].public_key())
    html = render_timeline_html(
        timeline,
        {"agency": rt.sop.agency.name, "generated_at": datetime.now(UTC), "chain": chain},
    )
    return HTMLResponse(html)


@router.get(
    "/renja/{renja_id}/verify",
    response_model=VerifyPublic,
    summary="Tamper check: hash chain from the projection and from Kafka, and the signed head (auditor, SOP roles)",
)
async def get_verify(
    renja_id: UUID,
    request: Request,
    _: Annotated[Actor, Depends(READERS)],
    kafka: Annotated[bool, Query(description="also replay the Renja's partition from Kafka")] = True,
) -> VerifyPublic:
    rt = runtime(request)
    public = rt.extras["signing_key"].public_key()
    async with rt.require_pool().acquire() as conn:
        report = await verify_renja(
            conn,
            renja_id,
            public,
            bootstrap=rt.settings.kafka_bootstrap if kafka else None,
            topic=rt.settings.event_topic if kafka else None,
        )
    if report is None:
        raise HTTPException(404, f"Renja {renja_id} is not in the audit log (yet).")
    return verify_public(report, public_key_b64(public), key_id(public))


def verify_public(report: VerifyReport, public_b64: str, kid: str) -> VerifyPublic:
    """The JSON shape of a :class:`VerifyReport`, with the public key that checks the signed head."""
    return VerifyPublic(
        renja_id=UUID(report.renja_id),
        ok=report.ok,
        entries=report.entries,
        log_entries=report.log_entries,
        head_signed=report.head_signed,
        first_bad_position=report.first_bad_position,
        first_bad_event_id=report.first_bad_event_id,
        reason=report.reason,
        checks=[
            CheckPublic(name=c.name, ok=c.ok, position=c.position, kind=c.kind, reason=c.reason, event_id=c.event_id)
            for c in report.checks
        ],
        key_id=kid,
        public_key_b64=public_b64,
    )


@router.get(
    "/sop/steps", response_model=SopStepsPublic, summary="The SOP step table with time standards (auditor, SOP roles)"
)
async def get_sop_steps(request: Request, _: Annotated[Actor, Depends(READERS)]) -> SopStepsPublic:
    sop = runtime(request).sop
    return SopStepsPublic(
        title=sop.title,
        agency=sop.agency.name,
        timezone=sop.office_hours.timezone,
        total_standard_minutes=sop.total_standard_minutes,
        steps=[
            StepStandardPublic(
                number=s.number,
                name=s.name,
                activity=s.activity,
                gloss=s.gloss,
                role=s.role,
                input=s.input,
                output=s.output,
                standard_minutes=s.standard_minutes,
                completed_by=s.completed_by.event_type
                + "".join(f" {k}={v}" for k, v in sorted(s.completed_by.match.items())),
            )
            for s in sop.steps
        ],
    )


@router.get(
    "/audit/key", response_model=KeyPublic, summary="The public key that verifies signed chain heads (any role)"
)
async def get_key(request: Request, _: Annotated[Actor, Depends(READERS)]) -> KeyPublic:
    public = runtime(request).extras["signing_key"].public_key()
    return KeyPublic(key_id=key_id(public), public_key_b64=public_key_b64(public))


class RebuildComparePublic(BaseModel):
    """Whether replaying the whole log from offset 0 gives exactly the live projection (rows and hashes)."""

    rebuild_equals_live: bool
    seconds: float


AUDITOR = require_roles("auditor")


@router.post(
    "/rebuild/compare",
    response_model=RebuildComparePublic,
    summary="Replay the log from offset 0 into scratch tables and compare with the live projection (auditor)",
    responses={401: COMMAND_ERRORS[401], 403: {"model": ErrorBody, "description": "only the auditor may run it"}},
)
async def post_rebuild_compare(request: Request, _: Annotated[Actor, Depends(AUDITOR)]) -> RebuildComparePublic:
    """Nothing is swapped: the scratch tables are dropped afterwards. Takes as long as a replay of the log."""
    rt: Runtime = runtime(request)
    started = datetime.now(UTC)
    equal = await rebuild_equals_live(
        rt.require_pool(),
        bootstrap=rt.settings.kafka_bootstrap,
        topic=rt.settings.event_topic,
        projector=Projector(rt.sop, rt.extras["signing_key"], REBUILD, keep_cache=True),
    )
    return RebuildComparePublic(
        rebuild_equals_live=equal, seconds=round((datetime.now(UTC) - started).total_seconds(), 3)
    )
