"""Properties of the decider under random command sequences by random roles.

A sequence mixes *guided* commands (the right command for the due step, by its role, naming the current
version and hash — sometimes a return or a draft with blocking findings) with *random* ones (any kind,
any role, versions and hashes sometimes right and sometimes stale). After every accepted command the
whole log is checked against the SOP's invariants by ``check_history``, which re-derives them from the
events alone (it does not use ``RenjaState``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.events import (
    Actor,
    Attendee,
    DataCollected,
    DirectiveIssued,
    Distributed,
    DraftCreated,
    DraftReturned,
    Event,
    Initialed,
    MeetingHeld,
    ReceiptRecorded,
    RenjaCancelled,
    Role,
    Signed,
    UnitDelivery,
)
from shared.sop import (
    CancelRenja,
    Command,
    CommandContext,
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    Distribute,
    DomainError,
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
    fold,
    load_sop,
)

pytestmark = pytest.mark.unit

SOP = load_sop()
RENJA = UUID("3c1d9e2f-4b5a-4c6d-8e7f-9a0b1c2d3e4f")
MEETING = UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
DIST = UUID("b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e")
T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
PUBLIC_B64 = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
ROLES: tuple[Role, ...] = ("kepala_badan", "sekretaris", "kasubag_pp", "staf", "auditor", "system")
ACTORS: dict[Role, Actor] = {
    role: Actor(user_id=f"u-{role}", name=role, nip="-" if role == "system" else f"{i + 1:018d}", role=role)
    for i, role in enumerate(ROLES)
}
RECIPIENTS = tuple(r.name for r in SOP.distribution)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def signed(version: int, content_sha256: str) -> Sign:
    return Sign(
        version=version,
        content_sha256=content_sha256,
        key_id="k1",
        public_key_b64=PUBLIC_B64,
        signature_b64=base64.b64encode(KEY.sign(content_sha256.encode())).decode(),
    )


# --- building commands -------------------------------------------------------------------------------


def deliveries() -> tuple[UnitDelivery, ...]:
    return tuple(UnitDelivery(unit=c, rows=2, rows_sha256=sha(c), pagu_total=500_000) for c in SOP.unit_codes)


def meeting(version: int, content: str, state: RenjaState) -> RecordMeeting:
    """A meeting held when the Rancangan Awal was created (the earliest plausible moment)."""
    return RecordMeeting(
        meeting_id=MEETING,
        draft_version=version,
        draft_sha256=content,
        held_at=state.awal_created_at or T0,
        attendees=(Attendee(name="Peserta"),),
        notulen_sha256=sha("notulen"),
    )


def akhir(version: int, based_on: int, blocking: int = 0) -> CreateRancanganAkhir:
    return CreateRancanganAkhir(
        version=version,
        content_sha256=sha(f"draft-{version}"),
        based_on_version=based_on,
        meeting_id=MEETING,
        notulen_sha256=sha("notulen"),
        rows=10,
        pagu_total=2_500_000,
        blocking_findings=blocking,
    )


def distribute(version: int, content: str) -> Distribute:
    return Distribute(
        distribution_id=DIST,
        version=version,
        content_sha256=content,
        archive_ref="ARSIP/1",
        recipients=tuple(r.to_event_recipient() for r in SOP.distribution),
    )


def receipt(name: str, state: RenjaState) -> RecordReceipt:
    """A receipt at the moment of distribution (the earliest plausible moment)."""
    return RecordReceipt(distribution_id=DIST, recipient=name, received_at=state.distributed_at or T0)


def step_command(number: int, state: RenjaState, blocking: int = 0) -> Command:
    """The right command for step ``number`` in ``state``, naming the current versions and hashes."""
    nxt = state.next_draft_version()
    av, ah = state.akhir_version or 1, state.akhir_sha256 or sha("none")
    by_step: dict[int, Callable[[], Command]] = {
        1: lambda: IssueArahan(opd="Bappeda", fiscal_year=2027, text="Arahan"),
        2: lambda: IssueInstruksi(text="Instruksi"),
        3: lambda: IssuePerintah(text="Perintah"),
        4: lambda: CompleteDataCollection(units=deliveries()),
        5: lambda: CreateRancanganAwal(version=nxt, content_sha256=sha(f"draft-{nxt}"), rows=10, pagu_total=1),
        6: lambda: meeting(state.awal_version or 1, state.awal_sha256 or sha("none"), state),
        7: lambda: akhir(nxt, max(1, nxt - 1), blocking=blocking),
        8: lambda: Initial(step=8, version=av, content_sha256=ah),
        9: lambda: Initial(step=9, version=av, content_sha256=ah),
        10: lambda: signed(av, ah),
        11: lambda: distribute(state.signed_version or av, state.signed_sha256 or ah),
    }
    return by_step[number]()


@st.composite
def guided(draw: st.DrawFn, state: RenjaState) -> tuple[Role, Command]:
    """The right command for the due step, by the step's role; sometimes a return at steps 8-10
    (always considered when the Rancangan Akhir has blocking findings)."""
    if state.status == "distributed":
        return "system", receipt(draw(st.sampled_from(RECIPIENTS)), state)
    due = state.due_step or 1
    role = SOP.step(due).role
    returning = draw(st.integers(0, 9)) == 0 or (due == 8 and state.akhir_blocking_findings and draw(st.booleans()))
    if due in (8, 9, 10) and returning:
        av, ah = state.akhir_version or 1, state.akhir_sha256 or sha("none")
        return role, ReturnDraft(at_step=due, version=av, content_sha256=ah, notes="Perbaiki")  # type: ignore[arg-type]
    blocking = draw(st.sampled_from([0, 0, 0, 0, 1])) if due == 7 else 0
    return role, step_command(due, state, blocking)


@st.composite
def random_command(draw: st.DrawFn, state: RenjaState) -> tuple[Role, Command]:
    """Any command kind by any role; versions and hashes sometimes current, sometimes stale."""
    role = draw(st.sampled_from(ROLES))
    current = state.akhir_version or 1
    version = draw(st.sampled_from([current, current, current + 1, max(1, current - 1), state.next_draft_version()]))
    content = draw(
        st.sampled_from([state.akhir_sha256 or sha("none"), sha(f"draft-{version}"), sha("stale"), sha("draft-1")])
    )
    kind = draw(st.integers(0, 12))
    commands: list[Command] = [
        IssueArahan(opd="Bappeda", fiscal_year=2027, text="Arahan"),
        IssueInstruksi(text="Instruksi"),
        IssuePerintah(text="Perintah"),
        CompleteDataCollection(units=deliveries()[: draw(st.integers(1, len(SOP.units)))]),
        CreateRancanganAwal(version=version, content_sha256=content, rows=1, pagu_total=1),
        meeting(version, content, state),
        akhir(version, draw(st.integers(1, 4)), blocking=draw(st.integers(0, 1))),
        Initial(step=draw(st.sampled_from([8, 9])), version=version, content_sha256=content),
        signed(version, content),
        ReturnDraft(at_step=draw(st.sampled_from([8, 9, 10])), version=version, content_sha256=content, notes="x"),
        CancelRenja(reason="Dibatalkan"),
        distribute(version, content),
        receipt(draw(st.sampled_from((*RECIPIENTS, "Dinas Lain"))), state),
    ]
    return role, commands[kind]


@st.composite
def near_miss(draw: st.DrawFn, state: RenjaState) -> tuple[Role, Command]:
    """The guided command with one thing wrong: the role, the version, the hash, or the turn."""
    role, command = draw(guided(state))
    fields = type(command).model_fields
    flaw = draw(st.sampled_from(["role", "version", "hash", "ahead", "early"]))
    due = state.due_step or 1
    if flaw == "ahead" and due < 11:
        # a later step by its own role, with the right versions: only the turn is wrong
        later = draw(st.integers(due + 1, 11))
        return SOP.step(later).role, step_command(later, state)
    if flaw == "role":
        return draw(st.sampled_from([r for r in ROLES if r != role])), command
    if flaw == "early" and isinstance(command, RecordMeeting) and state.awal_created_at is not None:
        early = state.awal_created_at - timedelta(minutes=draw(st.integers(1, 60 * 24 * 400)))
        return role, command.model_copy(update={"held_at": early})
    if flaw == "early" and isinstance(command, RecordReceipt) and state.distributed_at is not None:
        return role, command.model_copy(update={"received_at": state.distributed_at - timedelta(seconds=1)})
    if flaw == "version" and "version" in fields:
        version = command.version  # type: ignore[union-attr]
        return role, command.model_copy(update={"version": draw(st.sampled_from([version + 1, max(1, version - 1)]))})
    if flaw == "version" and "draft_version" in fields:
        return role, command.model_copy(update={"draft_version": command.draft_version + 1})  # type: ignore[union-attr]
    if flaw == "hash" and "content_sha256" in fields:
        return role, command.model_copy(update={"content_sha256": sha(draw(st.sampled_from(["stale", "draft-1"])))})
    if flaw == "hash" and "draft_sha256" in fields:
        return role, command.model_copy(update={"draft_sha256": sha("stale")})
    return role, command


@st.composite
def next_command(draw: st.DrawFn, state: RenjaState) -> tuple[Role, Command]:
    """Guided 60%, near miss 25%, anything 14%, the head cancels 1%: reaches step 11 in most sequences
    and still probes every refusal."""
    pick = draw(st.integers(0, 99))
    if pick < 60:
        return draw(guided(state))
    if pick < 85:
        return draw(near_miss(state))
    if pick < 99:
        return draw(random_command(state))
    return "kepala_badan", CancelRenja(reason="Pagu indikatif berubah")


# --- the invariants, from the events alone -----------------------------------------------------------


def check_history(events: list[Event], sop: SopDefinition) -> None:
    """Assert the SOP's invariants over a log ``decide`` produced (independent of ``RenjaState``)."""
    levels: set[str] = set()
    collected = False
    awal: dict[int, str] = {}
    awal_at: datetime | None = None
    distributed_at: datetime | None = None
    met = False
    akhir_versions: dict[int, str] = {}
    current_akhir: tuple[int, str] | None = None
    blocking = 0
    parafs: set[int] = set()
    signature: tuple[int, str] | None = None
    closed: str | None = None
    recipients: set[str] = set()
    receipts: set[str] = set()
    last_version = 0
    for e in events:
        if closed is not None:
            assert isinstance(e, ReceiptRecorded), f"{type(e).__name__} after the Renja was {closed}"
            assert closed == "distributed"
        step = sop.step_for_event(e)
        if step is not None:
            assert e.actor.role == step.role, f"step {step.number} done by {e.actor.role}"
        if isinstance(e, DirectiveIssued):
            needed = {"arahan": None, "instruksi": "arahan", "perintah": "instruksi"}[e.level]
            assert needed is None or needed in levels
            assert e.level not in levels
            levels.add(e.level)
        elif isinstance(e, DataCollected):
            assert "perintah" in levels and not collected
            assert {u.unit for u in e.units} == set(sop.unit_codes)
            collected = True
        elif isinstance(e, DraftCreated):
            assert e.version == last_version + 1
            last_version = e.version
            if e.stage == "awal":
                assert collected and not awal
                awal[e.version] = e.content_sha256
                awal_at = e.occurred_at
            else:
                assert met and e.meeting_id == MEETING
                assert current_akhir is None, "a new Rancangan Akhir only first or after a return"
                akhir_versions[e.version] = e.content_sha256
                current_akhir = (e.version, e.content_sha256)
                blocking = e.blocking_findings
                parafs = set()
                signature = None
        elif isinstance(e, MeetingHeld):
            assert awal.get(e.draft_version) == e.draft_sha256 and not met
            assert awal_at is not None and awal_at <= e.held_at <= e.occurred_at, "meeting before its awal or ahead"
            met = True
        elif isinstance(e, Initialed):
            assert akhir_versions.get(e.version) == e.content_sha256
            assert current_akhir == (e.version, e.content_sha256)
            assert e.step not in parafs
            if e.step == 8:
                assert blocking == 0, "paraf at step 8 despite blocking findings"
            if e.step == 9:
                assert 8 in parafs
            parafs.add(e.step)
        elif isinstance(e, Signed):
            assert current_akhir == (e.version, e.content_sha256)
            assert parafs == {8, 9}, "signed without both parafs on this version since it was created"
            signature = (e.version, e.content_sha256)
        elif isinstance(e, DraftReturned):
            assert current_akhir == (e.version, e.content_sha256)
            assert e.actor.role == sop.step(e.at_step).role
            assert signature is None
            current_akhir = None
            parafs = set()
        elif isinstance(e, RenjaCancelled):
            assert e.actor.role == "kepala_badan" and levels
            closed = "cancelled"
        elif isinstance(e, Distributed):
            assert signature == (e.version, e.content_sha256)
            recipients = {r.name for r in e.recipients}
            closed = "distributed"
            distributed_at = e.occurred_at
        elif isinstance(e, ReceiptRecorded):
            assert e.recipient in recipients and e.recipient not in receipts
            assert distributed_at is not None and e.received_at >= distributed_at, "receipt before distribution"
            assert e.actor.role in ("staf", "system")
            receipts.add(e.recipient)


