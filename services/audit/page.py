"""The timeline page for people: one Renja's :class:`~services.audit.timeline.Timeline` as HTML.

This module owns the presentation: Indonesian labels for roles, statuses and events, minutes as
"1 j 25 m", times in the calendar's zone (WIB) next to UTC, and the bars that compare each step with its
own standard. The template is ``templates/timeline.html`` (Jinja2, autoescaped, strict undefined).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from services.audit.timeline import OpenStep, StepSpec, Timeline, TimelineEntry

ROLE_LABELS = {
    "kepala_badan": "Kepala Badan",
    "sekretaris": "Sekretaris",
    "kasubag_pp": "Kasubag Perencanaan dan Pelaporan",
    "staf": "Staf",
    "auditor": "Auditor",
    "system": "Sistem",
}

STATUS_LABELS = {
    "not_started": "Belum dimulai",
    "in_progress": "Sedang berjalan",
    "cancelled": "Dibatalkan",
    "distributed": "Selesai (didistribusikan)",
}

EVENT_LABELS = {
    "DirectiveIssued": "Arahan/instruksi/perintah",
    "DataCollected": "Data terkumpul",
    "DraftCreated": "Rancangan dibuat",
    "MeetingHeld": "Rapat konsultasi",
    "Initialed": "Paraf",
    "Signed": "Tanda tangan",
    "DraftReturned": "Rancangan dikembalikan",
    "RenjaCancelled": "Renja dibatalkan",
    "Distributed": "Didistribusikan",
    "ReceiptRecorded": "Tanda terima",
}


ANOMALY_LABELS = {
    "unknown_renja": "Renja tidak dikenal (tanpa arahan pembuka)",
    "wrong_role": "Pelaksana tidak sesuai SOP",
    "out_of_order": "Tidak sesuai urutan SOP",
    "second_completion": "Langkah diselesaikan dua kali",
    "after_cancellation": "Peristiwa setelah pembatalan",
    "duplicate_id": "ID peristiwa ganda dengan isi berbeda",
}
"""Indonesian labels of the anomaly kinds (``shared.sop.ANOMALY_KINDS``)."""


def format_minutes(minutes: float | None) -> str:
    """Working minutes as ``"1 j 25 m"`` (jam/menit), rounded to the minute; ``"–"`` for ``None``."""
    if minutes is None:
        return "–"
    total = round(minutes)
    hours, rest = divmod(total, 60)
    if not hours:
        return f"{rest} m"
    return f"{hours} j {rest} m" if rest else f"{hours} j"


@functools.cache
def _environment() -> jinja2.Environment:
    # built on first use, not at import (STYLE.md rule 3); autoescape everything this module renders
    return jinja2.Environment(
        loader=jinja2.PackageLoader("services.audit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _short_type(event_type: str) -> str:
    parts = event_type.split(".")
    return parts[1] if len(parts) == 3 else event_type


def _local(value: datetime | None, tz: ZoneInfo) -> str:
    return "–" if value is None else value.astimezone(tz).strftime("%d-%m-%Y %H:%M")


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)


def _chain_view(chain: Any) -> dict[str, Any] | None:
    """The optional integrity box, with every key the template reads present (StrictUndefined)."""
    if chain is None:
        return None
    return {
        "ok": bool(_attr(chain, "ok", False)),
        "reason": str(_attr(chain, "reason", "") or ""),
        "position": _attr(chain, "position") or _attr(chain, "first_bad_position"),
        "head_signed": bool(_attr(chain, "head_signed", False)),
    }


def _integrity_view(value: Any) -> dict[str, Any] | None:
    """The verdict banner (``verify.Integrity``), with every key the template reads present."""
    if value is None:
        return None
    return {
        "ok": bool(_attr(value, "ok", False)),
        "message_id": str(_attr(value, "message_id", "") or ""),
        "tampered_at": _attr(value, "tampered_at"),
        "verified_entries": _attr(value, "verified_entries"),
    }


def _anomaly_rows(anomalies: Any, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The anomaly table's rows (``store.StoredAnomaly`` or mappings with the same names)."""
    rows = []
    for a in anomalies or ():
        kind = str(_attr(a, "kind"))
        when = _attr(a, "occurred_at")
        rows.append(
            {
                "position": _attr(a, "position"),
                "kind": kind,
                "label": ANOMALY_LABELS.get(kind, kind),
                "event_type": str(_attr(a, "event_type", "")),
                "role": ROLE_LABELS.get(str(_attr(a, "actor_role", "")), str(_attr(a, "actor_role", ""))),
                "message": str(_attr(a, "message", "")),
                "when": _local(when, tz) if isinstance(when, datetime) else "–",
            }
        )
    return rows


