"""OPD names: the invisible differences people type are removed before "one cycle per OPD and year"."""

from __future__ import annotations

import unicodedata

import pytest

from services.directive.domain import normalise_opd

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("Bappeda Kota Bogor", "Bappeda Kota Bogor"),
        ("  Bappeda Kota Bogor \n", "Bappeda Kota Bogor"),
        ("Bappeda \t Kota\u00a0\u00a0Bogor", "Bappeda Kota Bogor"),
        ("Bap\u200bpeda\u200d Kota\u2060 Bogor\ufeff", "Bappeda Kota Bogor"),
        ("Dinas Pendidi\u00adkan", "Dinas Pendidikan"),
        ("\u200eDinas Kesehatan\u200f", "Dinas Kesehatan"),
        ("BAPPEDA kota bogor", "BAPPEDA kota bogor"),  # case is kept; the database compares lower(opd)
    ],
)
def test_normalise_opd(typed: str, normalised: str) -> None:
    assert normalise_opd(typed) == normalised


def test_decomposed_accents_are_composed() -> None:
    decomposed = unicodedata.normalize("NFD", "Dinas Pariwisata dan Kebudayaan – Café")
    assert decomposed != "Dinas Pariwisata dan Kebudayaan – Café"
    assert normalise_opd(decomposed) == "Dinas Pariwisata dan Kebudayaan – Café"


@pytest.mark.parametrize("typed", ["", "   ", "\u200b", "\ufeff \u200d\t"])
def test_a_name_of_only_invisible_characters_is_empty(typed: str) -> None:
    assert normalise_opd(typed) == ""
