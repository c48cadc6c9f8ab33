"""The command unit of work every step service uses: load → decide → append, in ONE transaction.

One command = one transaction holding, together: the Idempotency-Key claim (and later its stored
answer), the decided events and their outbox flag (``shared.eventstore.append``), the service's folded
state (``shared.process.save_state``), the inbox rows of its own events (so their echo from Kafka is
skipped), the service's reactions to its own events, and its own table changes (``effect``).

Invariants:
- "the same request" for an Idempotency-Key is one definition: the principal, the key and a hash over
  the request's method, path and raw body bytes (``request_fingerprint``); the same key with another
  request is ``IdempotencyMismatch`` (HTTP 422), never a foreign answer;
- 50 concurrent identical requests with one key produce one set of events: the key's unique row makes
  the others wait for the first commit and then replay its answer;
- a decision on a stale state loses at ``UNIQUE(stream_id, version)`` / the conditional state update
  (``ConcurrencyConflict``) and is decided again on the fresh state, up to ``attempts`` times;
- a service's reactions see its own events here, in the command's transaction, and other services'
  events in the consumer's transaction (``shared.app``): each event reaches a reaction exactly once;
- acknowledged means logged: with a ``publication`` (the service's outbox relay, wired by ``shared.app``),
  the answer is given only once the command's events are on the log; if the broker does not acknowledge
  them within the bound, the answer is ``202`` with the events still ``unpublished`` (the relay publishes
  them later; ``docs/events.md``, *Ordering*). A replayed answer first waits the same way for its Renja's
  events still in the outbox.

Nothing here knows HTTP: ``shared.web.commands`` turns a request into a ``CommandCall`` and a
``CommandResult`` into a response.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import structlog

from shared import tracing
from shared.events import Actor, Event
from shared.eventstore import ConcurrencyConflict, append
from shared.outbox import unpublished_ids
from shared.process import load_state, save_state
from shared.sop import (
    Command,
    CommandContext,
    DomainError,
    IssueArahan,
    RenjaState,
    SopDefinition,
    decide,
    evolve,
    next_step,
)

log = structlog.get_logger(__name__)

Decision = Callable[[RenjaState, CommandContext], Sequence[Event]]
"""A service's own decision on the current state (usually ``shared.sop.decide`` with one command)."""

Effect = Callable[[asyncpg.Connection, Sequence[Event], RenjaState], Awaitable[Any]]
"""Writes the service's own tables in the command's transaction: ``(conn, new events, state after)``."""

Respond = Callable[[Sequence[Event], RenjaState], Any]
"""Builds the JSON-able answer from the new events and the state after them."""

Reaction = Callable[[asyncpg.Connection, Event, RenjaState], Awaitable[None]]
"""What a service does, beyond folding its SOP state, when an event happens: ``(conn, event, state after
the event)``, inside the transaction that folds (consumer) or appends (command) the event."""

Publication = Callable[[Sequence[UUID]], Awaitable[bool]]
"""Waits, bounded, until the given events are on the log: True once they are, False if they are still in
the outbox when the bound passes (``shared.outbox.OutboxRelay.await_published``)."""

Reactions = Mapping[type[Event], Reaction]
"""A service's reactions, a literal dict keyed by event class (``{MeetingHeld: ..., Signed: ...}``)."""

