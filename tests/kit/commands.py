"""The commands a cycle's actions put to the decider in-process (``tests.kit.driver.Cycle``).

Each builder reads the cycle's folded state and content options and returns the command a diligent
person would send for that action; the content is made up but consistent (hashes derived from the Renja
id, the draft version or the meeting id). The step-10 signature uses a fixed test key, never the agency's.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import uuid5

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.events import Attendee, UnitDelivery
from shared.sop import (
    CancelRenja,
    Command,
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    Distribute,
    Initial,
    IssueArahan,
    IssueInstruksi,
    IssuePerintah,
    RecordMeeting,
    RecordReceipt,
    ReturnDraft,
    Sign,
    cycle_distribution,
    cycle_units,
)
from tests.kit.people import PEOPLE

if TYPE_CHECKING:
    from tests.kit.driver import Cycle

TEST_KEY_ID = "sopdriver-test"
"""The key id of the step-10 signatures made in-process (a test key, never the agency's)."""

_TEST_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"renja-sopdriver-test-key").digest())


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _akhir(c: Cycle) -> tuple[int, str]:
    assert c.state.akhir_version is not None and c.state.akhir_sha256 is not None, "no Rancangan Akhir yet"
    return c.state.akhir_version, c.state.akhir_sha256


def arahan(c: Cycle) -> Command:
    year = c.options.fiscal_year or 2100 - (c.renja_id.int % 90)
    identity = c.options.identity
    return IssueArahan(
        opd=c.options.opd if identity is None else identity.name,
        fiscal_year=year,
        text=f"Susun Renja {year} sesuai Renstra (uji)",
        opd_code=c.options.opd_code if identity is None else identity.code,
        opd_identity=identity,
    )


def instruksi(c: Cycle) -> Command:
    return IssueInstruksi(text="Siapkan penyusunan Renja (uji)")


def perintah(c: Cycle) -> Command:
    return IssuePerintah(text="Kumpulkan data dari Sekretariat dan Bidang (uji)")


def collected(c: Cycle) -> Command:
    o = c.options
    return CompleteDataCollection(
        units=tuple(
            UnitDelivery(
                unit=u, rows=o.rows_per_unit, rows_sha256=_sha(f"{c.renja_id}:{u}"), pagu_total=o.pagu_per_unit
            )
            for u in (unit.code for unit in cycle_units(c.state, c.sop))
        )
    )


def awal(c: Cycle) -> Command:
    version, units = c.state.next_draft_version(), len(c.sop.units)
    return CreateRancanganAwal(
        version=version,
        content_sha256=_sha(f"{c.renja_id}:draft:{version}"),
        rows=c.options.rows_per_unit * units,
        pagu_total=c.options.pagu_per_unit * units,
        blocking_findings=c.options.awal_blocking_findings,
    )


def meeting(c: Cycle) -> Command:
    s = c.state
    assert s.awal_version is not None and s.awal_sha256 is not None and s.awal_created_at is not None
    meeting_id = uuid5(c.renja_id, "meeting")
    staf = PEOPLE["staf"]
    return RecordMeeting(
        meeting_id=meeting_id,
        draft_version=s.awal_version,
        draft_sha256=s.awal_sha256,
        held_at=s.awal_created_at,  # the earliest moment the decider accepts: a meeting cannot predate its draft
        place="Ruang Rapat (uji)",
        attendees=(Attendee(name=staf.name, nip=staf.nip, unit="Sekretariat"),),
        points=("Pembahasan Rancangan Awal",),
        notulen_sha256=_sha(f"{meeting_id}:notulen"),
    )


def akhir_draft(c: Cycle) -> Command:
    s, o = c.state, c.options
    assert s.meeting_id is not None and s.notulen_sha256 is not None and s.awal_version is not None
    version, units = s.next_draft_version(), len(c.sop.units)
    return CreateRancanganAkhir(
        version=version,
        content_sha256=_sha(f"{c.renja_id}:draft:{version}"),
        based_on_version=s.akhir_version or s.awal_version,
        meeting_id=s.meeting_id,
        notulen_sha256=s.notulen_sha256,
        rows=o.rows_per_unit * units,
        pagu_total=o.pagu_per_unit * units,
        blocking_findings=o.akhir_blocking_findings,
        warning_findings=o.akhir_warning_findings,
    )


def initial(step: int) -> Callable[[Cycle], Command]:
    def command(c: Cycle) -> Command:
        version, sha = _akhir(c)
        return Initial(step=step, version=version, content_sha256=sha)  # type: ignore[arg-type]

    return command


def sign(c: Cycle) -> Command:
    version, sha = _akhir(c)
    public = _TEST_SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return Sign(
        version=version,
        content_sha256=sha,
        key_id=TEST_KEY_ID,
        public_key_b64=base64.b64encode(public).decode(),
        signature_b64=base64.b64encode(_TEST_SIGNING_KEY.sign(sha.encode())).decode(),
    )


def distribute(c: Cycle) -> Command:
    s = c.state
    assert s.signed_version is not None and s.signed_sha256 is not None, "not signed yet"
    return Distribute(
        distribution_id=uuid5(c.renja_id, "distribution"),
        version=s.signed_version,
        content_sha256=s.signed_sha256,
        archive_ref=f"ARSIP/RENJA/{s.fiscal_year}/{str(c.renja_id)[:8]}",
        recipients=cycle_distribution(c.state, c.sop),
    )


def return_at(step: int) -> Callable[[Cycle], Command]:
    def command(c: Cycle) -> Command:
        version, sha = _akhir(c)
        return ReturnDraft(at_step=step, version=version, content_sha256=sha, notes=f"Perbaiki (langkah {step})")  # type: ignore[arg-type]

    return command


def cancel(c: Cycle) -> Command:
    return CancelRenja(reason=f"Dibatalkan sebelum langkah {c.state.due_step} (uji)")


def receipt(c: Cycle) -> Command:
    s = c.state
    assert s.distribution_id is not None, "not distributed yet"
    (recipient, *_) = [r for r in s.recipients if r not in s.receipts]
    return RecordReceipt(distribution_id=s.distribution_id, recipient=recipient, received_at=c.clock)