# --- playing a sequence ------------------------------------------------------------------------------


def play(data: st.DataObject, length: int) -> tuple[RenjaState, list[Event]]:
    """Draw and decide ``length`` commands, checking every invariant after each accepted one."""
    state = RenjaState()
    events: list[Event] = []
    for attempt in range(length):
        role, command = data.draw(next_command(state))
        ctx = CommandContext(
            renja_id=RENJA,
            actor=ACTORS[role],
            source="approvals",
            event_id=uuid5(RENJA, str(attempt)),
            correlation_id=RENJA,
            now=T0 + timedelta(minutes=attempt),
        )
        try:
            new = decide(state, command, ctx, SOP)
        except DomainError as err:
            assert err.message and err.code
            continue
        prefix = list(events)
        for e in new:
            # evolve(fold(prefix), e) == fold(prefix + [e])
            state = evolve(state, e)
            events.append(e)
            assert state == fold(events)
        assert fold(prefix) == fold(prefix)
        assert state.events_applied == len(events)
        check_history(events, SOP)
    assert RenjaState.model_validate_json(state.model_dump_json()) == state
    return state, events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), length=st.integers(1, 70))
def test_invariants_hold_after_every_accepted_command(data: st.DataObject, length: int) -> None:
    state, events = play(data, length)
    event(f"status: {state.status}")
    if any(isinstance(e, DraftReturned) for e in events):
        event("returned at least once")


def test_the_generator_reaches_distribution_in_a_good_share_of_examples() -> None:
    outcomes: list[str] = []

    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        state, _ = play(data, 60)
        outcomes.append(state.status)

    run()
    reached = outcomes.count("distributed")
    assert reached >= len(outcomes) // 5, f"only {reached} of {len(outcomes)} runs reached step 11"
