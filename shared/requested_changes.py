"""What a requested change to a Renja row may say: the published meaning of ``RequestedChange``.

A ``RequestedChange`` travels in ``MeetingHeld.requested_changes`` (the notulen of SOP step 6, written by the
meetings service) and is applied by the documents service to make the Rancangan Awal into the Rancangan
Akhir (step 7). Both services must agree on what a valid change is, and neither should import the other's
internals, so the vocabulary lives here, beside the event models:

- which row fields a change may edit (``EDITABLE_FIELDS``) and the names people write for them
  (``resolve_field``: "Pagu Indikatif", "sumber dana", "pagu_n1"...); ``kode``/``level``/``unit`` are a row's
  identity, never edited by a change;
- the code format of the nomenclature (Permendagri 90/2019 jo. Kepmendagri 050-5889/2021): program
  ``X.XX.XX``, kegiatan ``X.XX.XX.X.XX``, sub kegiatan ``X.XX.XX.X.XX.XXXX`` (``KODE_PATTERN``);
- rupiah amounts as people write them (``parse_rupiah``), bounded by what a PostgreSQL ``bigint`` holds
  (``PAGU_MAX``), since the services store amounts and totals there;
- ``change_problems``: everything wrong with one change that can be known without the draft (the meetings
  service refuses such a notulen with 422). Whether the kode exists in the draft is the documents service's
  business at step 7.

Pure: no I/O. Messages of ``parse_rupiah`` are Indonesian (they reach the units' staff in intake errors).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from shared.events.models import RequestedChange

PAGU_MAX: Final = 2**63 - 1
"""The largest pagu (rupiah) a cell or a change may hold: what a PostgreSQL ``bigint`` stores. Real pagu
are twelve orders of magnitude smaller; a larger number is a typo or a pasted identifier, and must be a
row error, never a database failure."""

EDITABLE_FIELDS: Final[tuple[str, ...]] = (
    "nama",
    "indikator",
    "target",
    "satuan",
    "pagu",
    "sumber_dana",
    "lokasi",
    "catatan",
    "target_n1",
    "pagu_n1",
)
"""The row fields (``services.documents.intake.Row``) a requested change may set."""

MONEY_FIELDS: Final[tuple[str, ...]] = ("pagu", "pagu_n1")
"""Editable fields holding whole rupiah: a change's ``new_value`` must parse with ``parse_rupiah``."""

FIELD_ALIASES: Final[dict[str, str]] = {
    "uraian": "nama",
    "pagu indikatif": "pagu",
    "pagu rkpd": "pagu",
    "sumber": "sumber_dana",
    "sumber dana": "sumber_dana",
    "target n 1": "target_n1",
    "target n1": "target_n1",
    "pagu n 1": "pagu_n1",
    "pagu n1": "pagu_n1",
    "catatan penting": "catatan",
}
"""Names a notulen uses for an editable field, normalised by ``normalise_label``."""

KODE_PATTERN: Final = re.compile(r"\d\.\d{2}\.\d{2}(\.\d\.\d{2}(\.\d{4})?)?")
"""A program, kegiatan or sub kegiatan code of the nomenclature (full match)."""