def _step_row(spec: StepSpec, done: list[TimelineEntry], waiting: OpenStep | None, tz: ZoneInfo) -> dict[str, Any]:
    """One row of the step table: the step's completions as bars, and the waiting bar if it is due."""
    # each row has its own scale: the bars compare a step with its own standard (the marker sits at
    # half width or less), since standards range from 15 to 300 minutes
    scale = max(
        [2.0 * spec.standard_minutes, 1.0]
        + [e.working_minutes or 0.0 for e in done]
        + [(waiting.elapsed_minutes or 0.0) if waiting else 0.0]
    )
    bars = [
        {
            "label": f"ke-{e.attempt}" if len(done) > 1 else "",
            "width": 100.0 * (e.working_minutes or 0.0) / scale,
            "minutes": format_minutes(e.working_minutes),
            "overdue": bool(e.overdue),
            "actor": e.actor.name,
            "nip": e.actor.nip,
            "when": _local(e.occurred_at, tz),
            "when_utc": _utc(e.occurred_at),
            "version": e.draft_version,
        }
        for e in done
    ]
    return {
        "number": spec.number,
        "name": spec.name,
        "gloss": spec.gloss,
        "role": ROLE_LABELS.get(spec.role, spec.role),
        "standard": format_minutes(spec.standard_minutes),
        "standard_pos": 100.0 * spec.standard_minutes / scale,
        "bars": bars,
        "overdue": any(b["overdue"] for b in bars),
        "waiting": waiting is not None,
        "waiting_minutes": format_minutes(waiting.elapsed_minutes) if waiting else "",
        "waiting_width": 100.0 * (waiting.elapsed_minutes or 0.0) / scale if waiting else 0.0,
        "waiting_overdue": bool(waiting.overdue) if waiting else False,
    }


def _step_rows(timeline: Timeline, tz: ZoneInfo) -> list[dict[str, Any]]:
    completions: dict[int, list[TimelineEntry]] = {}
    for entry in timeline.step_entries:
        completions.setdefault(entry.step_number or 0, []).append(entry)
    current = timeline.current_step
    return [
        _step_row(
            spec,
            completions.get(spec.number, []),
            current if (current and current.number == spec.number) else None,
            tz,
        )
        for spec in timeline.steps
    ]


def _log_row(e: TimelineEntry, tz: ZoneInfo, flagged: Mapping[int, str]) -> dict[str, Any]:
    """One line of the event log under the step table (``flagged``: position → anomaly kind)."""
    kind = flagged.get(e.position)
    return {
        "anomaly": ANOMALY_LABELS.get(kind, kind) if kind else "",
        "position": e.position,
        "label": EVENT_LABELS.get(_short_type(e.event_type), e.event_type),
        "event_type": e.event_type,
        "event_id": e.event_id,
        "step": e.step_number,
        "actor": e.actor.name,
        "nip": e.actor.nip,
        "role": ROLE_LABELS.get(e.actor.role, e.actor.role),
        "source": e.source,
        "when": _local(e.occurred_at, tz),
        "when_utc": _utc(e.occurred_at),
        "version": e.draft_version,
        "sha": (e.content_sha256 or "")[:12],
        "note": e.note,
        "minutes": format_minutes(e.working_minutes) if e.step_number is not None else "",
        "overdue": bool(e.overdue),
    }


def render_timeline_html(timeline: Timeline, meta: Mapping[str, Any] | None = None) -> str:
    """Render one Renja's timeline page (``templates/timeline.html``) as an HTML string.

    ``meta`` (all optional): ``title``, ``agency``, ``generated_at`` (aware datetime),
    ``chain``: the integrity result, a mapping or object (e.g. a ``hashchain.VerifyResult``) with ``ok``
    and optionally ``reason``, ``position`` (or ``first_bad_position``) and ``head_signed``;
    ``integrity``: the one-line verdict (``verify.Integrity``: ``ok``, ``message_id``, ``tampered_at``),
    shown as a banner above everything; ``anomalies``: the flagged events (``store.StoredAnomaly``).
    Times are shown in the calendar's zone (WIB) and UTC. Every value is HTML-escaped.
    """
    meta = dict(meta or {})
    tz = ZoneInfo(timeline.timezone)
    current = timeline.current_step
    generated_at = meta.get("generated_at")
    anomalies = _anomaly_rows(meta.get("anomalies"), tz)
    flagged = {a["position"]: a["kind"] for a in anomalies if a["kind"] != "duplicate_id" and a["position"]}
    context = {
        "title": meta.get("title") or "Linimasa Penyusunan Renja",
        "agency": meta.get("agency", ""),
        "renja_id": str(timeline.renja_id) if timeline.renja_id else "–",
        "opd": timeline.opd or "–",
        "fiscal_year": timeline.fiscal_year or "–",
        "status": timeline.status,
        "status_label": STATUS_LABELS[timeline.status],
        "current": current,
        "current_role": ROLE_LABELS.get(current.role, current.role) if current else "",
        "as_of": _local(timeline.as_of, tz) if timeline.as_of else "",
        "generated_at": _local(generated_at, tz) if isinstance(generated_at, datetime) else "",
        "timezone": timeline.timezone,
        "rows": _step_rows(timeline, tz),
        "log": [_log_row(e, tz, flagged) for e in timeline.entries],
        "total": format_minutes(timeline.total_working_minutes),
        "total_standard": format_minutes(timeline.total_standard_minutes),
        "overdue_count": timeline.overdue_count,
        "chain": _chain_view(meta.get("chain")),
        "integrity": _integrity_view(meta.get("integrity")),
        "anomalies": anomalies,
    }
    return _environment().get_template("timeline.html").render(**context)
