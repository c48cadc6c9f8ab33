"""The fictitious people who hold the SOP roles in tests, benchmarks and the demo.

The NIPs are 18-digit numbers shaped like real ones (birth date, appointment, sex, sequence) that belong
to nobody; every name says "(fiktif)".
"""

from __future__ import annotations

from typing import NamedTuple

from shared.events import Actor, Role


class Person(NamedTuple):
    """A name as it appears in the audit trail, an 18-digit NIP (Nomor Induk Pegawai) and a pangkat/golongan."""

    name: str
    nip: str
    pangkat: str = ""


PEOPLE: dict[Role, Person] = {
    "kepala_badan": Person("Dr. Hendra Gunawan, M.Si. (fiktif)", "197501012000031001", "Pembina Utama Muda (IV/c)"),
    "sekretaris": Person("Ir. Ratna Sari Dewi, M.T. (fiktif)", "197803152003122002", "Pembina Tingkat I (IV/b)"),
    "kasubag_pp": Person("Agus Prasetyo, S.E., M.M. (fiktif)", "198206202008011003", "Penata Tingkat I (III/d)"),
    "staf": Person("Dewi Lestari, S.Kom. (fiktif)", "199001102015032004", "Penata Muda Tingkat I (III/b)"),
    "auditor": Person("Bambang Sutrisno, Ak. (fiktif)", "198512122010011005", "Penata (III/c)"),
    "bappeda": Person("Lina Marlina, S.T., M.Sc. (fiktif)", "198309092009022009", "Penata Tingkat I (III/d)"),
}
"""One person per human role (``system`` is no person)."""

BIDANG_HEADS: tuple[tuple[Person, str], ...] = (
    (Person("Rudi Hartono, S.T. (fiktif)", "198001012005011006"), "Bidang Infrastruktur dan Kewilayahan"),
    (Person("Siti Aminah, S.Sos. (fiktif)", "198505052010012007"), "Bidang Sosial Budaya dan Pemerintahan"),
    (Person("Yusuf Ramadhan, S.P. (fiktif)", "198707072011011008"), "Bidang Perekonomian dan Sumber Daya Alam"),
)
"""Heads of the Bidang invited to the consultation meeting (step 6), each with the Bidang they lead."""


def user_id(role: Role) -> str:
    """The subject id the local issuer gives ``role``'s person: ``ROLE:NIP`` (as ``shared.auth.mint_token``)."""
    return f"{role}:{PEOPLE[role].nip}"


def actor(role: Role) -> Actor:
    """The event ``Actor`` of ``role``'s person: the identity their token carries."""
    person = PEOPLE[role]
    return Actor(user_id=user_id(role), name=person.name, nip=person.nip, role=role)
