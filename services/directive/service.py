"""The directive service's use cases: SOP steps 1-3 (arahan, instruksi, perintah), cancellation, and reads.

Each command runs through the service's ``CommandUnit`` (one transaction: decider, events + outbox, state,
Idempotency-Key) with an effect that keeps this service's own tables (``store``) in the same transaction:
the cycle row at step 1 (refused with ``AlreadyStarted`` while an open cycle for the same OPD and year
exists), each directive's text, and the cancellation mark that frees the OPD and year for a new cycle.
No HTTP here: the routes in ``api`` turn requests into ``CommandCall`` s and results into responses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import asyncpg

from services.directive import store
from services.directive.domain import (
    EmptyOpdName,
    OpdNotAllowed,
    UnknownOpdCode,
    ensure_plan_year_open,
    normalise_opd,
)
from services.directive.schemas import CyclePublic, DirectivePublic
from services.directive.settings import DirectiveSettings
from shared.command import CommandCall, CommandResult, CommandUnit, UnknownRenja
from shared.events import DirectiveIssued, Event, RenjaCancelled
from shared.registry import Registry
from shared.sop import AlreadyStarted, CancelRenja, IssueArahan, IssueInstruksi, IssuePerintah, RenjaState


async def record_directives(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
    """Keep the cycle row and each directive's text, in the command's transaction.

    Raises ``AlreadyStarted`` (409) when an open cycle exists for the same OPD (``lower(opd)``, the name
    already normalised by ``issue_arahan``) and fiscal year: SOP step 1 starts one Renja per OPD and year.
    """
    for e in events:
        if not isinstance(e, DirectiveIssued):
            continue
        if e.level == "arahan" and not await store.insert_cycle(conn, e.renja_id, e.opd, e.fiscal_year, e.occurred_at):
            blocking = await store.open_cycle(conn, e.opd, e.fiscal_year)
            existing = f"{blocking.renja_id}, started as {blocking.opd!r}" if blocking else "?"
            raise AlreadyStarted(
                f"Siklus Renja {e.opd} untuk tahun rencana {e.fiscal_year} sudah ada ({existing}): satu siklus "
                "per OPD dan tahun rencana. Lanjutkan siklus itu, atau batalkan dulu (POST /renja/{id}/cancel); "
                "untuk OPD lain, mulai siklusnya dengan token kepala OPD itu (klaim opd) dan opd_code-nya."
            )
        await store.insert_directive(conn, e)


async def record_cancellation(conn: asyncpg.Connection, events: Sequence[Event], _: RenjaState) -> None:
    """Mark the cycle cancelled (in the command's transaction), so it no longer blocks a new cycle for the
    same OPD and year: cancelling exists to restart a cycle started wrongly (design addition)."""
    for e in events:
        if isinstance(e, RenjaCancelled):
            await store.mark_cancelled(conn, e.renja_id, e.occurred_at)


class DirectiveService:
    """Steps 1-3 and cancellation (commands answer ``CommandResult``: 201 with the event ids and the step now
    due), and the cycle and directive lists. Built once in ``main.create_app``.

    ``pool`` returns the service's connection pool (it exists only once the app has started).
    """

    def __init__(
        self,
        commands: CommandUnit,
        pool: Callable[[], asyncpg.Pool],
        registry: Registry,
        settings: DirectiveSettings,
    ) -> None:
        self._commands = commands
        self._pool = pool
        self._registry = registry
        self._settings = settings

    async def issue_arahan(self, call: CommandCall, body: IssueArahan) -> CommandResult:
        """Start the cycle ``call.renja_id`` with the head's arahan, for the OPD ``body.opd_code`` (default:
        the token's ``opd`` claim) and plan year ``body.fiscal_year``.

        With an OPD code, the event records the registry's identity snapshot (``opd_identity``) and the
        OPD's official name; without one (a deployment before the registry), the normalised typed name.
        Refusals, authorisation first: ``OpdNotAllowed`` (403) for an OPD other than the token's,
        ``UnknownOpdCode`` (422) for a code the registry lacks, ``EmptyOpdName`` (422), ``PlanYearBegun``
        (422) once the plan year has begun (``RENJA_PLAN_YEAR_LEAD_DAYS``; "now" is the command unit's
        clock), ``AlreadyStarted`` (409) while an open cycle exists for the same OPD and plan year.
        """
        code = body.opd_code or call.actor.opd
        identity = None
        if code is not None:
            if call.actor.opd != code:
                mine = f"OPD {call.actor.opd}" if call.actor.opd else "tanpa klaim opd"
                raise OpdNotAllowed(
                    f"opd_code {code}: token Anda {mine}; hanya kepala OPD itu yang dapat memulai siklus Renja-nya."
                )
            if self._registry.find(code) is None:
                known = ", ".join(f"{o.code} ({o.short_name})" for o in self._registry.opds)
                raise UnknownOpdCode(
                    f"opd_code {code} tidak ada di registri {self._registry.region.name} "
                    f"(versi {self._registry.version}); yang terdaftar: {known}."
                )
            identity = self._registry.identity(code)
            opd = identity.name
        else:
            opd = normalise_opd(body.opd)
            if not opd:
                raise EmptyOpdName("opd: the OPD name is empty once spaces and invisible characters are removed.")
        ensure_plan_year_open(
            body.fiscal_year,
            self._commands.clock(),
            lead_days=self._settings.plan_year_lead_days,
            timezone=self._commands.sop.office_hours.timezone,
        )
        command = body.model_copy(update={"opd": opd, "opd_code": code, "opd_identity": identity})
        return await self._commands.run(call, command, effect=record_directives)

    async def issue_instruksi(self, call: CommandCall, body: IssueInstruksi) -> CommandResult:
        """Step 2: the secretary's instruksi to the Kasubag PP."""
        return await self._commands.run(call, body, effect=record_directives)

    async def issue_perintah(self, call: CommandCall, body: IssuePerintah) -> CommandResult:
        """Step 3: the Kasubag PP's perintah to the staff."""
        return await self._commands.run(call, body, effect=record_directives)

    async def cancel(self, call: CommandCall, body: CancelRenja) -> CommandResult:
        """Cancel the cycle with a reason; afterwards a new cycle may be started for the same OPD and year."""
        return await self._commands.run(call, body, effect=record_cancellation)

    async def cycles(self) -> list[CyclePublic]:
        """Every cycle with its status and due step, oldest first."""
        async with self._pool().acquire() as conn:
            return await store.list_cycles(conn)

    async def directives(self, renja_id: UUID) -> list[DirectivePublic]:
        """The arahan, instruksi and perintah of a cycle. Raises ``UnknownRenja`` (404) when it has none."""
        async with self._pool().acquire() as conn:
            found = await store.list_directives(conn, renja_id)
        if not found:
            raise UnknownRenja(f"No directives for Renja {renja_id}.")
        return found
