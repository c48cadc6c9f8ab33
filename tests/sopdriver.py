"""Drive a Renja through earlier SOP steps in integration tests by publishing valid events onto a topic.

A service under test only sees other services' events through Kafka. To test step 6 or step 8 you need
steps 1-5 or 1-7 on the log first. This helper builds those events with the real decider
(``shared.sop.decide``) — the real roles (the fictitious people of ``tests.servicekit.PEOPLE``), the
owning service as ``source``, the shipped SOP file — and publishes them, in order, keyed by Renja id
(CloudEvents binary mode via ``shared.cloudevents.to_kafka``).

Typical use::

    driven = await publish_until(settings, topic, step=7)        # steps 1..7 done, step 8 is due
    await wait_state(client, s, driven.renja_id, until=lambda st: st["due_step"] == 8)
    driven.state.akhir_version, driven.state.akhir_sha256          # what a paraf must name

    # later, continue the same Renja (e.g. a new Rancangan Akhir after a return):
    driven = await publish_until(settings, topic, step=7, driven=driven_after_return)

API (all public names):

- ``publish_until(settings, topic, *, step, renja_id=None, driven=None, options=None, start=None) -> Driven``:
  publish the events that complete every due step up to and including ``step`` (1..11). ``driven``
  continues an earlier Renja (its ``state`` may be updated with ``Driven.observe`` for events the
  service under test produced). Raises ``shared.sop.DomainError`` if the decider refuses.
- ``Driven``: ``renja_id``, folded ``state``, the ``events`` published so far, the ``clock`` of the next
  event; ``observe(event)`` folds an event produced elsewhere.
- ``DriveOptions``: knobs for the generated content (findings on the Rancangan Akhir, OPD, year...).
- ``build_step_event(state, step, *, renja_id, now, options, sop) -> Event``: one step's event (pure).
- ``publish(settings, topic, events)``: send events in order and wait for the broker's acks.
- ``actor(role) -> Actor``: the fictitious person of ``role`` (same identity ``servicekit.auth`` mints).

Events are timestamped from ``start`` (default: three hours ago, UTC) one minute apart, so a meeting
is never "in the future" and the audit's durations stay positive.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4, uuid5

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.cloudevents import to_kafka
from shared.events import Actor, Attendee, Event, ServiceName, UnitDelivery
from shared.kafka import start_producer
from shared.settings import ServiceSettings
from shared.sop import (
    Command,
    CommandContext,
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    Distribute,
    Initial,
    IssueArahan,
    IssueInstruksi,
    IssuePerintah,
    RecordMeeting,
    RenjaState,
    Sign,
    SopDefinition,
    decide,
    evolve,
    load_sop,
)
from tests.servicekit import PEOPLE

STEP_SOURCE: dict[int, ServiceName] = {
    1: "directive",
    2: "directive",
    3: "directive",
    4: "documents",
    5: "documents",
    6: "meetings",
    7: "documents",
    8: "approvals",
    9: "approvals",
    10: "approvals",
    11: "notifier",
}
"""The service that owns each step (DESIGN.md "Ownership"): the CloudEvents ``source`` of its event."""

_TEST_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"renja-sopdriver-test-key").digest())
"""A fixed throw-away key for step 10 events built here (never the agency's key)."""


def actor(role: str) -> Actor:
    """The fictitious person of ``role`` from ``tests.servicekit.PEOPLE`` (user id as ``mint_token`` sets it)."""
    name, nip = PEOPLE[role]
    return Actor(user_id=f"{role}:{nip}", name=name, nip=nip, role=role)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DriveOptions:
    """Content knobs for the generated events (money in whole rupiah)."""

    opd: str = "Bappeda Kota Bogor"
    fiscal_year: int | None = None  # default: a random year, so cycles never collide (one per OPD and year)
    rows_per_unit: int = 12
    pagu_per_unit: int = 1_250_000_000
    akhir_blocking_findings: int = 0
    akhir_warning_findings: int = 0


@dataclass
class Driven:
    """One driven Renja: its id, the state folded from every event known to the driver, and those events."""

    renja_id: UUID
    state: RenjaState
    events: list[Event] = field(default_factory=list)
    clock: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=3))

    def observe(self, event: Event) -> None:
        """Fold an event produced outside the driver (e.g. by the service under test) into ``state``."""
        self.state = evolve(self.state, event)
        self.events.append(event)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _command(
    state: RenjaState, step: int, renja_id: UUID, now: datetime, options: DriveOptions, sop: SopDefinition
) -> Command:
    """The command a diligent actor would send for ``step`` on ``state`` (content made up but consistent)."""
    units = len(sop.units)
    if step == 1:
        year = options.fiscal_year or 2100 - (renja_id.int % 90)
        return IssueArahan(opd=options.opd, fiscal_year=year, text="Susun Renja sesuai Renstra (uji)")
    if step == 2:
        return IssueInstruksi(text="Siapkan penyusunan Renja (uji)")
    if step == 3:
        return IssuePerintah(text="Kumpulkan data dari Sekretariat dan Bidang (uji)")
    if step == 4:
        return CompleteDataCollection(
            units=tuple(
                UnitDelivery(
                    unit=u.code,
                    rows=options.rows_per_unit,
                    rows_sha256=_sha(f"{renja_id}:{u.code}"),
                    pagu_total=options.pagu_per_unit,
                )
                for u in sop.units
            )
        )
    version = state.next_draft_version()
    if step == 5:
        return CreateRancanganAwal(
            version=version,
            content_sha256=_sha(f"{renja_id}:draft:{version}"),
            rows=options.rows_per_unit * units,
            pagu_total=options.pagu_per_unit * units,
        )
    if step == 6:
        assert state.awal_version is not None and state.awal_sha256 is not None
        meeting_id = uuid5(renja_id, "meeting")
        return RecordMeeting(
            meeting_id=meeting_id,
            draft_version=state.awal_version,
            draft_sha256=state.awal_sha256,
            held_at=now,
            place="Ruang Rapat (uji)",
            attendees=(Attendee(name=PEOPLE["staf"][0], nip=PEOPLE["staf"][1], unit="Sekretariat"),),
            points=("Pembahasan Rancangan Awal",),
            notulen_sha256=_sha(f"{meeting_id}:notulen"),
        )
    if step == 7:
        assert state.meeting_id is not None and state.notulen_sha256 is not None
        assert state.awal_version is not None
        return CreateRancanganAkhir(
            version=version,
            content_sha256=_sha(f"{renja_id}:draft:{version}"),
            based_on_version=state.akhir_version or state.awal_version,
            meeting_id=state.meeting_id,
            notulen_sha256=state.notulen_sha256,
            rows=options.rows_per_unit * units,
            pagu_total=options.pagu_per_unit * units,
            blocking_findings=options.akhir_blocking_findings,
            warning_findings=options.akhir_warning_findings,
        )
    assert state.akhir_version is not None and state.akhir_sha256 is not None
    if step in (8, 9):
        return Initial(step=8 if step == 8 else 9, version=state.akhir_version, content_sha256=state.akhir_sha256)
    if step == 10:
        public = _TEST_SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        signature = _TEST_SIGNING_KEY.sign(state.akhir_sha256.encode())
        return Sign(
            version=state.akhir_version,
            content_sha256=state.akhir_sha256,
            key_id="sopdriver-test",
            public_key_b64=base64.b64encode(public).decode(),
            signature_b64=base64.b64encode(signature).decode(),
        )
    if step == 11:
        assert state.signed_version is not None and state.signed_sha256 is not None
        return Distribute(
            distribution_id=uuid5(renja_id, "distribution"),
            version=state.signed_version,
            content_sha256=state.signed_sha256,
            archive_ref=f"ARSIP/{renja_id}",
            recipients=tuple(r.to_event_recipient() for r in sop.distribution),
        )
    raise ValueError(f"no SOP step {step}")


