"""The approvals service's use cases: SOP steps 8-9 (*paraf*), 10 (the agency's signature), returns to
step 7, and the reads (recorded approvals, the public key, signature verification).

Every command goes through the service's ``CommandUnit`` (one transaction: decider, event + outbox, state,
the ``approval_records`` row via ``store.record_approvals``, Idempotency-Key). The ``Signer`` (injected by
``main.create_app``) signs only after ``domain.check_signable`` passed on the current state; the decider
verifies the signature again before ``Signed`` is appended. No HTTP here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from services.approvals.domain import check_signable, review_step
from services.approvals.schemas import (
    ApprovalPublic,
    ApprovalResult,
    KeyPublic,
    ParafCreate,
    ReturnCreate,
    SignCreate,
    VerifyCreate,
    VerifyPublic,
)
from services.approvals.signing import ALGORITHM, Signer, public_key_pem, verify
from services.approvals.store import approval_of, list_approvals, record_approvals, signatures_matching
from shared.command import CommandCall, CommandResult, CommandUnit, UnknownRenja
from shared.events import Event
from shared.process import load_state
from shared.sop import Initial, RenjaState, ReturnDraft, Sign, next_step
from shared.web.ops import StepPublic


class ApprovalsService:
    """Steps 8-10 and returns (each command answers 201 with an ``ApprovalResult`` body), and the reads.

    ``pool`` returns the service's connection pool (it exists only once the app has started); ``signer``
    is the agency's signing facility (a local Ed25519 key, or e.g. a BSrE client).
    """

    def __init__(self, commands: CommandUnit, pool: Callable[[], asyncpg.Pool], signer: Signer) -> None:
        self._commands = commands
        self._pool = pool
        self._signer = signer

    def result(self, events: Sequence[Event], state: RenjaState) -> dict[str, Any]:
        """The JSON body of a paraf, signature or return: ``ApprovalResult`` of its one recorded event."""
        (record,) = [r for r in (approval_of(e) for e in events) if r is not None]
        step = StepPublic.of(next_step(state, self._commands.sop))
        return ApprovalResult(renja_id=record.renja_id, record=record, next_step=step).model_dump(mode="json")

    async def paraf(self, call: CommandCall, body: ParafCreate) -> CommandResult:
        """Initial the exact Rancangan Akhir at the step of ``call.actor``'s role (kasubag_pp 8, sekretaris 9).

        Raises (409) ``OutOfOrder``, ``StaleVersion``, or the decider's refusal for unacknowledged findings.
        """
        step = review_step(call.actor.role, self._commands.sop)
        assert step in self._commands.sop.plan.paraf_steps  # the route admits only paraf roles
        command = Initial(
            step=step,
            version=body.version,
            content_sha256=body.content_sha256,
            warnings_acknowledged=body.warnings_acknowledged,
            note=body.note,
        )
        return await self._commands.run(call, command, respond=self.result, effect=record_approvals)

    async def sign(self, call: CommandCall, body: SignCreate) -> CommandResult:
        """Sign the UTF-8 bytes of ``body.content_sha256`` (Ed25519) and record it as SOP step 10.

        A retry under a used Idempotency-Key gets the first answer (or ``IdempotencyMismatch``, 422) without
        any check; otherwise ``check_signable`` refuses (409) before the key signs anything.
        """
        async with self._pool().acquire() as conn:
            state, _ = await load_state(conn, call.renja_id)
        # The state is read before the key: a first request committing in between is then seen as a replay
        # here, and one committing later finds this request's check passed on the state it also started from.
        replay = await self._commands.replayed(call)
        if replay is not None:
            return replay
        # The key signs only what the decider would accept now; the decider re-checks in the transaction.
        check_signable(state, self._commands.sop, call.actor.role, body.version, body.content_sha256)
        signature = self._signer.sign(body.content_sha256.encode("utf-8"))
        command = Sign(
            version=body.version,
            content_sha256=body.content_sha256,
            key_id=self._signer.key_id,
            public_key_b64=self._signer.public_key_b64(),
            signature_b64=base64.b64encode(signature).decode(),
        )
        return await self._commands.run(call, command, respond=self.result, effect=record_approvals)

    async def return_draft(self, call: CommandCall, body: ReturnCreate) -> CommandResult:
        """Send the draft back to step 7 with notes, at the step of ``call.actor``'s role (8, 9 or 10)."""
        command = ReturnDraft(
            at_step=review_step(call.actor.role, self._commands.sop),
            version=body.version,
            content_sha256=body.content_sha256,
            notes=body.notes,
        )
        return await self._commands.run(call, command, respond=self.result, effect=record_approvals)

    async def approvals(self, renja_id: UUID) -> list[ApprovalPublic]:
        """A Renja's parafs, signatures and returns, oldest first. Raises ``UnknownRenja`` (404) for a Renja
        this service has not seen."""
        async with self._pool().acquire() as conn:
            _state, version = await load_state(conn, renja_id)
            if version == 0:
                raise UnknownRenja(f"Renja {renja_id} is not known to this service (yet).")
            return await list_approvals(conn, renja_id)

    def public_key(self) -> KeyPublic:
        """The signer's public key, raw base64 and PEM, and what exactly is signed."""
        raw = self._signer.public_key_b64()
        return KeyPublic(
            key_id=self._signer.key_id,
            algorithm=ALGORITHM,
            public_key_b64=raw,
            public_key_pem=public_key_pem(raw),
            signed_data="UTF-8 bytes of content_sha256 (64 lowercase hex characters)",
        )

    async def verify(self, body: VerifyCreate) -> VerifyPublic:
        """Whether the pair verifies under the signer's key, and the recorded signings with this exact pair."""
        valid = verify(self._signer.public_key_b64(), body.content_sha256, body.signature_b64)
        async with self._pool().acquire() as conn:
            recorded = await signatures_matching(conn, body.content_sha256, body.signature_b64)
        return VerifyPublic(valid=valid, key_id=self._signer.key_id, algorithm=ALGORITHM, recorded=recorded)
