"""What the notifier does with events, inside the transaction that folds them (consumer) or appends them
(its own step-11 commands): queue webhook deliveries, keep the step-11 distribution projection, and queue
the "next actor" mail when a step becomes due. Nothing here talks to SMTP or HTTP: ``dispatch`` sends later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import structlog

from services.notifier import store, timers
from services.notifier.messages import next_actor_mail, timer_mail
from services.notifier.settings import NotifierSettings
from shared.command import Reactions
from shared.events import EVENT_TYPES, Distributed, Event, ReceiptRecorded, StepOverdue, StepReminderDue
from shared.sop import RenjaState, SopDefinition, next_step
from shared.workcalendar import WorkCalendar, calendar_from_sop

log = structlog.get_logger(__name__)


def reactions(settings: NotifierSettings, sop: SopDefinition) -> Reactions:
    """The same reaction for every event type, consumed or its own (``reactions`` of ``build_service_app``):
    every event may match a webhook subscription and may make a step due. "Now" is the settings' clock
    (real, or the simulated office clock: ``shared.clock``)."""
    clock = settings.clock()
    calendar = calendar_from_sop(sop)

    async def react(conn: asyncpg.Connection, event: Event, state: RenjaState) -> None:
        await apply_events(conn, [event], state, settings, sop, now=clock.now(), calendar=calendar)

    return {event_class: react for event_class in EVENT_TYPES.values()}


async def apply_events(
    conn: asyncpg.Connection,
    events: Sequence[Event],
    state: RenjaState,
    settings: NotifierSettings,
    sop: SopDefinition,
    *,
    now: datetime,
    calendar: WorkCalendar | None = None,
) -> None:
    """Webhooks, projection, step timers and notices for ``events`` (``state`` = after all of them).

    Runs for consumed events (consumer) AND for the notifier's own events (step 11 and the timers'
    notices, through the command unit); the consumer skips the latter because the command path already
    wrote their inbox rows. ``calendar``: the working-minute calendar of the timers (default: the SOP's).
    """
    for event in events:
        await store.queue_webhooks(conn, event)
        if isinstance(event, Distributed):
            await store.project_distribution(conn, event)
        elif isinstance(event, ReceiptRecorded):
            await store.project_receipt(conn, event)
        elif isinstance(event, StepReminderDue | StepOverdue):
            await timers.mark_fired(conn, event, fired_by=settings.instance_name, now=now)
            await queue_timer_mails(conn, event, state, settings, sop)
    if events:
        await notify_next_actor(conn, events[-1], state, settings, sop, now=now)
    if events and settings.timers_enabled:
        cal = calendar or calendar_from_sop(sop)
        await timers.plan(conn, events[-1], state, sop, cal, share=settings.reminder_share, now=now)


async def queue_timer_mails(
    conn: asyncpg.Connection,
    event: StepReminderDue | StepOverdue,
    state: RenjaState,
    settings: NotifierSettings,
    sop: SopDefinition,
) -> int:
    """Mail a timer notice: the reminder to the step's role, the overdue notice also to the role's superior
    (``timers.SUPERIOR``: staf → kasubag_pp → sekretaris → kepala_badan). Returns how many were queued."""
    roles = [event.role]
    if isinstance(event, StepOverdue) and event.escalated_to:
        roles.append(event.escalated_to)
    queued = 0
    for role in roles:
        person = settings.people.get(role)
        if person is None:
            log.warning("timer_notice_recipient_unknown", role=role, step=event.step)
            continue
        draft = timer_mail(state, event, sop, to_name=person.name, to_email=person.email, to_role=role)
        queued += await store.queue_mail(conn, event, draft, due_step=event.step)
    log.info("timer_notice_mails_queued", type=event.event_type, step=event.step, roles=roles, queued=queued)
    return queued


async def notify_next_actor(
    conn: asyncpg.Connection,
    event: Event,
    state: RenjaState,
    settings: NotifierSettings,
    sop: SopDefinition,
    *,
    now: datetime,
) -> bool:
    """Queue the "your step is due" mail if ``event`` made a (new) step due; True if a mail was queued.

    "New" means the (due step, due since) pair differs from the last one seen for this Renja, so a
    return to step 7 mails the staff again while a receipt (no change) mails nobody. A step that became
    due longer ago than ``notify_max_age_hours`` is not mailed: that is a replay of old history.
    """
    step = next_step(state, sop)
    key = (step.number if step else None, state.due_since if step else None)
    if await store.last_notice(conn, event.renja_id) == key:
        return False
    await store.save_notice(conn, event.renja_id, key[0], key[1], event.event_id)
    if step is None:
        return False
    if now - event.occurred_at > timedelta(hours=settings.notify_max_age_hours):
        log.info("next_actor_mail_skipped_old_event", step=step.number, occurred_at=event.occurred_at.isoformat())
        return False
    person = settings.people.get(step.role)
    if person is None:
        log.warning("next_actor_unknown", role=step.role, step=step.number)
        return False
    draft = next_actor_mail(state, step, sop, to_name=person.name, to_email=person.email, renja_id=event.renja_id)
    queued = await store.queue_mail(conn, event, draft, due_step=step.number)
    log.info("next_actor_mail_queued", step=step.number, role=step.role, queued=queued)
    return queued
