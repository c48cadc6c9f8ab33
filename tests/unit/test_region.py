"""The region-wide view's rows (``services.audit.region``): waiting time and overdue by the timeline's own
rule, blocking findings of the current draft, the OPD's name, filters, *menunggu saya*, CSV and page.

Cycles come from the real decider (``tests.kit.driver.Cycle``) on a clock starting Monday 3 August 2026,
08:00 WIB, ten minutes per event (office hours 07:30-16:00, Friday to 16:30; no holiday that week).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from services.audit.region import (
    REGION_STATUSES,
    CycleFacts,
    RegionRow,
    opd_display_name,
    region_row,
    region_rows,
    waiting_on,
)
from services.audit.region_page import render_region_html
from services.audit.region_schemas import REGION_CSV_COLUMNS, region_csv, region_public
from services.audit.region_service import RegionView
from services.audit.timeline import build_timeline, steps_from_sop
from services.audit.workcalendar import WorkCalendar
from shared.events import DraftCreated
from shared.sop import load_sop
from tests.kit.driver import CANCEL, RECEIPT, Cycle, DriveOptions

pytestmark = pytest.mark.unit

SOP = load_sop()
STEPS = {s.number: s for s in steps_from_sop(SOP)}
WIB = ZoneInfo("Asia/Jakarta")
START = datetime(2026, 8, 3, 8, 0, tzinfo=WIB)  # Monday
CALENDAR = WorkCalendar()

BAPPERIDA = "5.01.5.05.0.00.01.0000"
DISDIK = "1.01.0.00.0.00.01.0000"


def wib(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 8, day, hh, mm, tzinfo=WIB)


def driven(step: int, *, opd: str = "Bapperida", code: str | None = BAPPERIDA, **options: int) -> Cycle:
    """A cycle with every step up to ``step`` done, ten minutes apart from START."""
    cycle = Cycle(
        SOP,
        uuid4(),
        options=DriveOptions(opd=opd, fiscal_year=2027, opd_code=code, **options),  # type: ignore[arg-type]
        clock=START.astimezone(UTC),
        gap=timedelta(minutes=10),
        chained=True,
    )
    cycle.run_until(step)
    return cycle


def facts(cycle: Cycle) -> CycleFacts:
    return CycleFacts(
        renja_id=cycle.renja_id,
        state=cycle.state,
        first_at=cycle.events[0].occurred_at,
        last_at=cycle.events[-1].occurred_at,
        draft_blocking={e.version: e.blocking_findings for e in cycle.events if isinstance(e, DraftCreated)},
    )


def row(cycle: Cycle, as_of: datetime, opd_name: dict[str, str] | None = None) -> RegionRow:
    return region_row(facts(cycle), STEPS, CALENDAR, as_of, None if opd_name is None else opd_name.get)


def test_a_cycle_at_step_4_waits_on_the_staff_since_the_perintah() -> None:
    cycle = driven(3)  # arahan 08:00, instruksi 08:10, perintah 08:20
    r = row(cycle, wib(3, 10, 20))
    assert (r.current_step, r.waiting_on_role, r.status) == (4, "staf", "in_progress")
    assert r.waiting_since == wib(3, 8, 20)
    assert (r.waiting_minutes, r.standard_minutes, r.overdue) == (120.0, 300, False)
    assert r.deadline == wib(3, 13, 20)  # 300 working minutes after 08:20 on a Monday
    assert (r.opd_code, r.opd_name, r.fiscal_year) == (BAPPERIDA, "Bapperida", 2027)
    assert (r.signed, r.distributed, r.blocking_findings) == (False, False, 0)


def test_past_the_mutu_baku_the_cycle_is_overdue_counting_office_hours_only() -> None:
    cycle = driven(3)
    r = row(cycle, wib(4, 10))  # Mon 08:20-16:00 = 460, Tue 07:30-10:00 = 150
    assert (r.waiting_minutes, r.overdue) == (610.0, True)
    at_night = row(cycle, wib(3, 23))  # Mon 08:20-16:00 only
    assert (at_night.waiting_minutes, at_night.overdue) == (460.0, True)


def test_waiting_time_and_overdue_are_the_timelines_own_numbers() -> None:
    cycle = driven(6)
    for as_of in (wib(3, 9), wib(3, 15, 59), wib(4, 7), wib(5, 12, 34)):
        timeline = build_timeline(cycle.events, list(STEPS.values()), CALENDAR, as_of=as_of, sop=SOP)
        waiting = timeline.current_step
        assert waiting is not None and waiting.elapsed_minutes is not None
        r = row(cycle, as_of)
        assert r.current_step == waiting.number == 7
        assert r.waiting_minutes == round(waiting.elapsed_minutes, 1)
        assert r.overdue is waiting.overdue


def test_blocking_findings_are_the_current_drafts() -> None:
    at_meeting = driven(5, awal_blocking_findings=2)
    assert row(at_meeting, wib(3, 12)).blocking_findings == 2  # the Rancangan Awal's
    revised = driven(7, awal_blocking_findings=2, akhir_blocking_findings=0)
    assert row(revised, wib(3, 12)).blocking_findings == 0  # the Rancangan Akhir's replaces it
    still = driven(7, awal_blocking_findings=2, akhir_blocking_findings=1)
    assert row(still, wib(3, 12)).blocking_findings == 1


def test_a_distributed_cycle_waits_on_nobody_and_is_signed_and_distributed() -> None:
    cycle = driven(11)
    cycle.run(RECEIPT)
    r = row(cycle, wib(10, 9))
    assert (r.status, r.current_step, r.waiting_on_role, r.waiting_minutes, r.deadline) == (
        "distributed",
        None,
        None,
        None,
        None,
    )
    assert (r.overdue, r.signed, r.distributed) == (False, True, True)
    assert r.distributed_at == cycle.state.distributed_at


def test_a_cancelled_cycle_waits_on_nobody() -> None:
    cycle = driven(5)
    cycle.run(CANCEL)
    r = row(cycle, wib(10, 9))
    assert (r.status, r.current_step, r.overdue, r.distributed) == ("cancelled", None, False, False)


def test_the_opd_name_comes_from_the_registry_else_the_arahan_else_the_code() -> None:
    cycle = driven(2, opd="Bapperida Bengkulu Utara")
    registry = {BAPPERIDA: "Badan Perencanaan Pembangunan, Riset dan Inovasi Daerah"}
    assert row(cycle, wib(3, 9), registry).opd_name == registry[BAPPERIDA]
    assert row(cycle, wib(3, 9), {}).opd_name == "Bapperida Bengkulu Utara"
    assert row(cycle, wib(3, 9)).opd_name == "Bapperida Bengkulu Utara"
    unknown_code = driven(2, opd="Dinas X", code=None)
    assert row(unknown_code, wib(3, 9), registry).opd_name == "Dinas X"
    assert opd_display_name(cycle.state.model_copy(update={"opd": ""}), None) == BAPPERIDA


def test_a_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        row(driven(1), datetime(2026, 8, 3, 9))


def region() -> dict[str, Cycle]:
    """Three cycles of 2027: Dinas Pendidikan late at step 4, Bapperida on time at step 8, one distributed."""
    late = driven(3, opd="Dinas Pendidikan", code=DISDIK)
    fresh = Cycle(
        SOP,
        uuid4(),
        options=DriveOptions(opd="Bapperida", fiscal_year=2027, opd_code=BAPPERIDA),
        clock=wib(4, 15).astimezone(UTC),
        gap=timedelta(minutes=1),
        chained=True,
    )
    fresh.run_until(7)
    done = driven(11, opd="Inspektorat", code="6.01.0.00.0.00.01.0000")
    return {"late": late, "fresh": fresh, "done": done}


def test_filters_by_step_and_status_and_orders_by_opd_code() -> None:
    cycles = region()
    all_facts = [facts(c) for c in cycles.values()]
    as_of = wib(4, 15, 20)

    def ids(**filters: object) -> list[UUID]:
        rows = region_rows(all_facts, STEPS, CALENDAR, as_of, **filters)  # type: ignore[arg-type]
        return [r.renja_id for r in rows]

    late, fresh, done = (cycles[k].renja_id for k in ("late", "fresh", "done"))
    assert ids() == [late, fresh, done]  # 1.01… < 5.01… < 6.01…
    assert ids(status="overdue") == [late]
    assert ids(status="on_time") == [fresh]
    assert ids(status="in_progress") == [late, fresh]
    assert ids(status="distributed") == [done]
    assert ids(status="cancelled") == []
    assert ids(step=8) == [fresh]
    assert ids(step=8, status="overdue") == []
    assert set(REGION_STATUSES) == {"in_progress", "overdue", "on_time", "distributed", "cancelled"}


def test_menunggu_saya_is_the_open_cycles_at_the_callers_role_in_the_callers_opd() -> None:
    cycles = region()
    rows = region_rows([facts(c) for c in cycles.values()], STEPS, CALENDAR, wib(4, 15, 20))
    staff_everywhere = waiting_on(rows, "staf", None)
    assert [r.renja_id for r in staff_everywhere] == [cycles["late"].renja_id]  # the distributed one waits on nobody
    assert waiting_on(rows, "staf", BAPPERIDA) == []
    assert [r.renja_id for r in waiting_on(rows, "kasubag_pp", BAPPERIDA)] == [cycles["fresh"].renja_id]
    assert waiting_on(rows, "kasubag_pp", DISDIK) == []
    assert [r.renja_id for r in waiting_on(rows, "staf", "Dinas Pendidikan")] == [cycles["late"].renja_id]
    assert waiting_on(rows, "auditor", None) == [] and waiting_on(rows, "bappeda", None) == []


def view_of(cycles: dict[str, Cycle], as_of: datetime) -> RegionView:
    rows = region_rows([facts(c) for c in cycles.values()], STEPS, CALENDAR, as_of)
    return RegionView(rows, as_of, 2027, None, None, False, [2027])


def test_the_csv_has_exactly_the_apis_rows_and_columns() -> None:
    public = region_public(view_of(region(), wib(4, 15, 20)))
    parsed = list(csv.DictReader(io.StringIO(region_csv(public))))
    assert tuple(parsed[0]) == REGION_CSV_COLUMNS
    as_json = [
        {k: "" if v is None else ("true" if v is True else "false" if v is False else str(v)) for k, v in r.items()}
        for r in public.model_dump(mode="json")["rows"]
    ]
    assert parsed == as_json
    assert [r["opd_code"] for r in parsed] == [DISDIK, BAPPERIDA, "6.01.0.00.0.00.01.0000"]
    assert parsed[0]["overdue"] == "true" and parsed[0]["waiting_minutes"] == str(public.rows[0].waiting_minutes)


def test_the_page_lists_every_cycle_with_its_step_in_indonesian_and_marks_the_late_one() -> None:
    cycles = region()
    cycles["late"] = driven(3, opd="Dinas <Pendidikan> & Kebudayaan", code=DISDIK)
    view = view_of(cycles, wib(4, 15, 20))
    html = render_region_html(view, STEPS, "Asia/Jakarta", token="tok.en", meta={"region": "Kabupaten Bengkulu Utara"})
    for c in cycles.values():
        assert f'id="cycle-{c.renja_id}"' in html
    assert "Dinas &lt;Pendidikan&gt; &amp; Kebudayaan" in html and "<Pendidikan>" not in html
    assert "4. " + STEPS[4].name in html and "8. " + STEPS[8].name in html
    assert "Kasubag Perencanaan dan Pelaporan" in html  # who step 8 waits on
    assert html.count('<span class="badge over">terlambat</span>') == 1
    assert "Kabupaten Bengkulu Utara" in html and "Unduh CSV" in html
    assert "/region/cycles.csv?tahun=2027&amp;as_of=" in html and "token=tok.en" in html
    assert f"/renja/{cycles['late'].renja_id}/timeline.html?token=tok.en" in html


def test_a_page_opened_with_a_header_token_writes_no_token_into_its_links() -> None:
    html = render_region_html(view_of(region(), wib(4, 15, 20)), STEPS, "Asia/Jakarta")
    assert "token=" not in html


def test_cycles_without_an_opd_code_come_after_the_coded_ones() -> None:
    coded, uncoded = driven(2, opd="Zeta", code=BAPPERIDA), driven(2, opd="Alfa", code=None)
    rows = region_rows([facts(uncoded), facts(coded)], STEPS, CALENDAR, wib(3, 9))
    assert [r.opd_name for r in rows] == ["Zeta", "Alfa"]
