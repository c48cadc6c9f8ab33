"""HTTP routes of the region-wide view (issue 12, item 4): every OPD's Renja cycle on one page.

Routes (all read-only):

- ``GET /region/cycles?tahun=&step=&status=&as_of=`` — the rows as JSON (auditor, bappeda);
- ``GET /region/cycles.csv`` — the same rows as CSV (same parameters, same roles);
- ``GET /region`` — the page (HTML, Indonesian); without ``tahun`` it shows the newest plan year;
- ``GET /region/menunggu-saya?tahun=&as_of=`` — *menunggu saya*: the open cycles whose current step is
  the caller's role, in the caller's OPD (the token's ``opd`` claim; every OPD if the token has none).
  Every role may ask; the auditor and Bappeda act at no step, so theirs is empty.

Every route takes the bearer token from the ``Authorization`` header or, for links opened in a browser
(the page's filter form, its CSV link), from ``?token=`` — as the timeline page does (``api.page_reader``).
Empty query values (a form's "Semua …") mean no filter; a value that is not one gives a 422 saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.audit.api import parse_as_of
from services.audit.region import REGION_STATUSES, RegionStatus
from services.audit.region_page import render_region_html
from services.audit.region_schemas import RegionCyclesPublic, region_csv, region_public
from services.audit.region_service import RegionService
from shared.auth import READ_ONLY_ROLES, ROLES, TokenVerifier
from shared.events import Actor

router = APIRouter(tags=["region"])

_optional_bearer = HTTPBearer(auto_error=False)


def region_service(request: Request) -> RegionService:
    """The :class:`RegionService` that ``create_app`` builds at start-up (503 until the service started)."""
    service: RegionService | None = getattr(request.app.state, "region", None)
    if service is None:
        raise HTTPException(503, "The service is starting: its database is not connected yet.")
    return service


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the token's actor, its OPD claim, and the token if it came as ``?token=`` (the page then
    carries it into its links; a token sent as a header is never written into a page)."""

    actor: Actor
    opd: str | None
    query_token: str | None


def token_opd(raw: str, actor: Actor) -> str | None:
    """The caller's OPD: an ``opd`` the verified identity carries, else the token's ``opd`` claim, else None.

    Call only with a token ``TokenVerifier.actor`` has just verified (the claim is read without checking
    the signature a second time).
    """
    opd = getattr(actor, "opd", None)
    if opd is None:
        claims = jwt.decode(raw, options={"verify_signature": False})
        opd = claims.get("opd")
    return str(opd) if opd else None


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
    token: Annotated[str | None, Query(description="bearer token, for links opened in a browser")] = None,
) -> Caller:
    """The authenticated caller, any role (401 without a valid token; 403 for a role unknown here)."""
    raw = credentials.credentials if credentials is not None else token
    if not raw:
        raise HTTPException(
            401, "Open the page with ?token=<jwt> (renja token --role bappeda ...) or send a bearer header."
        )
    verifier: TokenVerifier = request.app.state.verifier
    actor = verifier.actor(raw)
    if actor.role not in ROLES:
        raise HTTPException(403, f"Role {actor.role} may not read the audit.")
    return Caller(actor, token_opd(raw, actor), None if credentials is not None else raw)