def normalise_label(text: str) -> str:
    """Lowercase, accents and punctuation folded to spaces: ``"Pagu_Indikatif (Rp)"`` -> ``"pagu indikatif rp"``."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("+", " ")
    return " ".join(re.sub(r"[^0-9a-z]+", " ", folded).split())


def resolve_field(name: str) -> str | None:
    """The ``EDITABLE_FIELDS`` entry a change's ``field`` names (``"Pagu Indikatif"`` -> ``"pagu"``), or None
    for identity fields (``kode``, ``level``, ``unit``) and unknown names."""
    norm = normalise_label(name)
    underscored = norm.replace(" ", "_")
    if underscored in EDITABLE_FIELDS:
        return underscored
    return FIELD_ALIASES.get(norm)


def thousands(value: int) -> str:
    """``1234567`` -> ``"1.234.567"`` (Indonesian thousands separator), for messages."""
    return f"{value:,}".replace(",", ".")


_THOUSANDS_DOT = re.compile(r"\d{1,3}(\.\d{3})+")
_THOUSANDS_COMMA = re.compile(r"\d{1,3}(,\d{3})+")


def parse_rupiah(value: object) -> int | None:
    """Parse a pagu cell or value into whole rupiah; ``None`` for an empty cell or "-".

    Accepts ``1234567``, ``1.234.567``, ``1,234,567``, ``Rp 1.234.567,00``, ``1234567.00`` and XLSX
    numbers. The last of ``.``/``,`` is the decimal separator when both occur; a lone separator followed
    by exactly three digits in groups is a thousands separator (Indonesian ``1.234`` = 1234).
    Raises ``ValueError`` (Indonesian message) for text, negative amounts, non-zero sen and amounts
    above ``PAGU_MAX``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("bukan angka rupiah")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("pagu tidak boleh negatif")
        if value > PAGU_MAX:
            raise ValueError(f"pagu {thousands(value)} melebihi batas {thousands(PAGU_MAX)} rupiah")
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"pagu harus rupiah bulat, bukan {value}")
        return parse_rupiah(int(value))
    text = str(value).replace("\u00a0", " ").strip()
    if text in {"", "-", "–", "—"}:
        return None
    text = re.sub(r"^(rp\.?|idr)\s*", "", text, flags=re.IGNORECASE).replace(" ", "")
    if text.startswith("-") or (text.startswith("(") and text.endswith(")")):
        raise ValueError("pagu tidak boleh negatif")
    if not re.fullmatch(r"[0-9.,]+", text) or not re.search(r"[0-9]", text):
        raise ValueError(f"'{value}' bukan angka rupiah")
    whole, fraction = _split_decimal(text)
    if fraction.strip("0"):
        raise ValueError(f"pagu harus rupiah bulat, bukan '{value}'")
    if len(whole.lstrip("0")) > len(str(PAGU_MAX)):
        # Checked on the digits: int() of thousands of digits is slow, and refused by Python beyond 4300.
        raise ValueError(f"pagu '{text[:40]}' melebihi batas {thousands(PAGU_MAX)} rupiah")
    return parse_rupiah(int(whole))


def _split_decimal(text: str) -> tuple[str, str]:
    """Split a separator-laden number into (integer digits, fraction digits); ValueError if malformed."""
    has_dot, has_comma = "." in text, "," in text
    if has_dot and has_comma:
        decimal = "." if text.rfind(".") > text.rfind(",") else ","
        thousands_sep = "," if decimal == "." else "."
        head, _, fraction = text.rpartition(decimal)
        pattern = _THOUSANDS_COMMA if thousands_sep == "," else _THOUSANDS_DOT
        if not (pattern.fullmatch(head) or head.isdigit()) or not fraction.isdigit():
            raise ValueError(f"'{text}' bukan angka rupiah yang sah")
        return head.replace(thousands_sep, ""), fraction
    for sep, pattern in ((".", _THOUSANDS_DOT), (",", _THOUSANDS_COMMA)):
        if sep in text:
            if pattern.fullmatch(text):
                return text.replace(sep, ""), ""
            head, _, fraction = text.partition(sep)
            if head.isdigit() and fraction.isdigit():
                return head, fraction
            raise ValueError(f"'{text}' bukan angka rupiah yang sah")
    return text, ""


def change_problems(change: RequestedChange) -> list[str]:
    """What is wrong with ``change`` on its own (English, one sentence each; empty when it is valid).

    Checks: ``kode`` has the nomenclature format (``KODE_PATTERN``); ``field`` names an editable field
    (``resolve_field``); a ``pagu``/``pagu_n1`` value is a non-negative whole rupiah amount up to
    ``PAGU_MAX`` (not empty: a notulen asks for an amount); a ``nama`` is not empty.
    """
    problems: list[str] = []
    if not KODE_PATTERN.fullmatch(change.kode):
        problems.append(f"kode {change.kode!r} is not a nomenclature code (X.XX.XX, X.XX.XX.X.XX or X.XX.XX.X.XX.XXXX)")
    field = resolve_field(change.field)
    if field is None:
        problems.append(f"field {change.field!r} cannot be changed; editable: {', '.join(EDITABLE_FIELDS)}")
    elif field in MONEY_FIELDS:
        try:
            amount = parse_rupiah(change.new_value)
        except ValueError as exc:
            problems.append(f"{field} {change.new_value!r} is not a valid rupiah amount ({exc})")
        else:
            if amount is None:
                problems.append(f"{field} needs an amount in rupiah, not {change.new_value!r}")
    elif field == "nama" and not change.new_value.strip():
        problems.append("nama cannot be empty")
    return problems


__all__ = [
    "EDITABLE_FIELDS",
    "FIELD_ALIASES",
    "KODE_PATTERN",
    "MONEY_FIELDS",
    "PAGU_MAX",
    "change_problems",
    "normalise_label",
    "parse_rupiah",
    "resolve_field",
    "thousands",
]
