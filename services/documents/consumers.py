"""What the documents service does when other services' facts arrive (reactions keyed by event class,
passed to ``shared.app.build_service_app``): it keeps them for the steps and records that need them.

Each reaction runs in the consumer's transaction, after the SOP state was folded, and only stores the
fact: the records' PDFs are rendered on their first read (``DocumentsService.meeting_pdf`` /
``signed_pdf``), so the consumer never waits on a renderer.
"""

from __future__ import annotations

import asyncpg

from services.documents import store
from shared.command import Reactions
from shared.events import Event, MeetingHeld, Signed
from shared.runtime import Runtime
from shared.sop import RenjaState


async def on_meeting_held(conn: asyncpg.Connection, event: Event, state: RenjaState) -> None:
    """``MeetingHeld`` (step 6): keep the notulen's requested changes for step 7 (and the records' data)."""
    assert isinstance(event, MeetingHeld)  # keyed by class in ``reactions``
    await store.save_meeting(conn, event, state)


async def on_signed(conn: asyncpg.Connection, event: Event, _: RenjaState) -> None:
    """``Signed`` (step 10): keep the signature; the signed PDF is rendered on its first read."""
    assert isinstance(event, Signed)  # keyed by class in ``reactions``
    await store.save_signature(conn, event)


def reactions(_: Runtime) -> Reactions:
    """The documents service's reactions, by event class."""
    return {MeetingHeld: on_meeting_held, Signed: on_signed}