def region_reader(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """A caller who may see every OPD: the auditor or Bappeda (else 403)."""
    if who.actor.role not in READ_ONLY_ROLES:
        raise HTTPException(
            403,
            f"Role {who.actor.role} may not read every OPD's cycles; allowed: {', '.join(READ_ONLY_ROLES)}."
            " Your own cycles: GET /region/menunggu-saya.",
        )
    return who


RegionDep = Annotated[RegionService, Depends(region_service)]
Reader = Annotated[Caller, Depends(region_reader)]
Anyone = Annotated[Caller, Depends(caller)]
YearParam = Annotated[str | None, Query(alias="tahun", description="plan year (tahun rencana), e.g. 2026")]
StepParam = Annotated[str | None, Query(description="only cycles waiting for this SOP step (1-11)")]
StatusParam = Annotated[str | None, Query(description=f"one of {', '.join(REGION_STATUSES)}")]
AsOfParam = Annotated[str | None, Query(description="ISO 8601 time with zone: measure waiting times to it")]


def parse_year(value: str | None) -> int | None:
    """``tahun``: a plan year 2000-2100, or None for empty (422 otherwise)."""
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit() or not 2000 <= int(value) <= 2100:
        raise HTTPException(422, f"tahun must be a plan year such as 2026 (2000-2100), got {value!r}.")
    return int(value)


def parse_step(value: str | None, service: RegionService) -> int | None:
    """``step``: one of the SOP's step numbers, or None for empty (422 otherwise)."""
    if value is None or not value.strip():
        return None
    numbers = sorted(service.steps)
    if not value.strip().isdigit() or int(value) not in service.steps:
        raise HTTPException(422, f"step must be one of the SOP's steps {numbers[0]}-{numbers[-1]}, got {value!r}.")
    return int(value)


def parse_status(value: str | None) -> RegionStatus | None:
    """``status``: one of :data:`REGION_STATUSES`, or None for empty (422 otherwise)."""
    if value is None or not value.strip():
        return None
    if value not in REGION_STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(REGION_STATUSES)}, got {value!r}.")
    return value


async def _view_public(
    region: RegionService, tahun: str | None, step: str | None, status: str | None, as_of: str | None
) -> RegionCyclesPublic:
    view = await region.cycles(
        fiscal_year=parse_year(tahun),
        step=parse_step(step, region),
        status=parse_status(status),
        as_of=parse_as_of(as_of),
    )
    return region_public(view)


@router.get(
    "/region/cycles",
    response_model=RegionCyclesPublic,
    summary="Every OPD's Renja cycle: current step, waiting time vs mutu baku, overdue (auditor, bappeda)",
)
async def get_region_cycles(
    _: Reader,
    region: RegionDep,
    tahun: YearParam = None,
    step: StepParam = None,
    status: StatusParam = None,
    as_of: AsOfParam = None,
) -> RegionCyclesPublic:
    return await _view_public(region, tahun, step, status, as_of)


@router.get(
    "/region/cycles.csv",
    summary="The same rows as GET /region/cycles, as CSV (auditor, bappeda)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_region_cycles_csv(
    _: Reader,
    region: RegionDep,
    tahun: YearParam = None,
    step: StepParam = None,
    status: StatusParam = None,
    as_of: AsOfParam = None,
) -> Response:
    public = await _view_public(region, tahun, step, status, as_of)
    name = f"renja-region-{public.fiscal_year or 'semua'}.csv"
    return Response(
        region_csv(public),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/region",
    response_class=HTMLResponse,
    summary="The region-wide page: every OPD's cycle of a plan year, filters, CSV (auditor, bappeda)",
)
async def get_region_page(
    who: Reader,
    region: RegionDep,
    tahun: YearParam = None,
    step: StepParam = None,
    status: StatusParam = None,
    as_of: AsOfParam = None,
) -> HTMLResponse:
    year = parse_year(tahun)
    if tahun is None:  # no choice made yet: the newest plan year ("" from the form means every year)
        years = await region.plan_years()
        year = years[0] if years else None
    view = await region.cycles(
        fiscal_year=year, step=parse_step(step, region), status=parse_status(status), as_of=parse_as_of(as_of)
    )
    html = render_region_html(
        view,
        region.steps,
        region.calendar.tz.key,
        token=who.query_token,
        meta={"generated_at": datetime.now(UTC)},
    )
    return HTMLResponse(html)


@router.get(
    "/region/menunggu-saya",
    response_model=RegionCyclesPublic,
    summary="Menunggu saya: open cycles waiting on the caller's role in the caller's OPD (every role)",
)
async def get_waiting_for_me(
    who: Anyone,
    region: RegionDep,
    tahun: YearParam = None,
    as_of: AsOfParam = None,
) -> RegionCyclesPublic:
    view = await region.waiting_for(who.actor.role, who.opd, fiscal_year=parse_year(tahun), as_of=parse_as_of(as_of))
    return region_public(view)