IDEMPOTENCY_KEY_MAX = 200
"""Longest accepted ``Idempotency-Key`` header, in characters."""


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """The Idempotency-Key request hash: SHA-256 (hex) over a request's method, path and raw body bytes.

    Only what the client sent counts — never server-made ids or the clock — so a retry hashes the same
    and a key reused on another Renja, endpoint or body does not.
    """
    return hashlib.sha256(json.dumps([method, path, body.hex()]).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An ``Idempotency-Key`` request: the key, who sent it, and ``request_fingerprint`` of the request."""

    key: str
    principal: str
    request_hash: str


class IdempotencyMismatch(Exception):
    """The key was used before by the same person for a different request (HTTP 422)."""


class IdempotencyKeyInvalid(DomainError):
    """The ``Idempotency-Key`` header cannot be used (too long)."""

    code = "invalid_request"
    http_status = 422


class OtherOpd(DomainError):
    """The cycle belongs to another OPD than the actor's (token claim ``opd``): HTTP 403, decided before
    any rule of the cycle's state, so a person learns nothing about another OPD's cycle by acting on it."""

    code = "other_opd"
    http_status = 403


def ensure_own_opd(state: RenjaState, actor: Actor) -> None:
    """Refuse (``OtherOpd``, 403) an actor whose OPD is not the cycle's. A cycle opened without an OPD
    code (before the registry) is open to every token; ``system`` acts for every OPD."""
    if state.opd_code is None or actor.role == "system" or actor.opd == state.opd_code:
        return
    mine = f"OPD {actor.opd}" if actor.opd else "tanpa klaim opd"
    raise OtherOpd(
        f"Renja ini milik OPD {state.opd_code} ({state.opd}); token Anda {mine}. "
        "Setiap orang hanya bertindak atas siklus Renja OPD-nya sendiri."
    )


class UnknownRenja(DomainError):
    """The Renja has not reached this service (wrong id, or its arahan is still on the way)."""

    code = "not_found"
    http_status = 404


@dataclass(frozen=True, slots=True)
class CommandCall:
    """Who asks for a command on which Renja, with the transport's extras (key, trace context)."""

    actor: Actor
    renja_id: UUID
    idempotency: Idempotency | None = None
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer of one command: HTTP-like status, JSON-able body, whether it replays an earlier answer."""

    status_code: int
    body: Any
    replayed: bool
    events: tuple[Event, ...] = ()
    unpublished: tuple[UUID, ...] = ()
    """Ids of the command's events not yet on the log when it was answered (then ``status_code`` is 202)."""


def idempotency_of(key: str | None, principal: str, fingerprint: str) -> Idempotency | None:
    """The ``Idempotency`` of a request header value (None without one).

    Raises ``IdempotencyKeyInvalid`` (422) for a key over ``IDEMPOTENCY_KEY_MAX`` characters.
    """
    if not key:
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise IdempotencyKeyInvalid(f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} characters.")
    return Idempotency(key=key, principal=principal, request_hash=fingerprint)


class CommandUnit:
    """The command path of one service (built once in its composition root).

    ``pool`` returns the service's connection pool (it exists only once the app has started);
    ``clock`` and ``new_id`` are the impure inputs of every decision, passed in for tests.
    ``publication`` (set once the relay runs; None: answer at commit) makes an answer wait until the
    command's events are on the log.
    """

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        *,
        service: str,
        sop: SopDefinition,
        reactions: Reactions | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], UUID] = uuid4,
        attempts: int = 5,
    ) -> None:
        self._pool = pool
        self.service = service
        self.sop = sop
        self.reactions: Reactions = reactions or {}
        self.clock = clock
        self.new_id = new_id
        self.attempts = attempts
        self.publication: Publication | None = None
        self.outcomes: dict[tuple[str, str, str], int] = {}
        """Commands run since start, per ``(command, outcome, code)``: outcome ``applied``, ``replayed``,
        ``refused`` (code: the ``DomainError`` code, or ``idempotency_mismatch``), ``conflict`` (lost
        every attempt) or ``error``; read by ``/metrics``."""

    def _count(self, command: str, outcome: str, code: str = "") -> None:
        key = (command, outcome, code)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    async def replayed(self, call: CommandCall) -> CommandResult | None:
        """The stored answer of an earlier identical request under ``call``'s key, if it has committed.

        For commands whose content is derived from the state before deciding (a draft's next version):
        a retry is answered before anything is derived. Raises ``IdempotencyMismatch`` for a key used
        with a different request; None without a key, for an unseen key, or one still in flight.
        """
        idem = call.idempotency
        if idem is None:
            return None
        async with self._pool().acquire() as conn:
            row = await _key_row(conn, idem)
        if row is None:
            return None
        _check_same_request(idem, row["request_hash"])
        if row["status_code"] is None:
            return None
        self._count("replay_lookup", "replayed")
        return CommandResult(int(row["status_code"]), json.loads(row["response"]), replayed=True)

    async def run(
        self,
        call: CommandCall,
        decision: Command | Decision,
        *,
        respond: Respond | None = None,
        effect: Effect | None = None,
        precheck: Callable[[RenjaState], None] | None = None,
        status_code: int = 201,
        now: datetime | None = None,
    ) -> CommandResult:
        """Decide ``decision`` on the current state and commit everything in one transaction.

        ``decision`` is a command for ``shared.sop.decide`` or a service's own ``Decision``.
        ``precheck(state)`` may refuse before the decider runs (service rules such as "the file must
        exist"); ``effect`` writes the service's own tables; ``respond`` builds the body (default: the
        event ids and the step now due). ``now`` (UTC) defaults to the unit's clock.
        Raises ``DomainError`` (refused), ``UnknownRenja`` (404), ``IdempotencyMismatch`` (422), and
        ``ConcurrencyConflict`` (409) after ``attempts`` lost races.
        """
        event_id = self.new_id()
        at = now or self.clock()

        def decide_now(state: RenjaState) -> Sequence[Event]:
            if state.renja_id is None and not isinstance(decision, IssueArahan):
                raise UnknownRenja(
                    f"Renja {call.renja_id} is not known to the {self.service} service (yet): check the id, "
                    "or wait a moment if it was just started."
                )
            ensure_own_opd(state, call.actor)  # authorisation before any rule of the state
            if precheck is not None:
                precheck(state)
            ctx = CommandContext(
                renja_id=call.renja_id,
                actor=call.actor,
                source=self.service,  # type: ignore[arg-type]
                event_id=event_id,
                correlation_id=state.correlation_id or call.renja_id,
                now=at,
            )
            if callable(decision):
                return decision(state, ctx)
            return decide(state, decision, ctx, self.sop)

        name = command_name(decision)
        try:
            with tracing.command_span(name, call.renja_id):
                result = await self._attempts(call, decide_now, respond or self._default(call), effect, status_code)
        except DomainError as exc:
            self._count(name, "refused", exc.code)
            raise
        except IdempotencyMismatch:
            self._count(name, "refused", "idempotency_mismatch")
            raise
        except ConcurrencyConflict:
            self._count(name, "conflict")
            raise
        except Exception:
            self._count(name, "error")
            raise
        self._count(name, "replayed" if result.replayed else "applied")
        return await self._logged(call, result)

    async def _logged(self, call: CommandCall, result: CommandResult) -> CommandResult:
        """``result`` once its events are on the log; ``202`` with ``unpublished`` if the bound passed first.

        A replayed answer carries no events: it waits for its Renja's events still in the outbox (its own
        among them, if the first answer was a 202), so a retry never reports "logged" too early either.
        """
        if self.publication is None:
            return result
        if result.replayed:
            async with self._pool().acquire() as conn:
                ids = await unpublished_ids(conn, call.renja_id)
        else:
            ids = [e.event_id for e in result.events]
        if not ids or await self.publication(ids):
            return result
        log.warning("command_answered_before_logged", renja_id=str(call.renja_id), events=len(ids))
        return dataclasses.replace(result, status_code=202, unpublished=tuple(ids))

    async def _attempts(
        self,
        call: CommandCall,
        decide_now: Callable[[RenjaState], Sequence[Event]],
        respond: Respond,
        effect: Effect | None,
        status_code: int,
    ) -> CommandResult:
        """``_once``, decided again on the fresh state after a lost race, up to ``attempts`` times."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._once(call, decide_now, respond, effect, status_code)
            except ConcurrencyConflict:
                if attempt == self.attempts:
                    raise
                log.info("command_retry_after_conflict", renja_id=str(call.renja_id), attempt=attempt)
        raise AssertionError("unreachable")

    def _default(self, call: CommandCall) -> Respond:
        """``{"renja_id", "events": [{"event_id", "type"}], "next_step": {"number", "role"} | None}``."""

        def respond(events: Sequence[Event], state: RenjaState) -> dict[str, Any]:
            step = next_step(state, self.sop)
            return {
                "renja_id": str(call.renja_id),
                "events": [{"event_id": str(e.event_id), "type": e.event_type} for e in events],
                "next_step": None if step is None else {"number": step.number, "role": step.role},
            }

        return respond

    async def _once(
        self,
        call: CommandCall,
        decide_now: Callable[[RenjaState], Sequence[Event]],
        respond: Respond,
        effect: Effect | None,
        status_code: int,
    ) -> CommandResult:
        async with self._pool().acquire() as conn, conn.transaction():
            if call.idempotency is not None:
                replay = await _claim_key(conn, call.idempotency)
                if replay is not None:
                    return replay
            state, version = await load_state(conn, call.renja_id)
            events = list(decide_now(state))
            new_state = await self._append(conn, call, state, version, events)
            if effect is not None:
                await effect(conn, events, new_state)
            body = respond(events, new_state)
            if call.idempotency is not None:
                await conn.execute(
                    "UPDATE idempotency_keys SET status_code = $3, response = $4::jsonb"
                    " WHERE principal = $1 AND key = $2",
                    call.idempotency.principal,
                    call.idempotency.key,
                    status_code,
                    json.dumps(body, default=str),
                )
            return CommandResult(status_code, body, replayed=False, events=tuple(events))

    async def _append(
        self, conn: asyncpg.Connection, call: CommandCall, state: RenjaState, version: int, events: list[Event]
    ) -> RenjaState:
        """Events + outbox, the new state, inbox rows and reactions for ``events``; the state after them."""
        # the outbox row keeps the command span's context: the relay's publish span continues it
        traceparent, tracestate = tracing.current_context(call.traceparent, call.tracestate)
        new_version = await append(
            conn,
            service=self.service,
            stream_id=call.renja_id,
            expected_version=version,
            events=events,
            traceparent=traceparent,
            tracestate=tracestate,
        )
        folded: list[tuple[Event, RenjaState]] = []
        new_state = state
        for event in events:
            new_state = evolve(new_state, event, self.sop)
            folded.append((event, new_state))
        await save_state(conn, call.renja_id, new_state, expected_version=version, new_version=new_version)
        if events:
            # The echo of our own events from Kafka is skipped: their inbox rows commit with them.
            await conn.executemany(
                "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(self.service, e.event_id, e.event_type) for e in events],
            )
        for event, after in folded:
            reaction = self.reactions.get(type(event))
            if reaction is not None:
                await reaction(conn, event, after)
        return new_state


def command_name(decision: Command | Decision) -> str:
    """The metrics label of a command: its class name (``IssueArahan``), or a service decision's function
    name (``decision`` for a lambda)."""
    if callable(decision):
        name = getattr(decision, "__name__", "decision")
        return "decision" if name == "<lambda>" else str(name)
    return type(decision).__name__


def _check_same_request(idem: Idempotency, stored_hash: str) -> None:
    if stored_hash != idem.request_hash:
        raise IdempotencyMismatch(
            f"Idempotency-Key {idem.key!r} was already used for a different request (another Renja, endpoint or "
            "body); use a new key."
        )


async def _claim_key(conn: asyncpg.Connection, idem: Idempotency) -> CommandResult | None:
    """Claim ``idem``'s key in this transaction, or the earlier answer it already holds.

    A concurrent identical request blocks on the unique row until the first one commits, then sees its
    stored answer here.
    """
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_keys (key, principal, request_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        idem.key,
        idem.principal,
        idem.request_hash,
    )
    if inserted:
        return None
    row = await _key_row(conn, idem)
    assert row is not None  # the insert conflicted: the row exists (and is committed, or we waited for it)
    _check_same_request(idem, row["request_hash"])
    return CommandResult(int(row["status_code"]), json.loads(row["response"]), replayed=True)


async def _key_row(conn: asyncpg.Connection, idem: Idempotency) -> asyncpg.Record | None:
    """The stored ``idempotency_keys`` row of ``idem``'s principal and key (None if never claimed)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT request_hash, status_code, response::text AS response FROM idempotency_keys"
        " WHERE principal = $1 AND key = $2",
        idem.principal,
        idem.key,
    )
    return row
