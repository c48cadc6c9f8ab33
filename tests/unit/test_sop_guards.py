"""The public guards refuse exactly as ``decide`` does, so a service that checks early (before an upload
is parsed, before the agency key signs) answers with the decider's own error, message and due step."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import UUID

import pytest

from shared.events import Actor, Role
from shared.sop import (
    CommandContext,
    DomainError,
    Initial,
    OutOfOrder,
    RenjaClosed,
    RenjaState,
    StaleVersion,
    WrongRole,
    decide,
    ensure_current_version,
    ensure_due,
    ensure_parafs_complete,
    load_sop,
)

pytestmark = pytest.mark.unit

SOP = load_sop()
RENJA = UUID("5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716")
AKHIR = hashlib.sha256(b"akhir-2").hexdigest()
AT_STEP_8 = RenjaState(
    renja_id=RENJA,
    status="in_progress",
    completed_steps=(1, 2, 3, 4, 5, 6, 7),
    due_step=8,
    akhir_version=2,
    akhir_sha256=AKHIR,
)
CANCELLED = AT_STEP_8.model_copy(update={"status": "cancelled", "due_step": None})


def _decided(state: RenjaState, role: Role, command: Initial) -> DomainError:
    ctx = CommandContext(
        renja_id=RENJA,
        actor=Actor(user_id="u1", name="Someone", nip="197001011990031001", role=role),
        source="approvals",
        event_id=UUID(int=1),
        correlation_id=RENJA,
        now=datetime(2026, 1, 5, tzinfo=UTC),
    )
    with pytest.raises(DomainError) as info:
        decide(state, command, ctx, SOP)
    return info.value


def _guarded(state: RenjaState, role: Role, command: Initial) -> DomainError:
    with pytest.raises(DomainError) as info:
        step = ensure_due(state, command.step, role, SOP)
        ensure_current_version(state, step.number, command.version, command.content_sha256, SOP, "akhir")
    return info.value


@pytest.mark.parametrize(
    ("state", "role", "command", "error"),
    [
        (CANCELLED, "kasubag_pp", Initial(step=8, version=2, content_sha256=AKHIR), RenjaClosed),
        # authorisation before state: the wrong role is 403 even on a closed Renja
        (CANCELLED, "staf", Initial(step=8, version=2, content_sha256=AKHIR), WrongRole),
        (AT_STEP_8, "sekretaris", Initial(step=8, version=2, content_sha256=AKHIR), WrongRole),
        (AT_STEP_8, "sekretaris", Initial(step=9, version=2, content_sha256=AKHIR), OutOfOrder),
        (AT_STEP_8, "kasubag_pp", Initial(step=8, version=1, content_sha256=AKHIR), StaleVersion),
    ],
)  # fmt: skip
def test_a_guard_refuses_with_the_deciders_error(
    state: RenjaState, role: Role, command: Initial, error: type[DomainError]
) -> None:
    early, final = _guarded(state, role, command), _decided(state, role, command)
    assert type(early) is type(final) is error
    assert (early.message, early.due_step, early.due_role) == (final.message, final.due_step, final.due_role)


def test_ensure_due_returns_the_due_step_of_the_actors_role() -> None:
    assert ensure_due(AT_STEP_8, 8, "kasubag_pp", SOP) == SOP.step(8)


def test_a_signature_needs_every_paraf_of_the_file() -> None:
    one_paraf = AT_STEP_8.model_copy(update={"parafs": (8,)})
    with pytest.raises(OutOfOrder) as info:
        ensure_parafs_complete(one_paraf, 10, SOP)
    assert info.value.message == "Step 10 (Menandatangani Rancangan Akhir): both parafs (steps 8 and 9) are required."
    ensure_parafs_complete(one_paraf.model_copy(update={"parafs": (8, 9)}), 10, SOP)
