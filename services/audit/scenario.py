"""Decider-valid synthetic Renja cycles, for the audit's tests, benchmark and demo.

Every event is produced by ``shared.sop.decide`` on the folded state (so it is exactly what the
services would emit), with ids and clock passed in: ``uuid5(renja_id, "event-<n>")`` and ``start`` plus
``gap`` per event. The actors are fictitious (NIP-shaped numbers that belong to nobody).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID, uuid5

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.events import Actor, Attendee, Event, Role, ServiceName, UnitDelivery
from shared.sop import (
    CancelRenja,
    Command,
    CommandContext,
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
    RenjaState,
    ReturnDraft,
    Sign,
    SopDefinition,
    decide,
    evolve,
)

ACTORS: dict[Role, Actor] = {
    "kepala_badan": Actor(
        user_id="kb", name="Dr. Hendra Gunawan (fiktif)", nip="197501012000031001", role="kepala_badan"
    ),
    "sekretaris": Actor(user_id="se", name="Ir. Ratna Sari Dewi (fiktif)", nip="197803152003122002", role="sekretaris"),
    "kasubag_pp": Actor(user_id="ks", name="Agus Prasetyo (fiktif)", nip="198206202008011003", role="kasubag_pp"),
    "staf": Actor(user_id="st", name="Dewi Lestari (fiktif)", nip="199001102015032004", role="staf"),
}

SOURCE: dict[type, ServiceName] = {
    IssueArahan: "directive",
    IssueInstruksi: "directive",
    IssuePerintah: "directive",
    CancelRenja: "directive",
    CompleteDataCollection: "documents",
    CreateRancanganAwal: "documents",
    CreateRancanganAkhir: "documents",
    RecordMeeting: "meetings",
    Initial: "approvals",
    Sign: "approvals",
    ReturnDraft: "approvals",
    Distribute: "notifier",
    RecordReceipt: "notifier",
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cycle_events(
    sop: SopDefinition,
    renja_id: UUID,
    *,
    start: datetime,
    gap: timedelta = timedelta(minutes=40),
    opd: str = "Bappeda Kota Bogor",
    fiscal_year: int = 2027,
    returns: Sequence[int] = (),
    cancel_before_step: int | None = None,
    receipts: int = 1,
    signing_key: Ed25519PrivateKey | None = None,
) -> list[Event]:
    """The events of one cycle, in log order.

    ``returns``: the review steps (8, 9 or 10) at which the final draft is returned, one return each, in
    order (each return is followed by a new Rancangan Akhir and the reviews again from step 8).
    ``cancel_before_step``: the head cancels just before this step (2..11); nothing follows.
    ``receipts``: proofs of receipt recorded after distribution (at most the number of recipients).
    ``start`` must be aware (UTC). Raises ``shared.sop.DomainError`` if the script breaks a rule.
    """
    key = signing_key or Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"scenario-head").digest())
    public_b64 = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    state = RenjaState()
    events: list[Event] = []

    def do(role: Role, command: Command) -> None:
        nonlocal state
        n = len(events)
        ctx = CommandContext(
            renja_id=renja_id,
            actor=ACTORS[role],
            source=SOURCE[type(command)],
            event_id=uuid5(renja_id, f"event-{n}"),
            correlation_id=renja_id,
            causation_id=events[-1].event_id if events else None,
            now=start + gap * n,
        )
        for event in decide(state, command, ctx, sop):
            state = evolve(state, event)
            events.append(event)

    def cancelled(step: int) -> bool:
        if cancel_before_step == step:
            do("kepala_badan", CancelRenja(reason=f"Dibatalkan sebelum langkah {step} (skenario)"))
            return True
        return False

    meeting = uuid5(renja_id, "meeting")
    do("kepala_badan", IssueArahan(opd=opd, fiscal_year=fiscal_year, text=f"Susun Renja {fiscal_year}"))
    for step, role, command in (
        (2, "sekretaris", IssueInstruksi(text="Kasubag PP, siapkan Renja")),
        (3, "kasubag_pp", IssuePerintah(text="Staf, kumpulkan data dari Sekretariat dan Bidang")),
        (
            4,
            "staf",
            CompleteDataCollection(
                units=tuple(
                    UnitDelivery(unit=u, rows=3, rows_sha256=_sha(u), pagu_total=1_000_000) for u in sop.unit_codes
                )
            ),
        ),
        (5, "staf", CreateRancanganAwal(version=1, content_sha256=_sha("awal-1"), rows=15, pagu_total=5_000_000)),
        (
            6,
            "staf",
            RecordMeeting(
                meeting_id=meeting,
                draft_version=1,
                draft_sha256=_sha("awal-1"),
                # Events of steps 1-5 are indices 0-4: the meeting is held when the awal was created, the
                # earliest moment the decider accepts (a meeting cannot predate the draft it discusses).
                held_at=start + gap * 4,
                attendees=(Attendee(name="Kepala Bidang (fiktif)", unit="SET"),),
                notulen_sha256=_sha("notulen"),
            ),
        ),
    ):
        if cancelled(step):
            return events
        do(role, command)  # type: ignore[arg-type]
    version = 1
    pending_returns = list(returns)
    while True:
        if cancelled(7):
            return events
        version += 1
        sha = _sha(f"akhir-{version}")
        do(
            "staf",
            CreateRancanganAkhir(
                version=version,
                content_sha256=sha,
                based_on_version=version - 1,
                meeting_id=meeting,
                notulen_sha256=_sha("notulen"),
                rows=15,
                pagu_total=5_000_000,
            ),
        )
        returned = False
        reviews: tuple[tuple[Literal[8, 9, 10], Role], ...] = (
            (8, "kasubag_pp"),
            (9, "sekretaris"),
            (10, "kepala_badan"),
        )
        for step, role in reviews:
            if cancelled(step):
                return events
            if pending_returns and pending_returns[0] == step:
                pending_returns.pop(0)
                do(
                    role,
                    ReturnDraft(at_step=step, version=version, content_sha256=sha, notes=f"Perbaiki (langkah {step})"),
                )
                returned = True
                break
            if step == 10:
                signature = base64.b64encode(key.sign(sha.encode())).decode()
                do(
                    role,
                    Sign(
                        version=version,
                        content_sha256=sha,
                        key_id="kepala",
                        public_key_b64=public_b64,
                        signature_b64=signature,
                    ),
                )
            else:
                do(role, Initial(step=step, version=version, content_sha256=sha))
        if not returned:
            break
    if cancelled(11):
        return events
    distribution = uuid5(renja_id, "distribution")
    recipients = tuple(r.to_event_recipient() for r in sop.distribution)
    do(
        "staf",
        Distribute(
            distribution_id=distribution,
            version=version,
            content_sha256=_sha(f"akhir-{version}"),
            archive_ref=f"ARSIP/RENJA/{fiscal_year}/{str(renja_id)[:8]}",
            recipients=recipients,
        ),
    )
    for recipient in recipients[:receipts]:
        do(
            "staf",
            RecordReceipt(
                distribution_id=distribution, recipient=recipient.name, received_at=start + gap * len(events)
            ),
        )
    return events
