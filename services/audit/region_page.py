"""The region-wide page for people (Bappeda, the auditor): a :class:`RegionView` as HTML.

Indonesian labels, minutes as "1 j 25 m" and times in the calendar's zone (WIB), as on the timeline page
(``services.audit.page``, whose formatting this reuses). The template is ``templates/region.html``
(Jinja2, autoescaped, strict undefined). The filter form, the CSV link and each cycle's timeline link
carry the same query (and the ``token`` the page was opened with, since a browser link has no header).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from services.audit.page import ROLE_LABELS, _environment, format_minutes
from services.audit.region import REGION_STATUSES, RegionRow
from services.audit.region_service import RegionView
from services.audit.timeline import StepSpec

REGION_ROLE_LABELS = {**ROLE_LABELS, "bappeda": "Bappeda"}

REGION_STATUS_LABELS = {
    "in_progress": "Sedang berjalan",
    "overdue": "Terlambat",
    "on_time": "Tepat waktu",
    "distributed": "Selesai (didistribusikan)",
    "cancelled": "Dibatalkan",
}
"""Labels of the status filter (``region.RegionStatus``) and of a cycle's status."""


def _local(value: datetime | None, tz: ZoneInfo) -> str:
    return "–" if value is None else value.astimezone(tz).strftime("%d-%m-%Y %H:%M")


def _yes_no(value: bool) -> str:
    return "ya" if value else "belum"


def _row(r: RegionRow, tz: ZoneInfo, token: str | None) -> dict[str, Any]:
    link = f"/renja/{r.renja_id}/timeline.html" + (f"?{urlencode({'token': token})}" if token else "")
    return {
        "renja_id": str(r.renja_id),
        "opd_code": r.opd_code or "–",
        "opd_name": r.opd_name,
        "fiscal_year": r.fiscal_year or "–",
        "status": r.status,
        "status_label": "Terlambat" if r.overdue else REGION_STATUS_LABELS.get(r.status, r.status),
        "step": r.current_step,
        "step_name": r.current_step_name or "",
        "waiting_on": REGION_ROLE_LABELS.get(r.waiting_on_role or "", r.waiting_on_role or "–"),
        "waiting_since": _local(r.waiting_since, tz),
        "waiting": format_minutes(r.waiting_minutes) if r.current_step is not None else "–",
        "standard": format_minutes(r.standard_minutes) if r.standard_minutes is not None else "–",
        "deadline": _local(r.deadline, tz),
        "overdue": r.overdue,
        "blocking": r.blocking_findings,
        "signed": _yes_no(r.signed),
        "distributed": _yes_no(r.distributed),
        "distributed_at": _local(r.distributed_at, tz) if r.distributed_at else "",
        "timeline": link,
    }


def _query(view: RegionView, token: str | None, **extra: Any) -> str:
    params = {
        "tahun": view.fiscal_year,
        "step": view.step,
        "status": view.status,
        "as_of": view.as_of.isoformat() if extra.pop("pin_as_of", False) else None,
        "token": token,
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v is not None})


def render_region_html(
    view: RegionView,
    steps: Mapping[int, StepSpec],
    timezone: str,
    *,
    token: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> str:
    """Render the region-wide page (``templates/region.html``) as an HTML string.

    ``steps``: the SOP step table (for the step filter); ``timezone``: the calendar's zone; ``token``: the
    bearer token the page was opened with (carried into its links); ``meta`` (optional): ``region``, the
    region's name (from the registry when wired), ``generated_at`` (aware). Every value is HTML-escaped.
    """
    meta = dict(meta or {})
    tz = ZoneInfo(timezone)
    rows = [_row(r, tz, token) for r in view.rows]
    generated_at = meta.get("generated_at")
    context = {
        "title": "Koordinasi Penyusunan Renja Perangkat Daerah",
        "region": meta.get("region") or "",
        "fiscal_year": view.fiscal_year or "semua tahun",
        "selected_year": view.fiscal_year,
        "selected_step": view.step,
        "selected_status": view.status or "",
        "years": view.years,
        "steps": [{"number": s.number, "name": s.name} for s in steps.values()],
        "statuses": [{"value": s, "label": REGION_STATUS_LABELS[s]} for s in REGION_STATUSES],
        "token": token or "",
        "as_of": _local(view.as_of, tz),
        "as_of_utc": view.as_of.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generated_at": _local(generated_at, tz) if isinstance(generated_at, datetime) else "",
        "timezone": timezone,
        "rows": rows,
        "count": len(rows),
        "overdue_count": sum(1 for r in view.rows if r.overdue),
        "open_count": sum(1 for r in view.rows if r.status == "in_progress"),
        "distributed_count": sum(1 for r in view.rows if r.distributed),
        "truncated": view.truncated,
        "csv_link": "/region/cycles.csv?" + _query(view, token, pin_as_of=True),
    }
    return _environment().get_template("region.html").render(**context)
