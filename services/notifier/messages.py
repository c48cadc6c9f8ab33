"""What the notifier says, decided purely: mail texts, the archive reference, webhook bodies, retry delays.

No clock, randomness or I/O here: times, tokens and URLs come in as parameters. User-facing text is
Indonesian (the agency's language); identifiers and logs stay English.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.cloudevents import SPECVERSION, source_uri
from shared.events import Distributed, Event, Recipient, StepOverdue, StepReminderDue
from shared.sop import RenjaState, SopDefinition, SopStep

ROLE_LABELS: dict[str, str] = {
    "kepala_badan": "Kepala Badan",
    "sekretaris": "Sekretaris",
    "kasubag_pp": "Kasubag Perencanaan dan Pelaporan",
    "staf": "Staf",
}


@dataclass(frozen=True, slots=True)
class MailDraft:
    """One e-mail to queue: ``to`` is the formatted address (``Name <addr>``), the outbox's recipient key."""

    kind: str  # "next_actor" | "distribution" | "step_reminder" | "step_overdue"
    to: str
    subject: str
    body: str


def renja_label(state: RenjaState) -> str:
    """``Renja Dinas Pendidikan Kabupaten Bengkulu Utara 2027`` — how messages name a cycle (OPD, plan year)."""
    return f"Renja {state.opd or '(OPD belum diketahui)'} {state.fiscal_year or ''}".rstrip()


def sender_line(state: RenjaState) -> str:
    """``Pesan otomatis — <OPD>, <region>.``: mails speak for the cycle's OPD (its identity snapshot, else
    the name the arahan gave), never for the SOP file's owner."""
    identity = state.opd_identity
    if identity is not None:
        return f"Pesan otomatis — {identity.name}, {identity.region}."
    return f"Pesan otomatis — {state.opd or 'Renja'}."


def head_title(state: RenjaState) -> str:
    """The head's jabatan of the cycle's OPD (``Kepala Dinas Pendidikan``), else ``Kepala Perangkat Daerah``."""
    return state.opd_identity.head_title if state.opd_identity is not None else "Kepala Perangkat Daerah"


def local_time_text(moment: datetime | None, timezone: str) -> str:
    """``05-01-2026 08:00 Asia/Jakarta`` for people; ``-`` when unknown."""
    if moment is None:
        return "-"
    return moment.astimezone(ZoneInfo(timezone)).strftime("%d-%m-%Y %H:%M ") + timezone


def next_actor_mail(
    state: RenjaState, step: SopStep, sop: SopDefinition, *, to_name: str, to_email: str, renja_id: UUID
) -> MailDraft:
    """The "your step is due" mail to the holder of ``step.role``.

    Subject names the Renja (OPD, year), the step number, its Indonesian activity and its time standard
    (*mutu baku*, working minutes, from the SOP file).
    """
    label = renja_label(state)
    subject = f"[{label}] Langkah {step.number}: {step.activity} — mutu baku {step.standard_minutes} menit kerja"
    lines = [
        f"Yth. {to_name},",
        "",
        f"{label} menunggu tindakan Anda sebagai {ROLE_LABELS.get(step.role, step.role)}.",
        "",
        f"Langkah {step.number} dari {len(sop.steps)}: {step.activity}",
        f"Masukan: {step.input or '-'}",
        f"Keluaran: {step.output}",
        f"Mutu baku: {step.standard_minutes} menit kerja",
        f"Jatuh tempo sejak: {local_time_text(state.due_since, sop.office_hours.timezone)}",
    ]
    if step.number == 7 and state.returns and state.last_return_notes:
        lines += ["", f"Catatan pengembalian: {state.last_return_notes}"]
    lines += ["", f"ID Renja: {renja_id}", "", sender_line(state)]
    return MailDraft("next_actor", formataddr((to_name, to_email)), subject, "\n".join(lines) + "\n")


def archive_ref(opd: str, fiscal_year: int | None, content_sha256: str) -> str:
    """``ARSIP/RENJA/<OPD-SLUG>/<year>/<first 12 hex of the hash>`` — the archive number of the signed Renja.

    Deterministic from the signed content, so the same signed version always gets the same reference.
    """
    slug = re.sub(r"[^A-Z0-9]+", "-", opd.upper()).strip("-") or "OPD"
    return f"ARSIP/RENJA/{slug}/{fiscal_year or 0}/{content_sha256[:12]}"


