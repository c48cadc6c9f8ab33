"""Each service's folded copy of every Renja's SOP state, and the command path: load → decide → append.

Invariants:
- ``process_state.version`` counts every event this service has applied to a Renja (its own, appended by
  commands, and other services', consumed from Kafka); it only moves by a conditional update
  ``WHERE version = expected`` (or the first insert), so a command that decided on a stale state fails
  with ``ConcurrencyConflict`` and is retried on the fresh state — no Python locks;
- a command's events, their outbox flag, the new state, the inbox rows for its own events (so the echo
  from Kafka is skipped), the service's own table changes and the Idempotency-Key record all commit in
  ONE transaction;
- a consumed event from another service is folded once (the inbox row commits with the new state).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from shared.events import Event
from shared.eventstore import ConcurrencyConflict, append
from shared.sop import RenjaState, evolve

log = structlog.get_logger(__name__)

Decision = Callable[[RenjaState], Sequence[Event]]
Effect = Callable[[asyncpg.Connection, Sequence[Event], RenjaState], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An ``Idempotency-Key`` request: the key, who sent it, and a hash of the request body."""

    key: str
    principal: str
    request_hash: str


class IdempotencyMismatch(Exception):
    """The key was used before with a different request (HTTP 422)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    status_code: int
    body: Any
    replayed: bool
    events: tuple[Event, ...] = ()


def request_hash(payload: Any) -> str:
    """SHA-256 over the canonical JSON of a request body (for Idempotency-Key comparison)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


async def load_state(conn: asyncpg.Connection, renja_id: UUID, *, for_update: bool = False) -> tuple[RenjaState, int]:
    """The folded state of ``renja_id`` and its version (a fresh ``RenjaState`` at version 0 if unseen)."""
    row = await conn.fetchrow(
        "SELECT version, state::text AS state FROM process_state WHERE renja_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        renja_id,
    )
    if row is None:
        return RenjaState(), 0
    return RenjaState.model_validate_json(row["state"]), int(row["version"])


async def save_state(
    conn: asyncpg.Connection, renja_id: UUID, state: RenjaState, *, expected_version: int, new_version: int
) -> None:
    """Store ``state`` at ``new_version`` if the stored version is still ``expected_version``.

    Raises ``ConcurrencyConflict`` otherwise (someone else moved the Renja meanwhile).
    """
    data = state.model_dump_json()
    if expected_version == 0:
        done = await conn.fetchval(
            "INSERT INTO process_state (renja_id, version, state) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (renja_id) DO NOTHING RETURNING 1",
            renja_id,
            new_version,
            data,
        )
    else:
        done = await conn.fetchval(
            "UPDATE process_state SET version = $2, state = $3::jsonb, updated_at = now()"
            " WHERE renja_id = $1 AND version = $4 RETURNING 1",
            renja_id,
            new_version,
            data,
            expected_version,
        )
    if done is None:
        raise ConcurrencyConflict(renja_id, expected_version)


async def fold_consumed(conn: asyncpg.Connection, event: Event) -> RenjaState:
    """Fold one consumed event into the stored state (the consumer's transaction holds the inbox row).

    The row lock taken here serialises this fold with concurrent commands on the same Renja.
    """
    state, version = await load_state(conn, event.renja_id, for_update=True)
    new_state = evolve(state, event)
    await save_state(conn, event.renja_id, new_state, expected_version=version, new_version=version + 1)
    return new_state


async def execute(
    pool: asyncpg.Pool,
    *,
    service: str,
    renja_id: UUID,
    decide: Decision,
    respond: Callable[[Sequence[Event], RenjaState], Any],
    effect: Effect | None = None,
    idempotency: Idempotency | None = None,
    status_code: int = 201,
    traceparent: str | None = None,
    attempts: int = 5,
) -> CommandResult:
    """Run one command: decide on the current state and commit everything in one transaction.

    ``decide(state) -> events`` raises ``shared.sop.DomainError`` to refuse; ``effect(conn, events,
    new_state)`` writes the service's own tables; ``respond(events, new_state)`` builds the JSON-able body.
    With ``idempotency`` the first result is stored under the key and returned again for a retry (even by
    50 concurrent identical requests: the key's unique row makes them wait for the first commit).
    Retries ``ConcurrencyConflict`` up to ``attempts`` times, then raises it (HTTP 409).
    Raises ``IdempotencyMismatch`` when the key was used for a different request.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                if idempotency is not None:
                    replay = await _claim_key(conn, idempotency)
                    if replay is not None:
                        return replay
                state, version = await load_state(conn, renja_id)
                events = list(decide(state))
                new_state = state
                for event in events:
                    new_state = evolve(new_state, event)
                new_version = await append(
                    conn,
                    service=service,
                    stream_id=renja_id,
                    expected_version=version,
                    events=events,
                    traceparent=traceparent,
                )
                await save_state(conn, renja_id, new_state, expected_version=version, new_version=new_version)
                if events:
                    await conn.executemany(
                        "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        [(service, e.event_id, e.event_type) for e in events],
                    )
                if effect is not None:
                    await effect(conn, events, new_state)
                body = respond(events, new_state)
                if idempotency is not None:
                    await conn.execute(
                        "UPDATE idempotency_keys SET status_code = $3, response = $4::jsonb"
                        " WHERE principal = $1 AND key = $2",
                        idempotency.principal,
                        idempotency.key,
                        status_code,
                        json.dumps(body, default=str),
                    )
                return CommandResult(status_code, body, replayed=False, events=tuple(events))
        except ConcurrencyConflict:
            if attempt == attempts:
                raise
            log.info("command_retry_after_conflict", renja_id=str(renja_id), attempt=attempt)
    raise AssertionError("unreachable")


async def _claim_key(conn: asyncpg.Connection, idem: Idempotency) -> CommandResult | None:
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_keys (key, principal, request_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING 1",
        idem.key,
        idem.principal,
        idem.request_hash,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response::text AS response FROM idempotency_keys"
        " WHERE principal = $1 AND key = $2",
        idem.principal,
        idem.key,
    )
    if row["request_hash"] != idem.request_hash:
        raise IdempotencyMismatch(
            f"Idempotency-Key {idem.key!r} was already used for a different request; use a new key."
        )
    return CommandResult(int(row["status_code"]), json.loads(row["response"]), replayed=True)
