"""Rendered Renja (PDF/DOCX) and step 6 records, read back with pypdf / python-docx / pdftoppm."""

from __future__ import annotations

import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import docx
import pypdf
import pytest
from PIL import Image, ImageStat

from services.documents.draft import DraftMeta, content_sha256, pagu_total
from services.documents.findings import Finding, compute_findings, load_nomenclature, load_renstra
from services.documents.intake import Row, parse_rows
from services.documents.rendering import (
    MeetingDoc,
    SignatureBlock,
    format_rupiah,
    render_daftar_hadir_pdf,
    render_draft_docx,
    render_draft_pdf,
    render_notulen_pdf,
)
from shared.events.models import Attendee, RequestedChange

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PPU = ROOT / "data" / "renja-2024-bapelitbang-ppu.csv"
META = DraftMeta(
    opd="Badan Perencanaan, Penelitian dan Pengembangan",
    region="Kabupaten Penajam Paser Utara",
    fiscal_year=2024,
    stage="akhir",
    version=3,
)
SIGNED_AT = datetime(2023, 11, 20, 3, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return parse_rows(PPU.name, PPU.read_bytes(), unit="Sekretariat")


@pytest.fixture(scope="module")
def findings(rows: list[Row]) -> list[Finding]:
    renstra = load_renstra(ROOT / "data" / "renstra-2026-2030-bappeda-banyuwangi.csv")
    return compute_findings(rows, nomenclature=load_nomenclature(), renstra=renstra)


@pytest.fixture(scope="module")
def signature(rows: list[Row]) -> SignatureBlock:
    return SignatureBlock(
        signer_name="Ir. Ratna Sari Dewi, M.Si.",
        signer_nip="197001011995032001",
        signer_position="Kepala Badan",
        signed_at=SIGNED_AT,
        content_sha256=content_sha256(rows, META),
        key_id="kepala-2023-01",
    )


@pytest.fixture(scope="module")
def signed_pdf(rows: list[Row], findings: list[Finding], signature: SignatureBlock) -> bytes:
    return render_draft_pdf(META, rows, findings, signature)


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_t_c_33_lists_every_row_code_and_the_total(signed_pdf: bytes, rows: list[Row]) -> None:
    pages = _pages(signed_pdf)
    start = next(i for i, text in enumerate(pages) if "Tabel T-C.33" in text)
    end = next(i for i, text in enumerate(pages) if "BAB IV" in text)
    table_text = "\n".join(pages[start:end])
    missing = [r.kode for r in rows if r.kode not in table_text]
    assert missing == []
    assert format_rupiah(pagu_total(rows), prefix=False) in table_text  # JUMLAH line: 18.130.291.362
    assert "6.361.771.800" in table_text  # a sub kegiatan pagu, Indonesian grouping


def test_renja_has_chapters_i_to_v_and_t_c_29(signed_pdf: bytes) -> None:
    text = _flat("\n".join(_pages(signed_pdf)))
    for heading in ("BAB I PENDAHULUAN", "BAB II HASIL EVALUASI", "BAB III TUJUAN DAN SASARAN", "BAB IV RENCANA KERJA",
                    "BAB V PENUTUP", "Tabel T-C.29", "Tabel T-C.33", "Nomor 86 Tahun 2017"):  # fmt: skip
        assert heading in text


def test_signed_renja_shows_signer_time_hash_and_key(signed_pdf: bytes, signature: SignatureBlock) -> None:
    text = _flat("\n".join(_pages(signed_pdf)))
    assert signature.content_sha256 in text
    assert "Ir. Ratna Sari Dewi, M.Si." in text
    assert "197001011995032001" in text
    assert "kepala-2023-01" in text
    assert "10.15 WIB" in text  # 03:15 UTC shown in Asia/Jakarta
    assert "Wajib diperbaiki" in text  # the findings annex (the real data has 2 blocking roll-ups)


def test_signature_for_another_hash_is_refused(rows: list[Row], signature: SignatureBlock) -> None:
    other = signature.model_copy(update={"content_sha256": "0" * 64})
    with pytest.raises(ValueError):
        render_draft_pdf(META, rows, [], other)
    with pytest.raises(ValueError):
        render_draft_docx(META, rows, [], other)


def test_rendered_page_is_not_blank(signed_pdf: bytes, tmp_path: Path) -> None:
    source = tmp_path / "renja.pdf"
    source.write_bytes(signed_pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "3", "-png", str(source), str(tmp_path / "p")], check=True)
    images = sorted(tmp_path.glob("p-*.png"))
    assert len(images) == 3
    for image in images:
        variance = ImageStat.Stat(Image.open(image).convert("L")).var[0]
        assert variance > 50, f"{image.name} looks blank (variance {variance:.1f})"


def test_docx_carries_t_c_33_rows_and_signature(rows: list[Row], signature: SignatureBlock) -> None:
    document = docx.Document(io.BytesIO(render_draft_docx(META, rows, [], signature)))
    cells = {cell.text for table in document.tables for row in table.rows for cell in row.cells}
    assert {r.kode for r in rows} <= cells
    text = "\n".join(p.text for p in document.paragraphs)
    assert signature.content_sha256 in text and "BAB V PENUTUP" in text


MEETING = MeetingDoc(
    opd="Bapelitbang",
    region="Kabupaten Penajam Paser Utara",
    fiscal_year=2024,
    held_at=datetime(2023, 6, 5, 2, 0, tzinfo=UTC),
    place="Ruang Rapat Bappeda Lt. 2",
    chair="Sekretaris Badan",
    notulis="Staf Perencanaan",
    draft_version=1,
    draft_sha256="a" * 64,
    attendees=(
        Attendee(
            name="Siti Nurhaliza Ñañez",
            nip="198502142010012003",
            unit="Sekretariat",
            position="Kasubag PP",
            signed_at=datetime(2023, 6, 5, 1, 55, tzinfo=UTC),
        ),
        Attendee(name="Bambang Wijayakusuma", unit="Bidang Perekonomian dan SDA", position="Kepala Bidang"),
        Attendee(name="Dewi Lestari Ömer", unit="Bidang Litbang", present=False),
    ),
    points=("Pembahasan Rancangan Awal Renja 2024",),
    decisions=("Pagu sub kegiatan yang kosong dilengkapi sesuai selisih kegiatan",),
    requested_changes=(
        RequestedChange(kode="5.01.01.2.02.0003", field="pagu", new_value="Rp 254.906.000", note="lengkapi"),
        RequestedChange(kode="5.01.02.2.03", field="indikator", new_value="Terlaksananya evaluasi daerah"),
    ),
)


def test_daftar_hadir_lists_every_attendee() -> None:
    text = _flat("\n".join(_pages(render_daftar_hadir_pdf(MEETING))))
    for attendee in MEETING.attendees:
        assert attendee.name in text
    assert "198502142010012003" in text
    assert "hadir, 08.55 WIB" in text and "tidak hadir" in text
    assert "Hadir 2 dari 3" in text


def test_notulen_lists_decisions_and_requested_changes() -> None:
    text = _flat("\n".join(_pages(render_notulen_pdf(MEETING))))
    assert "NOTULEN RAPAT" in text
    assert "5.01.01.2.02.0003" in text and "Rp 254.906.000" in text and "5.01.02.2.03" in text
    assert MEETING.decisions[0] in text
    assert "Senin, 5 Juni 2023" in text