def build_step_event(
    state: RenjaState, step: int, *, renja_id: UUID, now: datetime, options: DriveOptions, sop: SopDefinition
) -> Event:
    """The one event that completes ``step`` on ``state``, decided by ``shared.sop.decide`` (pure).

    The actor is the step's role from the SOP file; ``source`` the step's owning service; ``now`` UTC.
    Raises ``shared.sop.DomainError`` when the step is not due (or any other rule refuses it).
    """
    role = sop.step(step).role
    ctx = CommandContext(
        renja_id=renja_id,
        actor=actor(role),
        source=STEP_SOURCE[step],
        event_id=uuid4(),
        correlation_id=state.correlation_id or renja_id,
        now=now,
    )
    (event,) = decide(state, _command(state, step, renja_id, now, options, sop), ctx, sop)
    return event


async def publish(settings: ServiceSettings, topic: str, events: list[Event]) -> None:
    """Send ``events`` to ``topic`` in order (one idempotent producer, each send awaited)."""
    producer = await start_producer(settings.kafka_bootstrap, client_id="sopdriver")
    try:
        for event in events:
            record = to_kafka(event)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def publish_until(
    settings: ServiceSettings,
    topic: str,
    *,
    step: int,
    renja_id: UUID | None = None,
    driven: Driven | None = None,
    options: DriveOptions | None = None,
    start: datetime | None = None,
    sop: SopDefinition | None = None,
) -> Driven:
    """Publish the events completing each due step up to and including ``step``; return the driven Renja.

    Starts a new Renja (``renja_id`` or a random one) unless ``driven`` continues an earlier one.
    ``step=5`` leaves step 6 due (the meeting), ``step=7`` leaves step 8 due (the first paraf).
    Nothing is published if the due step is already past ``step``.
    """
    sop = sop or load_sop(settings.sop_file)
    options = options or DriveOptions()
    if driven is None:
        rid = renja_id or uuid4()
        driven = Driven(renja_id=rid, state=RenjaState())
        if start is not None:
            driven.clock = start
    new: list[Event] = []
    while driven.state.due_step is not None and driven.state.due_step <= step:
        event = build_step_event(
            driven.state, driven.state.due_step, renja_id=driven.renja_id, now=driven.clock, options=options, sop=sop
        )
        driven.observe(event)
        new.append(event)
        driven.clock += timedelta(minutes=1)
    await publish(settings, topic, new)
    return driven


__all__ = [
    "STEP_SOURCE",
    "DriveOptions",
    "Driven",
    "actor",
    "build_step_event",
    "publish",
    "publish_until",
]
