"""The audit timeline: step durations in working minutes, return loops, cancellation, the HTML page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from services.audit.page import format_minutes, render_timeline_html
from services.audit.timeline import StepSpec, Timeline, build_timeline, steps_from_sop
from services.audit.workcalendar import WorkCalendar
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
    Recipient,
    RenjaCancelled,
    Signed,
    UnitDelivery,
)

pytestmark = pytest.mark.unit

WIB = ZoneInfo("Asia/Jakarta")
RENJA = UUID("00000000-0000-4000-8000-000000000001")
H = "a" * 64

HEAD = Actor(user_id="kb", name="Dr. Kepala Badan", nip="197001011990031001", role="kepala_badan")
SEC = Actor(user_id="se", name="Sekretaris Badan", nip="197502022000032002", role="sekretaris")
KASUBAG = Actor(user_id="ks", name="Kasubag PP", nip="198003032005011003", role="kasubag_pp")
STAFF = Actor(user_id="st", name="Staf Perencana", nip="199004042015022004", role="staf")

# The SOP table of DESIGN.md (kept here so this test does not depend on the shared SOP file).
STEPS = [
    StepSpec(1, "Mengarahkan Sekretaris", "kepala_badan", 15, "renja.DirectiveIssued.v1", {"level": "arahan"}),
    StepSpec(2, "Menginstruksikan Kasubag PP", "sekretaris", 15, "DirectiveIssued", {"level": "instruksi"}),
    StepSpec(3, "Memerintahkan staf", "kasubag_pp", 30, "DirectiveIssued", {"level": "perintah"}),
    StepSpec(4, "Mengambil data/berkas", "staf", 300, "DataCollected"),
    StepSpec(5, "Penyusunan Rancangan Awal", "staf", 300, "DraftCreated", {"stage": "awal"}),
    StepSpec(6, "Rapat konsultasi", "staf", 300, "MeetingHeld"),
    StepSpec(7, "Memperbaiki menjadi Rancangan Akhir", "staf", 300, "DraftCreated", {"stage": "akhir"}),
    StepSpec(8, "Paraf Kasubag", "kasubag_pp", 30, "Initialed", {"step": 8}),
    StepSpec(9, "Paraf Sekretaris", "sekretaris", 30, "Initialed", {"step": "9"}),
    StepSpec(10, "Menandatangani", "kepala_badan", 15, "Signed"),
    StepSpec(11, "Menggandakan dan menyampaikan", "staf", 30, "renja.Distributed.v1"),
]

_counter = 0


def wib(d: int, hh: int, mm: int = 0) -> datetime:
    """A time in August 2026, WIB (3 Aug is a Monday; no holiday that week)."""
    return datetime(2026, 8, d, hh, mm, tzinfo=WIB)


def common(actor: Actor, at: datetime, source: str) -> dict[str, Any]:
    global _counter
    _counter += 1
    return {
        "event_id": UUID(int=_counter),
        "renja_id": RENJA,
        "source": source,
        "actor": actor,
        "occurred_at": at,
        "correlation_id": RENJA,
    }


def directive(level: str, actor: Actor, at: datetime) -> DirectiveIssued:
    return DirectiveIssued(
        **common(actor, at, "directive"),
        level=level,  # type: ignore[arg-type]
        text=f"{level} penyusunan Renja 2027",
        addressee_role="sekretaris",
        opd="Bappeda Kota Bogor",
        fiscal_year=2027,
        opd_code=None,
    )


def data_collected(at: datetime) -> DataCollected:
    unit = UnitDelivery(unit="SET", rows=3, rows_sha256=H, pagu_total=1_000_000)
    return DataCollected(**common(STAFF, at, "documents"), units=(unit,), rows=3, pagu_total=1_000_000)


def draft(stage: str, version: int, at: datetime) -> DraftCreated:
    return DraftCreated(
        **common(STAFF, at, "documents"),
        stage=stage,  # type: ignore[arg-type]
        version=version,
        content_sha256=f"{version:x}" * 64,
        rows=3,
        pagu_total=1_000_000,
    )


def meeting(at: datetime) -> MeetingHeld:
    return MeetingHeld(
        **common(STAFF, at, "meetings"),
        meeting_id=UUID(int=999),
        draft_version=1,
        draft_sha256="1" * 64,
        held_at=at,
        attendees=(Attendee(name="Peserta"),),
        notulen_sha256=H,
    )


def initialed(step: int, actor: Actor, version: int, at: datetime) -> Initialed:
    return Initialed(
        **common(actor, at, "approvals"),
        step=step,  # type: ignore[arg-type]
        version=version,
        content_sha256=f"{version:x}" * 64,
    )


def returned(at_step: int, actor: Actor, version: int, at: datetime, notes: str) -> DraftReturned:
    return DraftReturned(
        **common(actor, at, "approvals"),
        at_step=at_step,  # type: ignore[arg-type]
        version=version,
        content_sha256=f"{version:x}" * 64,
        notes=notes,
    )


def signed(version: int, at: datetime) -> Signed:
    return Signed(
        **common(HEAD, at, "approvals"),
        version=version,
        content_sha256=f"{version:x}" * 64,
        key_id="k1",
        public_key_b64="cHVi",
        signature_b64="c2ln",
    )


def distributed(at: datetime) -> Distributed:
    return Distributed(
        **common(STAFF, at, "notifier"),
        distribution_id=UUID(int=777),
        version=3,
        content_sha256="3" * 64,
        archive_ref="ARSIP/2027/001",
        recipients=(Recipient(name="Bidang Sosbudpem"),),
    )


def receipt(at: datetime) -> ReceiptRecorded:
    return ReceiptRecorded(
        **common(STAFF, at, "notifier"),
        distribution_id=UUID(int=777),
        recipient="Bidang Sosbudpem",
        received_at=at,
    )


def full_cycle() -> list[Event]:
    """A whole cycle with one return at step 9. Expected working minutes (office 07:30-16:00, Fri -16:30):

    1  Mon 08:00 arahan                     0 (first step, by definition)
    2  Mon 08:10 instruksi                 10
    3  Mon 08:40 perintah                  30 (= standard, not overdue)
    4  Mon 15:00 data collected           380 (08:40-15:00)                   > 300 overdue
    5  Tue 10:00 Rancangan Awal v1        210 (Mon 15-16 = 60, Tue 07:30-10 = 150)
    6  Wed 10:00 meeting                  510 (Tue 10-16 = 360, Wed 07:30-10 = 150)  > 300 overdue
    7  Wed 13:00 Rancangan Akhir v2       180
    8  Wed 13:20 paraf kasubag v2          20
    -  Wed 13:50 returned at step 9         -
    7' Thu 08:00 Rancangan Akhir v3       160 (Wed 13:50-16 = 130, Thu 07:30-08 = 30)
    8' Thu 08:10 paraf kasubag v3          10
    9  Thu 08:30 paraf sekretaris v3       20
    10 Fri 08:00 signed v3                480 (Thu 08:30-16 = 450, Fri 07:30-08 = 30) > 15 overdue
    11 Fri 08:20 distributed               20
    -  Fri 10:00 receipt                    -
    """
    return [
        directive("arahan", HEAD, wib(3, 8)),
        directive("instruksi", SEC, wib(3, 8, 10)),
        directive("perintah", KASUBAG, wib(3, 8, 40)),
        data_collected(wib(3, 15)),
        draft("awal", 1, wib(4, 10)),
        meeting(wib(5, 10)),
        draft("akhir", 2, wib(5, 13)),
        initialed(8, KASUBAG, 2, wib(5, 13, 20)),
        returned(9, SEC, 2, wib(5, 13, 50), "Perbaiki pagu <b>Bidang</b> & indikator"),
        draft("akhir", 3, wib(6, 8)),
        initialed(8, KASUBAG, 3, wib(6, 8, 10)),
        initialed(9, SEC, 3, wib(6, 8, 30)),
        signed(3, wib(7, 8)),
        distributed(wib(7, 8, 20)),
        receipt(wib(7, 10)),
    ]


@pytest.fixture
def calendar() -> WorkCalendar:
    return WorkCalendar()


def durations(timeline: Timeline) -> list[tuple[int | None, float | None]]:
    return [(e.step_number, e.working_minutes) for e in timeline.step_entries]


def test_full_cycle_durations_with_a_return_loop(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar)
    assert durations(timeline) == [
        (1, 0.0),
        (2, 10.0),
        (3, 30.0),
        (4, 380.0),
        (5, 210.0),
        (6, 510.0),
        (7, 180.0),
        (8, 20.0),
        (7, 160.0),
        (8, 10.0),
        (9, 20.0),
        (10, 480.0),
        (11, 20.0),
    ]
    assert [e.step_number for e in timeline.step_entries if e.overdue] == [4, 6, 10]
    assert timeline.total_working_minutes == 2030.0
    assert timeline.total_standard_minutes == 1365
    assert timeline.overdue_count == 3


def test_full_cycle_status_and_metadata(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar)
    assert timeline.status == "distributed"
    assert timeline.current_step is None
    assert (timeline.renja_id, timeline.opd, timeline.fiscal_year) == (RENJA, "Bappeda Kota Bogor", 2027)
    assert [e.position for e in timeline.entries] == list(range(1, 16))


def test_return_event_enables_step_7_again_and_repeats_are_counted(calendar: WorkCalendar) -> None:
    events = full_cycle()
    timeline = build_timeline(events, STEPS, calendar)
    ret = timeline.entries[8]
    assert (ret.event_type, ret.step_number) == ("renja.DraftReturned.v1", None)
    assert "Dikembalikan pada langkah 9" in ret.note
    redo = timeline.entries[9]
    assert (redo.step_number, redo.attempt, redo.enabled_by) == (7, 2, str(events[8].event_id))
    assert redo.started_at == wib(5, 13, 50)
    assert [e.attempt for e in timeline.step_entries if e.step_number == 8] == [1, 2]


def test_entries_carry_actor_source_time_and_draft_version(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar)
    sign = next(e for e in timeline.entries if e.step_number == 10)
    assert (sign.actor.name, sign.actor.nip, sign.actor.role) == (HEAD.name, HEAD.nip, "kepala_badan")
    assert sign.source == "approvals"
    assert sign.occurred_at == datetime(2026, 8, 7, 1, 0, tzinfo=UTC)
    assert sign.occurred_at.utcoffset() is not None and sign.occurred_at.tzinfo == UTC
    assert (sign.draft_version, sign.content_sha256) == (3, "3" * 64)
    meet = next(e for e in timeline.entries if e.step_number == 6)
    assert (meet.draft_version, meet.content_sha256) == (1, "1" * 64)
    rec = timeline.entries[-1]
    assert (rec.step_number, rec.step_name, rec.note) == (None, None, "Diterima oleh Bidang Sosbudpem")


def test_as_of_cuts_the_log_and_measures_the_waiting_step(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar, as_of=wib(5, 13, 30))
    assert len(timeline.entries) == 8
    assert timeline.status == "in_progress"
    current = timeline.current_step
    assert current is not None
    assert (current.number, current.enabled_at, current.elapsed_minutes, current.overdue) == (
        9,
        wib(5, 13, 20),
        10.0,
        False,
    )


def test_as_of_after_a_return_waits_on_step_7_since_the_return(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar, as_of=wib(5, 15))
    current = timeline.current_step
    assert current is not None
    assert (current.number, current.enabled_at, current.elapsed_minutes) == (7, wib(5, 13, 50), 70.0)


def test_waiting_step_past_its_standard_is_overdue(calendar: WorkCalendar) -> None:
    # step 9 done Thu 08:30; at Thu 09:00 the head has waited 30 working minutes against 15
    timeline = build_timeline(full_cycle(), STEPS, calendar, as_of=wib(6, 9))
    current = timeline.current_step
    assert current is not None
    assert (current.number, current.elapsed_minutes, current.overdue) == (10, 30.0, True)


def test_as_of_before_everything_is_not_started(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar, as_of=wib(1, 8))
    assert (timeline.status, timeline.entries, timeline.renja_id) == ("not_started", (), RENJA)
    assert timeline.current_step is not None and timeline.current_step.number == 1


def test_cancelled_cycle(calendar: WorkCalendar) -> None:
    events = [*full_cycle()[:3], RenjaCancelled(**common(HEAD, wib(3, 9), "directive"), reason="Salah OPD")]
    timeline = build_timeline(events, STEPS, calendar)
    assert timeline.status == "cancelled"
    assert timeline.current_step is None
    last = timeline.entries[-1]
    assert (last.step_number, last.note) == (None, "Dibatalkan: Salah OPD")
    assert durations(timeline) == [(1, 0.0), (2, 10.0), (3, 30.0)]


def test_redelivered_event_is_counted_once(calendar: WorkCalendar) -> None:
    events = full_cycle()
    timeline = build_timeline([*events[:4], events[3], *events[4:]], STEPS, calendar)
    assert len(timeline.entries) == len(events)
    assert durations(timeline) == durations(build_timeline(events, STEPS, calendar))


def test_completion_stamped_before_its_input_counts_zero(calendar: WorkCalendar) -> None:
    # a skewed service clock: step 2 stamped one minute before step 1
    events = [directive("arahan", HEAD, wib(3, 8)), directive("instruksi", SEC, wib(3, 7, 59))]
    assert durations(build_timeline(events, STEPS, calendar)) == [(1, 0.0), (2, 0.0)]


def test_events_of_two_renja_are_refused(calendar: WorkCalendar) -> None:
    other = DirectiveIssued(
        **{**common(HEAD, wib(3, 8), "directive"), "renja_id": UUID(int=42)},
        level="arahan",
        text="x",
        addressee_role="sekretaris",
        opd="Dinas Lain",
        fiscal_year=2027,
        opd_code=None,
    )
    with pytest.raises(ValueError, match="one"):
        build_timeline([*full_cycle()[:2], other], STEPS, calendar)


def test_naive_as_of_is_refused(calendar: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="aware"):
        build_timeline(full_cycle(), STEPS, calendar, as_of=datetime(2026, 8, 5, 12))


def test_steps_from_the_shared_sop_definition_match_the_design_table() -> None:
    from shared.sop import load_sop

    specs = steps_from_sop(load_sop())
    assert [s.number for s in specs] == list(range(1, 12))
    assert [s.standard_minutes for s in specs] == [15, 15, 30, 300, 300, 300, 300, 30, 30, 15, 30]
    assert [s.role for s in specs] == [step.role for step in STEPS]
    assert specs[7].match == {"step": 8}
    # the adapted table drives the same timeline as the hand-written one
    cal = WorkCalendar()
    assert durations(build_timeline(full_cycle(), specs, cal)) == durations(build_timeline(full_cycle(), STEPS, cal))


def test_steps_from_sop_reads_plain_yaml_mappings() -> None:
    raw = {
        "steps": [
            {
                "number": 5,
                "name": "Rancangan Awal",
                "role": "staf",
                "standard_minutes": 300,
                "completed_by": {"event_type": "renja.DraftCreated.v1", "match": {"stage": "awal"}},
            }
        ]
    }
    expected = StepSpec(5, "Rancangan Awal", "staf", 300, "renja.DraftCreated.v1", {"stage": "awal"})
    assert steps_from_sop(raw) == [expected]


def test_steps_from_sop_accepts_objects_and_bare_event_types() -> None:
    class Step:
        number = 4
        activity = "Mengambil data"
        gloss = ""
        role = "staf"
        standard_minutes = 300
        completes = "DataCollected"

    class Sop:
        steps = (Step(),)

    assert steps_from_sop(Sop()) == [StepSpec(4, "Mengambil data", "staf", 300, "DataCollected")]


def test_format_minutes() -> None:
    assert (format_minutes(None), format_minutes(45), format_minutes(510.4)) == ("–", "45 m", "8 j 30 m")


def test_rendered_page_lists_every_step_and_marks_overdue_ones(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar)
    html = render_timeline_html(timeline, {"title": "Linimasa Renja", "chain": {"ok": True, "position": 15}})
    for spec in STEPS:
        assert f'id="step-{spec.number}"' in html
        assert spec.name in html
    assert html.count('class="step overdue"') == 3  # steps 4, 6 and 10
    assert 'id="step-4" class="step overdue"' in html
    assert "8 j 30 m" in html  # step 6's 510 working minutes
    assert "Selesai (didistribusikan)" in html
    assert "utuh" in html


def test_rendered_page_escapes_user_text(calendar: WorkCalendar) -> None:
    html = render_timeline_html(build_timeline(full_cycle(), STEPS, calendar))
    assert "<b>Bidang</b>" not in html
    assert "&lt;b&gt;Bidang&lt;/b&gt; &amp; indikator" in html


def test_rendered_page_of_a_running_cycle_shows_the_waiting_step(calendar: WorkCalendar) -> None:
    timeline = build_timeline(full_cycle(), STEPS, calendar, as_of=wib(6, 9))
    html = render_timeline_html(timeline)
    assert 'id="step-10" class="step waiting"' in html
    assert "Sedang berjalan" in html
