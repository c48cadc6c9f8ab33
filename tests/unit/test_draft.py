"""Steps 5/7: canonical content and hash, notulen changes applied, draft diffs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from services.documents.draft import (
    ChangeError,
    DraftMeta,
    apply_changes,
    apply_notulen_changes,
    canonical_content,
    content_sha256,
    diff,
    pagu_total,
)
from services.documents.findings import notulen_findings
from services.documents.intake import Row, parse_rows
from shared.events.models import RequestedChange
from shared.requested_changes import EDITABLE_FIELDS

pytestmark = pytest.mark.unit

PPU = Path(__file__).resolve().parents[2] / "data" / "renja-2024-bapelitbang-ppu.csv"
META = DraftMeta(opd="Bapelitbang", fiscal_year=2024, stage="awal", version=1, region="Kab. Penajam Paser Utara")


@pytest.fixture
def rows() -> list[Row]:
    return parse_rows("ppu.csv", PPU.read_bytes(), unit="Sekretariat")


def test_canonical_content_is_compact_sorted_utf8_json(rows: list[Row]) -> None:
    content = canonical_content(rows, META)
    document = json.loads(content.decode("utf-8"))
    assert [r["kode"] for r in document["rows"]] == sorted(r.kode for r in rows)
    assert document["meta"]["opd"] == "Bapelitbang"
    assert content == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert content.startswith(b'{"format":"renja-draft/1","meta":{') and b"\n" not in content


def test_hash_ignores_row_order_but_not_content_or_meta(rows: list[Row]) -> None:
    digest = content_sha256(rows, META)
    assert digest == hashlib.sha256(canonical_content(rows, META)).hexdigest()
    assert content_sha256(list(reversed(rows)), META) == digest
    one_rupiah_more = [rows[0].model_copy(update={"pagu": (rows[0].pagu or 0) + 1}), *rows[1:]]
    assert content_sha256(one_rupiah_more, META) != digest
    assert content_sha256(rows, META.model_copy(update={"version": 2})) != digest


def test_non_ascii_text_is_stored_as_utf8_not_escaped() -> None:
    row = Row(kode="5.01.02", level="program", nama="Perencanaan – Café", unit="Bidang Ñ")
    assert "Perencanaan – Café".encode() in canonical_content([row], META)


def test_pagu_total_sums_program_rows(rows: list[Row]) -> None:
    assert pagu_total(rows) == 8946892715 + 2642668647 + 3440730000 + 3100000000


def test_apply_changes_parses_rupiah_and_resolves_field_aliases(rows: list[Row]) -> None:
    changes = [
        RequestedChange(kode="5.01.01.2.02.0003", field="Pagu Indikatif", new_value="Rp 254.906.000"),
        RequestedChange(kode="5.01.02.2.03", field="indikator", new_value="Terlaksananya evaluasi daerah"),
        RequestedChange(kode="5.01.02.2.03", field="sumber dana", new_value=" PAD "),
    ]
    updated = apply_changes(rows, changes)
    by_code = {r.kode: r for r in updated}
    assert by_code["5.01.01.2.02.0003"].pagu == 254_906_000
    assert by_code["5.01.02.2.03"].indikator == "Terlaksananya evaluasi daerah"
    assert by_code["5.01.02.2.03"].sumber_dana == "PAD"
    assert [r.kode for r in updated] == [r.kode for r in rows]
    assert next(r for r in rows if r.kode == "5.01.01.2.02.0003").pagu == 0  # input untouched


@pytest.mark.parametrize(
    "change",
    [
        RequestedChange(kode="9.99.99", field="pagu", new_value="1"),
        RequestedChange(kode="5.01.02", field="kode", new_value="5.01.03"),
        RequestedChange(kode="5.01.02", field="pagu", new_value="satu miliar"),
        RequestedChange(kode="5.01.02", field="warna", new_value="merah"),
    ],
)
def test_apply_changes_refuses_what_it_cannot_apply(rows: list[Row], change: RequestedChange) -> None:
    with pytest.raises(ChangeError):
        apply_changes(rows, [change])


def test_the_notulen_applies_change_by_change_and_reports_what_it_skips(rows: list[Row]) -> None:
    notulen = [
        RequestedChange(kode="9.99.99", field="pagu", new_value="-5"),
        RequestedChange(kode="5.01.01.2.09.0010", field="pagu", new_value="45.000.000"),
        RequestedChange(kode="5.01.02", field="kode", new_value="5.01.03"),
        RequestedChange(kode="5.01.02", field="Sumber Dana", new_value="PAD"),
    ]
    updated, applied, skipped = apply_notulen_changes(rows, notulen)
    assert applied == [notulen[1], notulen[3]]
    assert [(k.change, k.reason) for k in skipped] == [
        (notulen[0], "kode '9.99.99' tidak ada di rancangan"),
        (notulen[2], "kolom 'kode' tidak dapat diubah lewat notulen (bisa: " + ", ".join(EDITABLE_FIELDS) + ")"),
    ]
    assert updated == apply_changes(rows, applied)
    with pytest.raises(ChangeError):
        apply_changes(rows, notulen)  # the staff's own changes stay all or nothing


def test_a_notulen_that_applies_nowhere_leaves_the_rows_as_they_were(rows: list[Row]) -> None:
    absent = RequestedChange(kode="1.01.01", field="nama", new_value="X")
    updated, applied, skipped = apply_notulen_changes(rows, [absent])
    assert (updated, applied, len(skipped)) == (rows, [], 1)


def test_skipped_notulen_changes_become_warning_findings() -> None:
    change = RequestedChange(kode="9.99.99", field="pagu", new_value="-5")
    (finding,) = notulen_findings([(change, "kode '9.99.99' tidak ada di rancangan")])
    assert (finding.severity, finding.rule, finding.codes) == ("warning", "notulen_change_not_applied", ("9.99.99",))
    assert finding.message == "notulen change not applied: 9.99.99 pagu = '-5' (kode '9.99.99' tidak ada di rancangan)"
    assert "langkah 7" in finding.source


def test_diff_reports_added_removed_and_changed_fields(rows: list[Row]) -> None:
    new = apply_changes(rows, [RequestedChange(kode="5.01.01.2.09.0010", field="pagu", new_value="45.000.000")])
    new = [r for r in new if r.kode != "5.05.02.2.04.0005"]
    extra = Row(kode="5.01.01.2.01.0007", level="sub_kegiatan", nama="Evaluasi Kinerja Perangkat Daerah", pagu=1)
    new.append(extra)
    result = diff(rows, new)
    assert result.added == (extra,)
    assert [r.kode for r in result.removed] == ["5.05.02.2.04.0005"]
    assert [(c.kode, c.field, c.old, c.new) for c in result.changed] == [("5.01.01.2.09.0010", "pagu", 0, 45_000_000)]
    assert diff(rows, list(reversed(rows))).is_empty
