"""One SOP driver: the actions of a Renja cycle as one table, run in-process or over HTTP.

Each row of the table (``STEPS`` for the eleven steps, ``RETURNS`` for a return at a review step,
``CANCEL``, ``RECEIPT``) says who acts (a role; ``tests/unit/test_kit.py`` checks them against the SOP
file), which service owns the action (the CloudEvents ``source`` in-process, the host over HTTP), the
command it puts to the decider (``tests.kit.commands``) and the request(s) it makes to that service
(``tests.kit.http``). Two runners read the same rows:

- ``Cycle`` — in-process, through ``shared.sop.decide`` (pure): the events of a cycle for the decider's
  and the audit's tests and the benchmarks (``cycle_events``), or published onto a test topic before the
  service under test takes over (``publish_until``);
- ``HttpCycle`` — over HTTP against running services as the kit's people, for ``renja demo`` and the e2e
  tests. Before an action it waits until the acting service has consumed (through Kafka) the events
  that make the step due there.

Typical use::

    driven = await publish_until(settings, topic, step=7)   # steps 1..7 on the topic, step 8 is due
    driven.state.akhir_version, driven.state.akhir_sha256    # what a paraf must name
    events = cycle_events(sop, renja_id, start=START, returns=(9,))   # a whole cycle, returned once at 9

    cycle = HttpCycle(Http(stack.service_url, everyone(settings)), sop, opd="OPD Uji", year=2031)
    for row in (STEPS[1], STEPS[2], CANCEL):
        await cycle.run(row)

A new step of an existing kind is a new row reusing the builders (``commands.initial(n)``,
``http.post_paraf(note)``); a new kind of action adds one builder to each of the two modules.
In-process events are timestamped from the cycle's ``clock`` (default: three hours ago, UTC), ``gap``
apart, so a meeting is never "in the future" and the audit's durations stay positive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4, uuid5

from shared.events import Event, OpdIdentity, Role, ServiceName
from shared.settings import ServiceSettings
from shared.sop import Command, CommandContext, RenjaState, SopDefinition, decide, evolve, load_sop
from tests.kit import commands, http
from tests.kit.http import DriveError, Http, HttpCycle
from tests.kit.kafkatools import publish
from tests.kit.people import actor


@dataclass(frozen=True)
class Step:
    """One row of the cycle table: an action, who takes it, and what it sends in-process and over HTTP.

    ``number`` is the SOP step the action completes or acts at (None for a cancellation or a receipt).
    """

    number: int | None
    role: Role
    service: ServiceName
    command: Callable[[Cycle], Command]
    request: Callable[[HttpCycle, Step], Awaitable[None]]


# --- in-process ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveOptions:
    """Content knobs for the in-process commands (money in whole rupiah)."""

    opd: str = "Bappeda Kota Bogor"
    fiscal_year: int | None = None  # default: one derived from the Renja id, so cycles never collide
    opd_code: str | None = None  # the OPD's SIPD unit code the arahan records (None: not known)
    rows_per_unit: int = 12
    pagu_per_unit: int = 1_250_000_000
    awal_blocking_findings: int = 0
    akhir_blocking_findings: int = 0
    akhir_warning_findings: int = 0
    identity: OpdIdentity | None = None  # a registry OPD's snapshot (``Registry.identity``); None: no registry


@dataclass
class Cycle:
    """One Renja driven command by command through ``shared.sop.decide``: its state, log and clock.

    ``chained`` gives events log-like ids (``uuid5(renja_id, "event-<n>")``) and causation (the previous
    event); otherwise ids are random and there is no causation. ``clock`` (UTC) moves ``gap`` per event.
    """

    sop: SopDefinition
    renja_id: UUID = field(default_factory=uuid4)
    options: DriveOptions = field(default_factory=DriveOptions)
    clock: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=3))
    gap: timedelta = timedelta(minutes=1)
    chained: bool = False
    state: RenjaState = field(default_factory=RenjaState)
    events: list[Event] = field(default_factory=list)

    def observe(self, event: Event) -> None:
        """Fold an event produced outside the driver (e.g. by the service under test) into ``state``."""
        self.state = evolve(self.state, event)
        self.events.append(event)

    def run(self, row: Step) -> list[Event]:
        """Decide ``row``'s command as its role's person and keep the events it yields.

        Raises ``shared.sop.DomainError`` if the decider refuses (the step is not due, ...).
        """
        previous = self.events[-1].event_id if self.chained and self.events else None
        ctx = CommandContext(
            renja_id=self.renja_id,
            actor=actor(row.role),
            source=row.service,
            event_id=uuid5(self.renja_id, f"event-{len(self.events)}") if self.chained else uuid4(),
            correlation_id=self.state.correlation_id or self.renja_id,
            causation_id=previous,
            now=self.clock,
        )
        new = decide(self.state, row.command(self), ctx, self.sop)
        for event in new:
            self.observe(event)
            self.clock += self.gap
        return new

    def run_until(self, step: int) -> list[Event]:
        """Complete every due step up to and including ``step``; the new events (none if already past)."""
        new: list[Event] = []
        while self.state.due_step is not None and self.state.due_step <= step:
            new.extend(self.run(STEPS[self.state.due_step]))
        return new


# --- the table ----------------------------------------------------------------------------------------

STEPS: dict[int, Step] = {
    1: Step(1, "kepala_badan", "directive", commands.arahan, http.post_arahan),
    2: Step(2, "sekretaris", "directive", commands.instruksi, http.post_instruksi),
    3: Step(3, "kasubag_pp", "directive", commands.perintah, http.post_perintah),
    4: Step(4, "staf", "documents", commands.collected, http.deliver_rows),
    5: Step(5, "staf", "documents", commands.awal, http.post_awal),
    6: Step(6, "staf", "meetings", commands.meeting, http.hold_meeting),
    7: Step(7, "staf", "documents", commands.akhir_draft, http.post_akhir),
    8: Step(8, "kasubag_pp", "approvals", commands.initial(8), http.post_paraf("Diperiksa")),
    9: Step(9, "sekretaris", "approvals", commands.initial(9), http.post_paraf("Setuju")),
    10: Step(10, "kepala_badan", "approvals", commands.sign, http.post_sign),
    11: Step(11, "staf", "notifier", commands.distribute, http.post_distribution),
}
"""The eleven SOP steps: who takes each, the owning service, the command, the request(s)."""

RETURNS: dict[int, Step] = {
    n: Step(n, STEPS[n].role, "approvals", commands.return_at(n), http.post_return) for n in (8, 9, 10)
}
"""A return of the Rancangan Akhir at a review step (8, 9 or 10), by that step's reviewer."""

