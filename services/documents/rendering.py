"""Rendered files of the documents service: the Renja draft (PDF, DOCX) and the step 6 meeting records.

The Renja follows the chapter layout of Permendagri 86/2017 (Bab I–V, Tabel T-C.29 and T-C.33, Bab IV
matrix); when signed (step 10) it carries the signature block naming the signer, the time, the content
hash it binds and how to verify it. The daftar hadir and notulen (step 6) are the records the SOP says
to keep. Functions take models and return bytes; no I/O besides reading the packaged templates.
Times are shown in the agency's zone (Asia/Jakarta, "WIB") but stored in UTC.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from services.documents.draft import DraftMeta, content_sha256, pagu_total
from services.documents.findings import Finding
from services.documents.intake import Row, program_of
from shared.events.models import Attendee, RequestedChange, Sha256Hex, UtcDatetime

TEMPLATES = Path(__file__).resolve().parent / "templates"
AGENCY_ZONE = ZoneInfo("Asia/Jakarta")
_MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
           "November", "Desember")  # fmt: skip
_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
STAGE_LABEL = {"awal": "Rancangan Awal", "akhir": "Rancangan Akhir"}


class SignatureBlock(BaseModel):
    """What the signed Renja shows of step 10: who signed, when (UTC), the hash bound and the key id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signer_name: str = Field(min_length=1)
    signer_nip: str
    signer_position: str = Field(min_length=1, description="e.g. 'Kepala Badan'")
    signed_at: UtcDatetime
    content_sha256: Sha256Hex
    key_id: str = Field(min_length=1)
    algorithm: Literal["Ed25519"] = "Ed25519"


