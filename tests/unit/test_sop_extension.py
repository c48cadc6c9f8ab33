"""A new step of an existing kind is a change to the SOP file only: a copy of ``shared/sop.yaml`` with a
third paraf (by staf, before the head signs) loads, and a whole cycle runs through ``decide``/``evolve``
with the new step required in its place — no code changes, the numbers and roles come from the file."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid5

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.events import Actor, Attendee, Event, Role, UnitDelivery
from shared.sop import (
    BlockingFindings,
    Command,
    CommandContext,
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    Distribute,
    DomainError,
    Initial,
    InvalidCommand,
    IssueArahan,
    IssueInstruksi,
    IssuePerintah,
    OutOfOrder,
    RecordMeeting,
    RenjaState,
    ReturnDraft,
    Sign,
    SopDefinition,
    SopFileError,
    WrongRole,
    command_step,
    decide,
    evolve,
    fold,
    load_sop,
)

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[2] / "shared" / "sop.yaml"
THIRD_PARAF = """\
  - number: 10
    name: Memeriksa lampiran dan paraf Rancangan Akhir
    activity: >-
      Memeriksa kelengkapan lampiran dan paraf Rancangan Akhir Renja sebelum ditandatangani Kepala Badan
    gloss: Staff check the annexes and initial the final draft before the head signs
    role: staf
    input: Rancangan Akhir Renja
    output: Rancangan Akhir Renja (paraf)
    standard_minutes: 15
    completed_by: {event_type: renja.Initialed.v1, match: {step: 10}}
