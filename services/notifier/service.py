"""The notifier's use cases: SOP step 11 (distribute the signed Renja, record receipts — by the staff or by
the recipient through their link —, the *bukti distribusi*) and webhook subscriptions. No HTTP here:
routes hand in a ``CommandCall`` (or a way to make one) and get a ``CommandResult`` or a public model back;
refusals are ``DomainError`` subclasses carrying their HTTP status (``domain``).

Step-11 commands run through the service's ``CommandUnit`` (one transaction with the events, the outbox,
the reactions of ``consumers`` and the effect below); mails and webhook deliveries are only queued here and
sent by ``dispatch``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid5

import asyncpg

from services.notifier import signing, store, timers
from services.notifier.domain import InvalidRequest, NotFound, received_at, token_sha256
from services.notifier.messages import archive_ref, distribution_mail
from services.notifier.scheduler import TimerScheduler
from services.notifier.schemas import (
    DistributionCreate,
    DistributionCreated,
    DistributionPublic,
    ReceiptConfirm,
    ReceiptCreate,
    ReceiptTokenPublic,
    RecipientPublic,
    TimerPublic,
    TimersHealth,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPublic,
    WebhookPublic,
)
from services.notifier.settings import NotifierSettings
from services.notifier.targets import ForbiddenTarget, check_webhook_target
from shared.command import CommandCall, CommandResult, CommandUnit, Effect
from shared.events import EVENT_TYPES, Actor, Distributed, Event
from shared.process import load_state
from shared.sop import Distribute, RecordReceipt, RenjaState, SopDefinition, cycle_distribution

CallFor = Callable[[Actor, UUID], Awaitable[CommandCall]]
"""Makes the ``CommandCall`` of the current request for an actor and a Renja known only inside a use case
(a receipt link names both): ``shared.web.commands.command_call`` bound to the request."""


def _events(events: Sequence[Event]) -> list[dict[str, str]]:
    return [{"event_id": str(e.event_id), "type": e.event_type} for e in events]


class NotifierService:
    """Step 11 and webhook use cases over the service's settings, SOP, pool and ``CommandUnit``.

    Built once in ``main.create_app``; ``pool`` returns the connection pool (503 before the app started).
    """

    def __init__(
        self,
        settings: NotifierSettings,
        sop: SopDefinition,
        pool: Callable[[], asyncpg.Pool],
        commands: CommandUnit,
    ) -> None:
        self._settings = settings
        self._sop = sop
        self._pool = pool
        self._commands = commands
        self.scheduler: TimerScheduler | None = None
        """The step-timer scheduler of this process (set by ``main`` at start-up)."""

    # -- step 11: distribution and receipts ---------------------------------------------------------------

    async def distribute(self, call: CommandCall, body: DistributionCreate) -> CommandResult:
        """Distribute the signed version to the cycle's list (its OPD's, from the identity snapshot; the SOP
        file's for a cycle opened before the registry) plus ``body.additional_recipients`` (201).

        Raises ``NotFound`` (404) for a Renja unknown here; the decider refuses (409) unless step 11 is due
        and the version and SHA-256 are the signed ones.
        """
        state = await self._known_state(call.renja_id)
        recipients = [*cycle_distribution(state, self._sop), *body.additional_recipients]
        command = Distribute(
            # Derived, not random: a retried request (Idempotency-Key) must name the same command, and a Renja
            # has one distribution of its signed version.
            distribution_id=uuid5(call.renja_id, f"distribution:{body.version}:{body.content_sha256}"),
            version=body.version,
            content_sha256=body.content_sha256,
            archive_ref=archive_ref(state.opd, state.fiscal_year, body.content_sha256),
            recipients=tuple(recipients),
        )
        tokens = {r.name: secrets.token_urlsafe(24) for r in recipients}

        def respond(events: Sequence[Event], _: RenjaState) -> dict[str, Any]:
            return DistributionCreated(
                renja_id=call.renja_id,
                distribution_id=command.distribution_id,
                archive_ref=command.archive_ref,
                recipients=[r.name for r in recipients],
                events=_events(events),
            ).model_dump(mode="json")

        return await self._commands.run(call, command, respond=respond, effect=self._distribution_effect(tokens))

    async def record_receipt(self, call: CommandCall, body: ReceiptCreate) -> CommandResult:
        """One ``ReceiptRecorded`` per recipient, recorded by the staff (201; a second → 409 ``already_recorded``).

        Raises ``NotFound`` (404) for an unknown Renja, ``InvalidRequest`` (422) for a future ``received_at``.
        """
        state = await self._known_state(call.renja_id)
        command = RecordReceipt(
            # Before distribution there is no id; the decider then answers 409 "not distributed yet".
            distribution_id=state.distribution_id or UUID(int=0),
            recipient=body.recipient,
            received_at=received_at(body.received_at, self._commands.clock()),
            received_by=body.received_by,
        )
        return await self._commands.run(call, command)

    async def confirm_receipt(self, token: str, body: ReceiptConfirm, call_for: CallFor) -> CommandResult:
        """A recipient's own receipt through their link (201): the event's actor is ``system`` on their behalf,
        named after ``received_by`` (the decider accepts receipts from the step's role or ``system``).

        Raises ``NotFound`` (404) for an invalid token, ``InvalidRequest`` (422) for a future ``received_at``.
        """
        holder = await self._token_holder(token)
        now = self._commands.clock()
        actor = Actor(
            user_id=f"receipt-link:{holder.distribution_id}:{token_sha256(token)[:16]}",
            name=body.received_by,
            nip="-",
            role="system",
        )
        command = RecordReceipt(
            distribution_id=holder.distribution_id,
            recipient=holder.name,
            received_at=received_at(body.received_at, now),
            received_by=body.received_by,
        )
        return await self._commands.run(await call_for(actor, holder.renja_id), command)

    async def receipt_link(self, token: str) -> ReceiptTokenPublic:
        """What a receipt link acknowledges; raises ``NotFound`` (404) for an invalid token."""
        holder = await self._token_holder(token)
        return ReceiptTokenPublic(
            renja_id=holder.renja_id,
            distribution_id=holder.distribution_id,
            recipient=holder.name,
            received_at=holder.received_at,
        )

    async def distribution(self, renja_id: UUID) -> DistributionPublic:
        """The *bukti distribusi*; raises ``NotFound`` (404) before step 11 was done."""
        async with self._pool().acquire() as conn:
            found = await store.distribution_of(conn, renja_id)
        if found is None:
            raise NotFound(f"Renja {renja_id} has not been distributed (step 11) yet.")
        head, rows = found
        recipients = [RecipientPublic(**r, received=r["received_at"] is not None) for r in rows]
        return DistributionPublic(
            renja_id=renja_id,
            distribution_id=head["distribution_id"],
            version=head["version"],
            content_sha256=head["content_sha256"],
            archive_ref=head["archive_ref"],
            distributed_by=head["distributed_by"],
            distributed_at=head["distributed_at"],
            complete=all(r.received for r in recipients),
            recipients=recipients,
        )

    async def _known_state(self, renja_id: UUID) -> RenjaState:
        async with self._pool().acquire() as conn:
            state, version = await load_state(conn, renja_id)
        if version == 0:
            raise NotFound(f"Renja {renja_id} is not known to the notifier (yet).")
        return state

    async def _token_holder(self, token: str) -> store.TokenHolder:
        async with self._pool().acquire() as conn:
            holder = await store.find_token(conn, token_sha256(token))
        if holder is None:
            raise NotFound("This receipt link is not valid; use the link from your distribution mail.")
        return holder

    def _distribution_effect(self, tokens: dict[str, str]) -> Effect:
        """The step-11 command's effect: mail each recipient with an e-mail address their own receipt link
        (token → ``{public_base_url}/receipts/{token}``) and keep the token's hash on their row.

        ``tokens`` maps recipient name → a fresh random token (made once per request, so retries of the
        transaction reuse the same tokens).
        """

        async def effect(conn: asyncpg.Connection, events: Sequence[Event], state: RenjaState) -> None:
            # The projection and webhooks of ``events`` were written by the reactions (``consumers``; the
            # command unit runs them before the effect); here only what needs the fresh tokens.
            for event in events:
                if not isinstance(event, Distributed):
                    continue
                for recipient in event.recipients:
                    token = tokens[recipient.name]
                    mail_to = None
                    if recipient.email:
                        url = f"{self._settings.public_base_url.rstrip('/')}/receipts/{token}"
                        draft = distribution_mail(state, event, recipient, receipt_url=url, sop=self._sop)
                        await store.queue_mail(conn, event, draft)
                        mail_to = draft.to
                    await store.attach_receipt_token(
                        conn, event.distribution_id, recipient.name, token_sha256(token), mail_to
                    )

        return effect

    # -- webhooks -----------------------------------------------------------------------------------------

    async def create_webhook(self, actor: Actor, body: WebhookCreate) -> WebhookCreated:
        """Subscribe ``body.url``; the answer holds the signing secret (shown once).

        Raises ``InvalidRequest`` (422) for a URL or event type ``_check_webhook`` refuses.
        """
        await self._check_webhook(body)
        hook = WebhookCreated(
            id=self._commands.new_id(),
            url=body.url,
            event_types=sorted(set(body.event_types)),
            description=body.description,
            created_by=f"{actor.name} ({actor.role})",
            created_at=self._commands.clock(),
            secret=signing.make_secret(secrets.token_bytes(signing.SECRET_BYTES)),
        )
        async with self._pool().acquire() as conn:
            await store.insert_subscription(conn, hook)
        return hook

    async def webhooks(self) -> list[WebhookPublic]:
        """The live subscriptions, oldest first, without secrets."""
        async with self._pool().acquire() as conn:
            return await store.active_subscriptions(conn)

    async def delete_webhook(self, webhook_id: UUID) -> None:
        """Unsubscribe; pending deliveries fail, history stays. Raises ``NotFound`` (404) unless it is live."""
        async with self._pool().acquire() as conn, conn.transaction():
            if not await store.delete_subscription(conn, webhook_id):
                raise NotFound(f"No active webhook {webhook_id}.")

    async def deliveries(self, webhook_id: UUID) -> list[WebhookDeliveryPublic]:
        """The deliveries of one subscription; raises ``NotFound`` (404) for an id that never existed."""
        async with self._pool().acquire() as conn:
            found = await store.deliveries_of(conn, webhook_id)
        if found is None:
            raise NotFound(f"No webhook {webhook_id}.")
        return found

    async def _check_webhook(self, body: WebhookCreate) -> None:
        """422 unless ``body.url`` is an absolute http(s) URL (https only in production) whose host is not
        internal in production (``targets.check_webhook_target``), and every event type is known."""
        production = self._settings.environment == "production"
        parts = urlsplit(body.url)
        allowed = ("https",) if production else ("http", "https")
        if parts.scheme not in allowed or not parts.hostname:
            raise InvalidRequest(f"url must be an absolute {' or '.join(allowed)} URL, e.g. https://host/hook.")
        try:
            await check_webhook_target(body.url, production=production)
        except ForbiddenTarget as exc:
            raise InvalidRequest(str(exc)) from exc
        unknown = sorted(t for t in set(body.event_types) if t != "*" and t not in EVENT_TYPES)
        if unknown:
            raise InvalidRequest(
                f"Unknown event type(s) {', '.join(unknown)}; use '*' or some of: {', '.join(sorted(EVENT_TYPES))}."
            )

    # -- step timers --------------------------------------------------------------------------------------

    async def timers(self, *, fired: bool, limit: int) -> list[TimerPublic]:
        """Pending timers (earliest first) or fired notices (latest first)."""
        async with self._pool().acquire() as conn:
            rows = await timers.listing(conn, fired=fired, limit=limit)
        return [TimerPublic.of(dict(r)) for r in rows]

    async def timers_health(self) -> TimersHealth:
        """Pending and late-to-fire timers now (read from the database), and whether this instance leads."""
        scheduler = self.scheduler
        clock = self._settings.clock()
        late_after = self._settings.timer_late_seconds
        async with self._pool().acquire() as conn:
            pending, late = await timers.counts(
                conn, clock.now(), scheduler.late_after if scheduler else timedelta(seconds=late_after)
            )
        return TimersHealth(
            healthy=late == 0,
            leader=bool(scheduler and scheduler.is_leader),
            pending=pending,
            late=late,
            late_after_seconds=late_after,
            now=clock.now(),
        )