class MeetingDoc(BaseModel):
    """The step 6 consultation meeting as the daftar hadir and notulen print it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opd: str = Field(min_length=1)
    region: str = ""
    fiscal_year: int = Field(ge=2000, le=2100)
    title: str = "Rapat Konsultasi Rancangan Awal Renja bersama Sekretariat dan Bidang"
    held_at: UtcDatetime
    place: str = ""
    chair: str = ""
    notulis: str = ""
    draft_version: int = Field(ge=1)
    draft_sha256: Sha256Hex
    attendees: tuple[Attendee, ...] = Field(min_length=1)
    points: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    requested_changes: tuple[RequestedChange, ...] = ()


# --- formatting --------------------------------------------------------------------------------------


def format_rupiah(value: int | None, prefix: bool = True) -> str:
    """``1234567`` -> ``"Rp 1.234.567"`` (Indonesian grouping); None -> ``"–"``."""
    if value is None:
        return "–"
    text = f"{value:,}".replace(",", ".")
    return f"Rp {text}" if prefix else text


def _local(value: datetime) -> datetime:
    return value.astimezone(AGENCY_ZONE)


def format_tanggal(value: datetime) -> str:
    """``"Senin, 3 Maret 2025"`` in Asia/Jakarta."""
    local = _local(value)
    return f"{_DAYS[local.weekday()]}, {local.day} {_MONTHS[local.month - 1]} {local.year}"


def format_jam(value: datetime) -> str:
    """``"09.30 WIB"`` (Indonesian time notation) in Asia/Jakarta."""
    return _local(value).strftime("%H.%M WIB")


def format_waktu(value: datetime) -> str:
    """Date and time in Asia/Jakarta plus the UTC instant, for the signature block."""
    return f"{format_tanggal(value)} {format_jam(value)} ({value.astimezone(ZoneInfo('UTC')):%Y-%m-%dT%H:%M:%SZ})"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["rupiah"] = format_rupiah
    env.filters["tanggal"] = format_tanggal
    env.filters["jam"] = format_jam
    env.filters["waktu"] = format_waktu
    return env


def _pdf(template: str, context: dict[str, Any]) -> bytes:
    import weasyprint  # local import: loading pango/cairo is only paid by callers that render

    html = _environment().get_template(template).render(**context)
    document: bytes = weasyprint.HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
    return document


# --- the Renja ---------------------------------------------------------------------------------------


def _draft_context(
    meta: DraftMeta, rows: Sequence[Row], findings: Sequence[Finding], signature: SignatureBlock | None
) -> dict[str, Any]:
    plan_rows = sorted(rows, key=lambda r: r.kode)
    programs = []
    for row in plan_rows:
        if row.level != "program":
            continue
        members = [r for r in plan_rows if program_of(r.kode) == row.kode]
        programs.append(
            {
                "kode": row.kode,
                "nama": row.nama,
                "pagu": row.pagu,
                "pagu_n1": row.pagu_n1,
                "n_kegiatan": sum(r.level == "kegiatan" for r in members),
                "n_sub": sum(r.level == "sub_kegiatan" for r in members),
            }
        )
    n1_values = [r.pagu_n1 for r in plan_rows if r.level == "program" and r.pagu_n1 is not None]
    return {
        "meta": meta,
        "stage_label": STAGE_LABEL[meta.stage],
        "content_hash": content_sha256(rows, meta),
        "plan_rows": plan_rows,
        "programs": programs,
        "n_program": sum(r.level == "program" for r in plan_rows),
        "n_kegiatan": sum(r.level == "kegiatan" for r in plan_rows),
        "n_sub": sum(r.level == "sub_kegiatan" for r in plan_rows),
        "total": pagu_total(rows),
        "total_n1": sum(n1_values) if n1_values else None,
        "findings": list(findings),
        "n_blocking": sum(f.severity == "blocking" for f in findings),
        "n_warning": sum(f.severity == "warning" for f in findings),
        "signature": signature,
    }


def render_draft_pdf(
    meta: DraftMeta, rows: Sequence[Row], findings: Sequence[Finding], signature: SignatureBlock | None = None
) -> bytes:
    """The Renja draft as PDF bytes: cover, Bab I–V (Permendagri 86/2017), Tabel T-C.29 and T-C.33 from
    ``rows`` (sorted by kode, totals in rupiah), Bab IV per-program matrix, the findings as an annex, and
    — when ``signature`` is given — the signature block with signer, time (WIB and UTC), hash and key id.
    Every page footer carries the content hash of ``(rows, meta)``. Raises ``ValueError`` if the
    signature names another hash than this content's (a signature never decorates a different version).
    """
    if signature is not None and signature.content_sha256 != content_sha256(rows, meta):
        raise ValueError("signature.content_sha256 does not match this draft's content hash")
    return _pdf("renja.html.j2", _draft_context(meta, rows, findings, signature))


def render_draft_docx(
    meta: DraftMeta, rows: Sequence[Row], findings: Sequence[Finding], signature: SignatureBlock | None = None
) -> bytes:
    """The same Renja as an editable DOCX (for staff who finish the narrative in a word processor):
    Bab I–V headings, Tabel T-C.33 in a landscape section, Bab IV totals, findings and signature block.
    Raises ``ValueError`` on a signature for another hash, like ``render_draft_pdf``."""
    import docx
    from docx.enum.section import WD_ORIENT
    from docx.shared import Pt

    if signature is not None and signature.content_sha256 != content_sha256(rows, meta):
        raise ValueError("signature.content_sha256 does not match this draft's content hash")
    ctx = _draft_context(meta, rows, findings, signature)
    document = docx.Document()
    document.styles["Normal"].font.size = Pt(10)
    document.add_heading(f"RENCANA KERJA PERANGKAT DAERAH (RENJA PD)\n{meta.opd.upper()}", level=0)
    document.add_paragraph(
        f"{meta.region}\nTahun {meta.fiscal_year} — {ctx['stage_label']} versi {meta.version}\n"
        f"Hash konten (SHA-256): {ctx['content_hash']}"
    )
    chapters = (
        ("BAB I PENDAHULUAN", "Latar belakang, landasan hukum, maksud dan tujuan, sistematika."),
        ("BAB II HASIL EVALUASI RENJA PERANGKAT DAERAH TAHUN LALU", "Tabel T-C.29 dan analisis kinerja."),
        (
            "BAB III TUJUAN DAN SASARAN PERANGKAT DAERAH",
            f"{ctx['n_program']} program, {ctx['n_kegiatan']} kegiatan dan {ctx['n_sub']} sub kegiatan, "
            f"total pagu indikatif {format_rupiah(ctx['total'])} (Tabel T-C.33).",
        ),
    )
    for title, text in chapters:
        document.add_heading(title, level=1)
        document.add_paragraph(text)
    section = document.add_section()
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = section.page_height, section.page_width
    document.add_paragraph(
        f"Tabel T-C.33 Rumusan Rencana Program dan Kegiatan Perangkat Daerah Tahun {meta.fiscal_year} "
        f"dan Prakiraan Maju Tahun {meta.fiscal_year + 1} — {meta.opd}"
    )
    headers = ("Kode", "Program/Kegiatan/Sub Kegiatan", "Indikator", "Lokasi", "Target", "Pagu Indikatif (Rp)",
               "Sumber Dana", "Catatan", "Target n+1", "Pagu n+1 (Rp)")  # fmt: skip
    table = document.add_table(rows=1, cols=len(headers))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, headers, strict=True):
        cell.text = text
    for row in ctx["plan_rows"]:
        values = (row.kode, row.nama, row.indikator, row.lokasi, f"{row.target} {row.satuan}".strip(),
                  format_rupiah(row.pagu, prefix=False), row.sumber_dana, row.catatan, row.target_n1,
                  format_rupiah(row.pagu_n1, prefix=False))  # fmt: skip
        for cell, text in zip(table.add_row().cells, values, strict=True):
            cell.text = text
    total = table.add_row().cells
    total[0].text, total[5].text = "JUMLAH", format_rupiah(ctx["total"], prefix=False)
    section = document.add_section()
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = section.page_height, section.page_width
    document.add_heading("BAB IV RENCANA KERJA DAN PENDANAAN PERANGKAT DAERAH", level=1)
    for p in ctx["programs"]:
        document.add_paragraph(f"{p['kode']} {p['nama']}: {format_rupiah(p['pagu'])}", style="List Bullet")
    document.add_heading("BAB V PENUTUP", level=1)
    document.add_paragraph(
        f"Temuan pemeriksaan: {ctx['n_blocking']} wajib diperbaiki, {ctx['n_warning']} peringatan."
        if findings
        else "Pemeriksaan otomatis tidak mencatat temuan."
    )
    for f in findings:
        document.add_paragraph(f"[{f.severity}] {f.codes[0]}: {f.message} ({f.source})", style="List Bullet")
    if signature is not None:
        document.add_paragraph(
            f"{signature.signer_position}\n[ditandatangani secara elektronik]\n{signature.signer_name}\n"
            f"NIP. {signature.signer_nip}\nWaktu: {format_waktu(signature.signed_at)}\n"
            f"Hash konten SHA-256: {signature.content_sha256}\n"
            f"Verifikasi: tanda tangan {signature.algorithm} atas hash ini dengan kunci {signature.key_id}."
        )
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- step 6 records ----------------------------------------------------------------------------------


def render_daftar_hadir_pdf(meeting: MeetingDoc) -> bytes:
    """The attendance list (*daftar hadir*) of the consultation meeting as PDF bytes: one line per
    ``Attendee`` (name, NIP, unit, position, presence and signing time in WIB)."""
    present = sum(a.present for a in meeting.attendees)
    return _pdf("daftar_hadir.html.j2", {"meeting": meeting, "present": present})


def render_notulen_pdf(meeting: MeetingDoc) -> bytes:
    """The minutes (*notulen*) as PDF bytes: meeting data, discussion points, decisions and the table of
    ``RequestedChange`` items that step 7 must apply to the Rancangan Awal."""
    present = sum(a.present for a in meeting.attendees)
    return _pdf("notulen.html.j2", {"meeting": meeting, "present": present})