"""

RENJA = UUID("2b1d7e4c-8f3a-4c1e-9d5b-6a7f8e9d0c1b")
MEETING = UUID("7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d")
DIST = UUID("3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f")
T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ROLES: tuple[Role, ...] = ("kepala_badan", "sekretaris", "kasubag_pp", "staf")
PEOPLE: dict[Role, Actor] = {
    role: Actor(user_id=f"u-{role}", name=role, nip=f"{index:018d}", role=role) for index, role in enumerate(ROLES, 1)
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def twelve_step_file(tmp_path: Path, extra: str = THIRD_PARAF) -> Path:
    """The shipped file with ``extra`` inserted before the signature, which becomes step 11, and the
    distribution 12 (the record produced by the signature follows it)."""
    text = SHIPPED.read_text(encoding="utf-8")
    text = text.replace("  - number: 11\n", "  - number: 12\n").replace("  - number: 10\n", "  - number: 11\n")
    text = text.replace(
        "  - code: renja\n    name: Rencana Kerja (Renja)\n    step: 10\n",
        "  - code: renja\n    name: Rencana Kerja (Renja)\n    step: 11\n",
    )
    signature = text.index("  - number: 11\n")
    path = tmp_path / "sop.yaml"
    path.write_text(text[:signature] + extra + text[signature:], encoding="utf-8")
    return path


@pytest.fixture
def sop(tmp_path: Path) -> SopDefinition:
    return load_sop(twelve_step_file(tmp_path))


class Cycle:
    """One Renja driven through ``decide`` and ``evolve``, both given the twelve-step SOP."""

    def __init__(self, sop: SopDefinition) -> None:
        self.sop = sop
        self.state = RenjaState()
        self.events: list[Event] = []

    def ctx(self, role: Role) -> CommandContext:
        n = len(self.events)
        return CommandContext(
            renja_id=RENJA,
            actor=PEOPLE[role],
            source="approvals",
            event_id=uuid5(RENJA, f"event-{n}"),
            correlation_id=RENJA,
            now=T0 + timedelta(minutes=10 * n),
        )

    def do(self, role: Role, command: Command) -> Event:
        (event,) = decide(self.state, command, self.ctx(role), self.sop)
        self.state = evolve(self.state, event, self.sop)
        self.events.append(event)
        return event

    def refuse(self, role: Role, command: Command) -> DomainError:
        with pytest.raises(DomainError) as info:
            decide(self.state, command, self.ctx(role), self.sop)
        return info.value


def akhir(version: int) -> CreateRancanganAkhir:
    return CreateRancanganAkhir(
        version=version,
        content_sha256=sha(f"akhir-{version}"),
        based_on_version=1,
        meeting_id=MEETING,
        notulen_sha256=sha("notulen"),
        rows=15,
        pagu_total=5_000_000,
    )


def paraf(step: int, version: int) -> Initial:
    return Initial(step=step, version=version, content_sha256=sha(f"akhir-{version}"))


def signature(version: int) -> Sign:
    content = sha(f"akhir-{version}")
    return Sign(
        version=version,
        content_sha256=content,
        key_id="kepala-2027",
        public_key_b64=base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode(),
        signature_b64=base64.b64encode(KEY.sign(content.encode())).decode(),
    )


def up_to_the_parafs(sop: SopDefinition) -> Cycle:
    """Steps 1-7 done (the Rancangan Akhir is version 2)."""
    cycle = Cycle(sop)
    cycle.do("kepala_badan", IssueArahan(opd="Bappeda", fiscal_year=2027, text="Susun Renja 2027"))
    cycle.do("sekretaris", IssueInstruksi(text="Kasubag, siapkan Renja"))
    cycle.do("kasubag_pp", IssuePerintah(text="Staf, kumpulkan data"))
    units = tuple(UnitDelivery(unit=c, rows=3, rows_sha256=sha(c), pagu_total=1_000_000) for c in sop.unit_codes)
    cycle.do("staf", CompleteDataCollection(units=units))
    cycle.do("staf", CreateRancanganAwal(version=1, content_sha256=sha("awal-1"), rows=15, pagu_total=5_000_000))
    attendees = (Attendee(name="Kepala Bidang SOSBUDPEM", unit="SOSBUDPEM"),)
    meeting = RecordMeeting(
        meeting_id=MEETING,
        draft_version=1,
        draft_sha256=sha("awal-1"),
        held_at=T0 + timedelta(minutes=45),
        attendees=attendees,
        notulen_sha256=sha("notulen"),
    )
    cycle.do("staf", meeting)
    cycle.do("staf", akhir(2))
    return cycle


def test_the_copy_loads_with_the_new_paraf_in_its_place(sop: SopDefinition) -> None:
    assert [s.number for s in sop.steps] == list(range(1, 13))
    assert [s.kind for s in sop.steps[6:]] == [
        "rancangan_akhir",
        "paraf",
        "paraf",
        "paraf",
        "signature",
        "distribution",
    ]
    assert sop.step(10).role == "staf"
    assert sop.plan.paraf_steps == (8, 9, 10)
    assert sop.plan.review_steps == {8, 9, 10, 11}
    assert command_step(signature(2), sop) == 11
    assert sop.total_standard_minutes == 1365 + 15


def test_a_whole_cycle_runs_with_the_third_paraf_required_before_the_signature(sop: SopDefinition) -> None:
    cycle = up_to_the_parafs(sop)
    cycle.do("kasubag_pp", paraf(8, 2))
    cycle.do("sekretaris", paraf(9, 2))
    assert cycle.state.due_step == 10

    refused = cycle.refuse("kepala_badan", signature(2))
    assert isinstance(refused, OutOfOrder)
    assert refused.message == (
        "Step 11 (Menandatangani Rancangan Akhir) is not due: Step 10 (Memeriksa lampiran dan paraf Rancangan "
        "Akhir) is due, by staf; you are kepala_badan."
    )
    assert (refused.due_step, refused.due_role) == (10, "staf")
    assert isinstance(cycle.refuse("sekretaris", paraf(10, 2)), WrongRole)

    cycle.do("staf", paraf(10, 2))
    assert cycle.state.parafs == (8, 9, 10)
    cycle.do("kepala_badan", signature(2))
    recipients = tuple(r.to_event_recipient() for r in sop.distribution)
    distribute = Distribute(
        distribution_id=DIST,
        version=2,
        content_sha256=sha("akhir-2"),
        archive_ref="ARSIP/RENJA/2027/001",
        recipients=recipients,
    )
    assert isinstance(cycle.refuse("kepala_badan", distribute), WrongRole)
    cycle.do("staf", distribute)

    assert cycle.state.status == "distributed"
    assert cycle.state.completed_steps == tuple(range(1, 13))
    assert cycle.state.due_step is None
    assert [getattr(sop.step_for_event(e), "number", None) for e in cycle.events] == list(range(1, 13))
    assert [e.actor.role for e in cycle.events] == [s.role for s in sop.steps]
    assert fold(cycle.events, sop=sop) == cycle.state


def test_a_return_at_the_new_paraf_undoes_every_review_step(sop: SopDefinition) -> None:
    cycle = up_to_the_parafs(sop)
    cycle.do("kasubag_pp", paraf(8, 2))
    cycle.do("sekretaris", paraf(9, 2))
    cycle.do("staf", ReturnDraft(at_step=10, version=2, content_sha256=sha("akhir-2"), notes="Lampiran kurang"))
    assert cycle.state.completed_steps == (1, 2, 3, 4, 5, 6)
    assert (cycle.state.due_step, cycle.state.parafs) == (7, ())

    cycle.do("staf", akhir(3))
    assert cycle.state.due_step == 8
    assert isinstance(cycle.refuse("staf", paraf(10, 3)), OutOfOrder)  # its role, but not its turn yet
    cycle.do("kasubag_pp", paraf(8, 3))
    cycle.do("sekretaris", paraf(9, 3))
    cycle.do("staf", paraf(10, 3))
    assert cycle.state.due_step == 11


def test_a_paraf_or_return_naming_a_step_of_another_kind_is_refused(sop: SopDefinition) -> None:
    cycle = up_to_the_parafs(sop)
    cycle.do("kasubag_pp", paraf(8, 2))
    wrong_paraf = cycle.refuse("kepala_badan", paraf(11, 2))
    assert isinstance(wrong_paraf, InvalidCommand)
    assert wrong_paraf.message == "Step 11 is not a paraf step (steps 8, 9 and 10)."
    wrong_return = cycle.refuse("staf", ReturnDraft(at_step=7, version=2, content_sha256=sha("akhir-2"), notes="x"))
    assert isinstance(wrong_return, InvalidCommand)
    assert wrong_return.message == "Step 7 is not a review step (steps 8, 9, 10 and 11)."


def test_blocking_findings_still_stop_the_first_paraf(sop: SopDefinition) -> None:
    cycle = up_to_the_parafs(sop)
    cycle.do("kasubag_pp", ReturnDraft(at_step=8, version=2, content_sha256=sha("akhir-2"), notes="x"))
    blocked = akhir(3).model_copy(update={"blocking_findings": 2})
    cycle.do("staf", blocked)
    refused = cycle.refuse("kasubag_pp", paraf(8, 3))
    assert isinstance(refused, BlockingFindings)
    assert "return it to step 7 for correction" in refused.message


def test_a_paraf_naming_another_step_is_refused_at_its_line(tmp_path: Path) -> None:
    path = twelve_step_file(tmp_path, THIRD_PARAF.replace("match: {step: 10}", "match: {step: 9}"))
    lines = path.read_text(encoding="utf-8").splitlines()
    new_step = lines.index("  - number: 10")
    line = next(i for i in range(new_step, len(lines)) if "match: {step: 9}" in lines[i]) + 1
    with pytest.raises(SopFileError) as info:
        load_sop(path)
    assert info.value.line == line
    assert "step 10 must be completed by renja.Initialed.v1 with match {'step': 10} or renja.Signed.v1" in str(
        info.value
    )


def test_a_second_step_of_a_kind_that_does_not_repeat_is_refused(tmp_path: Path) -> None:
    meeting_again = THIRD_PARAF.replace(
        "{event_type: renja.Initialed.v1, match: {step: 10}}", "{event_type: renja.MeetingHeld.v1}"
    )
    with pytest.raises(SopFileError) as info:
        load_sop(twelve_step_file(tmp_path, meeting_again))
    assert "step 10 must be completed by renja.Initialed.v1 with match {'step': 10} or renja.Signed.v1" in str(
        info.value
    )