def distribution_mail(
    state: RenjaState, event: Distributed, recipient: Recipient, *, receipt_url: str, sop: SopDefinition
) -> MailDraft:
    """The step-11 mail to one recipient: archive reference, version and hash, copies, the receipt link."""
    label = renja_label(state)
    lines = [
        f"Yth. {recipient.name},",
        "",
        f"Bersama ini kami sampaikan {label} yang telah ditandatangani {head_title(state)}.",
        "",
        f"Nomor arsip: {event.archive_ref}",
        f"Versi: {event.version}",
        f"SHA-256 dokumen: {event.content_sha256}",
        f"Jumlah salinan: {recipient.copies}",
        "",
        "Mohon konfirmasi penerimaan (bukti distribusi) melalui tautan berikut:",
        receipt_url,
        "",
        f"ID distribusi: {event.distribution_id}",
        "",
        sender_line(state),
    ]
    return MailDraft(
        "distribution",
        formataddr((recipient.name, recipient.email)),
        f"[{label}] Distribusi Renja — {event.archive_ref}",
        "\n".join(lines) + "\n",
    )


def build_email(draft_to: str, subject: str, body: str, *, mail_from: str, message_id: str) -> EmailMessage:
    """The RFC 5322 message for a queued mail. ``message_id`` is stable per outbox row, so a resend after a
    crash (between SMTP acceptance and marking it sent) can be recognised as a duplicate by receivers."""
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = draft_to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return msg


def webhook_body(event: Event, traceparent: str | None = None, tracestate: str | None = None) -> bytes:
    """The webhook payload: the event as a CloudEvents 1.0 JSON object (structured mode).

    ``data`` is the event's own JSON (the same bytes the Kafka record carries), so a subscriber gets the
    type, source and id beside the whole fact. ``traceparent``/``tracestate`` (W3C), when known, are added
    as the CloudEvents distributed-tracing extension attributes; the delivery sends them as headers too.
    """
    envelope = {
        "specversion": SPECVERSION,
        "id": str(event.event_id),
        "source": source_uri(event.source),
        "type": event.event_type,
        "subject": str(event.renja_id),
        "time": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": json.loads(event.model_dump_json()),
    }
    if traceparent:
        envelope["traceparent"] = traceparent
        if tracestate:
            envelope["tracestate"] = tracestate
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def subscription_matches(event_types: list[str] | tuple[str, ...], event_type: str) -> bool:
    """True if a subscription listing ``event_types`` (full CloudEvents types, or ``*``) wants ``event_type``."""
    return "*" in event_types or event_type in event_types


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Delay before the next try after ``attempts`` failed ones: ``base * 2**(attempts-1)``, at most ``cap``."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


def timer_mail(
    state: RenjaState,
    event: StepReminderDue | StepOverdue,
    sop: SopDefinition,
    *,
    to_name: str,
    to_email: str,
    to_role: str,
) -> MailDraft:
    """The reminder or overdue notice of a step to ``to_name`` (the step's role, or its superior).

    Names the step, its *mutu baku* and the working minutes used so far (the audit timeline's numbers),
    the deadline in the office's zone, and for an escalation whose step it is.
    """
    label = renja_label(state)
    step = sop.step(event.step)
    tz = sop.office_hours.timezone
    overdue = isinstance(event, StepOverdue)
    acting = ROLE_LABELS.get(event.role, event.role)
    if overdue:
        subject = f"[{label}] TERLAMBAT — Langkah {event.step}: {step.activity} melewati mutu baku"
    else:
        subject = f"[{label}] Pengingat — Langkah {event.step}: {step.activity}"
    lines = [f"Yth. {to_name},", ""]
    if to_role != event.role:
        lines.append(f"Sebagai atasan {acting}, Anda menerima pemberitahuan keterlambatan berikut (eskalasi).")
    elif overdue:
        lines.append(f"{label} menunggu tindakan Anda sebagai {acting} dan sudah melewati mutu baku.")
    else:
        lines.append(f"{label} menunggu tindakan Anda sebagai {acting}; waktu mutu baku hampir habis.")
    lines += [
        "",
        f"Langkah {event.step} dari {len(sop.steps)}: {step.activity}",
        f"Pelaksana: {acting}",
        f"Mutu baku: {event.standard_minutes} menit kerja",
        f"Sudah berjalan: {event.working_minutes:.0f} menit kerja",
        f"Jatuh tempo sejak: {local_time_text(event.due_since, tz)}",
        f"Batas waktu: {local_time_text(event.due_at, tz)}",
    ]
    if overdue and isinstance(event, StepOverdue) and event.escalated_to and to_role == event.role:
        lines.append(f"Diteruskan kepada: {ROLE_LABELS.get(event.escalated_to, event.escalated_to)}")
    lines += ["", sop.warning.strip(), "", f"ID Renja: {event.renja_id}", "", f"Pesan otomatis — {sop.agency.name}."]
    kind = "step_overdue" if overdue else "step_reminder"
    return MailDraft(kind, formataddr((to_name, to_email)), subject, "\n".join(lines) + "\n")
