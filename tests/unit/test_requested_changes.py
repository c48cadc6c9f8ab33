"""The shared meaning of a requested change (notulen, step 6 → Rancangan Akhir, step 7)."""

from __future__ import annotations

import pytest

from services.documents.draft import apply_change
from services.documents.intake import Row
from shared.events.models import RequestedChange
from shared.requested_changes import EDITABLE_FIELDS, KODE_PATTERN, change_problems, resolve_field

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("written", "field"),
    [
        ("pagu", "pagu"),
        ("Pagu Indikatif", "pagu"),
        ("PAGU RKPD", "pagu"),
        ("pagu_n1", "pagu_n1"),
        ("Pagu N+1", "pagu_n1"),
        ("uraian", "nama"),
        ("Sumber Dana", "sumber_dana"),
        ("catatan penting", "catatan"),
        ("Target N1", "target_n1"),
    ],
)
def test_field_names_people_write_resolve_to_an_editable_field(written: str, field: str) -> None:
    assert resolve_field(written) == field


@pytest.mark.parametrize("written", ["kode", "level", "unit", "warna", "", "pagu total"])
def test_identity_and_unknown_fields_do_not_resolve(written: str) -> None:
    assert resolve_field(written) is None


@pytest.mark.parametrize("kode", ["5.01.01", "5.01.01.2.02", "5.01.01.2.02.0003", "1.02.03"])
def test_nomenclature_codes_have_the_format(kode: str) -> None:
    assert KODE_PATTERN.fullmatch(kode)


@pytest.mark.parametrize(
    "change",
    [
        RequestedChange(kode="5.01.01.2.01", field="Pagu Indikatif", new_value="Rp 1.250.000.000"),
        RequestedChange(kode="5.01.01", field="pagu_n1", new_value="0"),
        RequestedChange(kode="5.01.01.2.02.0003", field="target", new_value=""),
        RequestedChange(kode="5.01.01", field="nama", new_value="PROGRAM PENUNJANG"),
    ],
)
def test_a_valid_change_has_no_problems(change: RequestedChange) -> None:
    assert change_problems(change) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (RequestedChange(kode="9.99.99", field="pagu", new_value="-5"), ["not a valid rupiah amount"]),
        (RequestedChange(kode="5.01.01", field="pagu", new_value="sejuta"), ["not a valid rupiah amount"]),
        (RequestedChange(kode="5.01.01", field="pagu", new_value=str(2**63)), ["melebihi batas"]),
        (RequestedChange(kode="5.01.01", field="pagu", new_value=" "), ["needs an amount"]),
        (RequestedChange(kode="5.1.1", field="nama", new_value="X"), ["not a nomenclature code"]),
        (RequestedChange(kode="5.01.01.2", field="nama", new_value="X"), ["not a nomenclature code"]),
        (RequestedChange(kode="5.01.01", field="level", new_value="program"), ["cannot be changed"]),
        (RequestedChange(kode="5.01.01", field="nama", new_value="  "), ["nama cannot be empty"]),
        (RequestedChange(kode="x", field="y", new_value="z"), ["not a nomenclature code", "cannot be changed"]),
    ],
)
def test_each_problem_of_a_change_is_named(change: RequestedChange, words: list[str]) -> None:
    problems = change_problems(change)
    assert len(problems) == len(words)
    for problem, word in zip(problems, words, strict=True):
        assert word in problem


@pytest.mark.parametrize("field", EDITABLE_FIELDS)
def test_every_field_the_meetings_service_accepts_is_one_the_documents_service_applies(field: str) -> None:
    row = Row(kode="5.01.01", level="program", nama="PROGRAM", pagu=1)
    value = "2.000" if field.startswith("pagu") else "baru"
    change = RequestedChange(kode="5.01.01", field=field, new_value=value)
    assert change_problems(change) == []
    (updated,) = apply_change([row], change)
    assert getattr(updated, field) in (2000, "baru")