CANCEL = Step(None, "kepala_badan", "directive", commands.cancel, http.post_cancel)
"""The head cancels the cycle (at any step before distribution)."""

RECEIPT = Step(None, "staf", "notifier", commands.receipt, http.post_receipt)
"""A proof of receipt from the next recipient without one (after distribution)."""


# --- whole cycles -------------------------------------------------------------------------------------


def cycle_events(
    sop: SopDefinition,
    renja_id: UUID,
    *,
    start: datetime,
    gap: timedelta = timedelta(minutes=40),
    opd: str = "Bappeda Kota Bogor",
    fiscal_year: int = 2027,
    opd_code: str | None = None,
    returns: Sequence[int] = (),
    cancel_before_step: int | None = None,
    receipts: int = 1,
) -> list[Event]:
    """The events of one cycle, in log order, with log-like ids (``chained``) and ``start + gap * n`` clock.

    ``returns``: the review steps (8, 9 or 10) at which the final draft is returned, one return each, in
    order (each return is followed by a new Rancangan Akhir and the reviews again from step 8).
    ``cancel_before_step``: the head cancels just before this step (2..11); nothing follows.
    ``receipts``: proofs of commands.receipt recorded after distribution (at most the number of recipients).
    ``start`` must be aware (UTC). Raises ``shared.sop.DomainError`` if the script breaks a rule.
    """
    options = DriveOptions(opd=opd, fiscal_year=fiscal_year, opd_code=opd_code)
    cycle = Cycle(sop, renja_id, options=options, clock=start, gap=gap, chained=True)
    pending = list(returns)
    while (due := cycle.state.due_step) is not None:
        if due == cancel_before_step:
            cycle.run(CANCEL)
            return cycle.events
        if pending and pending[0] == due and due in RETURNS:
            pending.pop(0)
            cycle.run(RETURNS[due])
        else:
            cycle.run(STEPS[due])
    for _ in range(receipts):
        cycle.run(RECEIPT)
    return cycle.events


async def publish_until(
    settings: ServiceSettings,
    topic: str,
    *,
    step: int,
    renja_id: UUID | None = None,
    driven: Cycle | None = None,
    options: DriveOptions | None = None,
    start: datetime | None = None,
    sop: SopDefinition | None = None,
) -> Cycle:
    """Publish the events completing each due step up to and including ``step``; return the driven Renja.

    Starts a new Renja (``renja_id`` or a random one; clock at ``start``) unless ``driven`` continues an
    earlier one. ``step=5`` leaves step 6 due (the commands.meeting), ``step=7`` leaves step 8 due (the first paraf).
    Nothing is published if the due step is already past ``step``.
    """
    if driven is None:
        driven = Cycle(sop or load_sop(settings.sop_file), renja_id or uuid4())
        if start is not None:
            driven.clock = start
    elif sop is not None:
        driven.sop = sop
    if options is not None:
        driven.options = options
    await publish(settings, topic, driven.run_until(step))
    return driven


__all__ = [
    "CANCEL",
    "RECEIPT",
    "RETURNS",
    "STEPS",
    "Cycle",
    "DriveError",
    "DriveOptions",
    "Http",
    "HttpCycle",
    "Step",
    "cycle_events",
    "publish_until",
]
