"""The use cases of the meetings service (SOP step 6): schedule a meeting, record its daftar hadir and its
notulen, read meetings. No HTTP here: routes hand in a ``CommandCall`` and get a ``CommandResult`` or a
public model back; refusals are ``DomainError`` subclasses carrying their HTTP status.

Every write is one ``CommandUnit`` transaction (Idempotency-Key claim, state check, own table, event +
outbox). The PUT that completes the pair decides ``RecordMeeting`` through the shared decider, so
``MeetingHeld`` is emitted by whichever PUT commits second; every PUT, completing or not, goes through
the unit with its key, so a retried PUT replays its first answer even after the meeting was held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal
from uuid import UUID

import asyncpg

from services.meetings.domain import (
    MeetingAlreadyHeld,
    MeetingBusy,
    MeetingNotFound,
    check_meeting_open,
    check_schedule_time,
    notulen_sha256,
    record_meeting_command,
)
from services.meetings.schemas import AttendanceIn, MeetingCreate, MeetingPublic, NotulenIn, NotulenPublic
from services.meetings.store import (
    MeetingChanged,
    MeetingRecord,
    get_meeting,
    insert_meeting,
    list_meetings,
    save_records,
)
from shared.command import CommandCall, CommandResult, CommandUnit, Decision
from shared.events import Actor, Event
from shared.sop import CommandContext, RenjaState, SopDefinition, decide

PUT_ATTEMPTS = 3
"""How often a PUT re-reads the meeting after losing a race with a concurrent PUT on the same meeting."""


def _who(actor: Actor) -> str:
    return f"{actor.name} ({actor.nip})"


def meeting_public(m: MeetingRecord) -> MeetingPublic:
    """The public view of a stored meeting: ``status`` and ``missing`` derived from its records."""
    missing: list[Literal["daftar_hadir", "notulen"]] = []
    if m.attendance is None:
        missing.append("daftar_hadir")
    if m.notulen is None:
        missing.append("notulen")
    return MeetingPublic(
        meeting_id=m.meeting_id,
        renja_id=m.renja_id,
        draft_version=m.draft_version,
        draft_sha256=m.draft_sha256,
        held_at=m.held_at,
        place=m.place,
        agenda=m.agenda,
        scheduled_by=m.scheduled_by,
        scheduled_at=m.scheduled_at,
        status="held" if m.is_held else "scheduled",
        missing=missing,
        attendees=list(m.attendance.attendees) if m.attendance else None,
        attendance_by=m.attendance_by,
        notulen=None
        if m.notulen is None
        else NotulenPublic(
            points=list(m.notulen.points),
            decisions=list(m.notulen.decisions),
            requested_changes=list(m.notulen.requested_changes),
        ),
        notulen_sha256=m.notulen_sha256,
        notulen_by=m.notulen_by,
        held_event_id=m.held_event_id,
    )


def _answer(record: MeetingRecord) -> dict[str, Any]:
    return meeting_public(record).model_dump(mode="json")


class MeetingsService:
    """Step 6 use cases over the service's ``CommandUnit`` (clock and ids from it) and its pool.

    Built once in ``main.create_app``; ``pool`` returns the connection pool (503 before the app started).
    """

    def __init__(self, commands: CommandUnit, pool: Callable[[], asyncpg.Pool], sop: SopDefinition) -> None:
        self._commands = commands
        self._pool = pool
        self._sop = sop

    async def schedule(self, call: CommandCall, body: MeetingCreate) -> CommandResult:
        """Store a new meeting on Rancangan Awal ``draft_version``/``draft_sha256``; no event (status 201).

        Raises ``RenjaClosed``/``OutOfOrder``/``StaleVersion`` (409) unless step 6 is due on exactly this
        draft, ``InvalidCommand`` (422) for an implausible ``held_at``.
        """
        now = self._commands.clock()
        record = MeetingRecord(
            meeting_id=self._commands.new_id(),
            renja_id=call.renja_id,
            draft_version=body.draft_version,
            draft_sha256=body.draft_sha256,
            held_at=body.held_at,
            place=body.place,
            agenda=body.agenda,
            scheduled_by=_who(call.actor),
            scheduled_at=now,
        )

        def decision(state: RenjaState, _: CommandContext) -> list[Event]:
            check_meeting_open(state, self._sop, call.actor.role, body.draft_version, body.draft_sha256)
            check_schedule_time(state, self._sop, body.held_at, now)
            return []

        async def effect(conn: asyncpg.Connection, _: Sequence[Event], __: RenjaState) -> None:
            await insert_meeting(conn, record)

        return await self._commands.run(
            call, decision, effect=effect, respond=lambda _e, _s: _answer(record), status_code=201, now=now
        )

    async def put_attendance(self, call: CommandCall, meeting_id: UUID, body: AttendanceIn) -> CommandResult:
        """Replace the daftar hadir; emits ``MeetingHeld`` if the notulen is already recorded (status 200)."""
        return await self._put_record(call, meeting_id, attendance=body)

    async def put_notulen(self, call: CommandCall, meeting_id: UUID, body: NotulenIn) -> CommandResult:
        """Replace the notulen; emits ``MeetingHeld`` if the daftar hadir is already recorded (status 200)."""
        return await self._put_record(call, meeting_id, notulen=body)

    async def meetings(self, renja_id: UUID) -> list[MeetingPublic]:
        """Every meeting of a Renja, oldest scheduled first."""
        async with self._pool().acquire() as conn:
            return [meeting_public(m) for m in await list_meetings(conn, renja_id)]

    async def meeting(self, renja_id: UUID, meeting_id: UUID) -> MeetingPublic:
        """One meeting; raises ``MeetingNotFound`` (404)."""
        async with self._pool().acquire() as conn:
            meeting = await get_meeting(conn, renja_id, meeting_id)
        if meeting is None:
            raise MeetingNotFound(f"Renja {renja_id} has no meeting {meeting_id}.")
        return meeting_public(meeting)

    async def _put_record(
        self,
        call: CommandCall,
        meeting_id: UUID,
        *,
        attendance: AttendanceIn | None = None,
        notulen: NotulenIn | None = None,
    ) -> CommandResult:
        """Replace the daftar hadir or the notulen; emit ``MeetingHeld`` when both now exist (SOP step 6).

        A PUT that raced another PUT on the same meeting (e.g. attendance and minutes sent at once) re-reads
        the meeting and decides again, so the pair completes by whichever commits second; after
        ``PUT_ATTEMPTS`` lost races it raises ``MeetingBusy`` (409).
        """
        for _ in range(PUT_ATTEMPTS):
            try:
                return await self._put_once(call, meeting_id, attendance=attendance, notulen=notulen)
            except MeetingChanged:
                continue
        raise MeetingBusy(
            f"Meeting {meeting_id} is being changed by someone else at the same moment; reload and retry."
        )

    async def _put_once(
        self, call: CommandCall, meeting_id: UUID, *, attendance: AttendanceIn | None, notulen: NotulenIn | None
    ) -> CommandResult:
        """One attempt of ``_put_record``; raises ``MeetingChanged`` (nothing committed) if it lost a race."""
        now = self._commands.clock()
        async with self._pool().acquire() as conn:
            current = await get_meeting(conn, call.renja_id, meeting_id)
        if current is None:
            raise MeetingNotFound(f"Renja {call.renja_id} has no meeting {meeting_id}; schedule one first.")
        update: dict[str, Any] = {}
        if attendance is not None:
            update.update(attendance=attendance, attendance_by=_who(call.actor), attendance_at=now)
        if notulen is not None:
            digest = notulen_sha256(meeting_id, current.draft_version, current.draft_sha256, notulen)
            update.update(notulen=notulen, notulen_sha256=digest, notulen_by=_who(call.actor), notulen_at=now)
        updated = current.model_copy(update=update)
        final: list[MeetingRecord] = [updated]

        async def effect(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
            if events:
                final[0] = updated.model_copy(update={"held_event_id": events[0].event_id, "held_recorded_at": now})
            # Raises MeetingChanged when the row moved since it was read: the transaction (event included)
            # rolls back and _put_record tries again on the fresh row.
            await save_records(conn, final[0], read_rev=current.rev)

        return await self._commands.run(
            call,
            self._records_decision(current, updated),
            effect=effect,
            respond=lambda _e, _s: _answer(final[0]),
            status_code=200,
            now=now,
        )

    def _records_decision(self, current: MeetingRecord, updated: MeetingRecord) -> Decision:
        """Refuse a held meeting; decide ``RecordMeeting`` once ``updated`` has both records, else no event."""

        def decision(state: RenjaState, ctx: CommandContext) -> list[Event]:
            # Checked after the Idempotency-Key claim, so a retried PUT replays instead of hitting this 409.
            if current.is_held or state.meeting_id == current.meeting_id:
                raise MeetingAlreadyHeld(
                    f"Meeting {current.meeting_id} was already held (SOP step 6 is done): its daftar hadir and "
                    "notulen are final. Changes to the draft belong in the Rancangan Akhir (step 7)."
                )
            if updated.attendance is None or updated.notulen is None:
                check_meeting_open(state, self._sop, ctx.actor.role, current.draft_version, current.draft_sha256)
                return []
            command = record_meeting_command(
                meeting_id=current.meeting_id,
                draft_version=current.draft_version,
                draft_sha256=current.draft_sha256,
                held_at=current.held_at,
                place=current.place,
                attendance=updated.attendance,
                notulen=updated.notulen,
            )
            return decide(state, command, ctx, self._sop)

        return decision
