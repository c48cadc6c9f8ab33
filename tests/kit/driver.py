"""One SOP driver: the actions of a Renja cycle as one table, run in-process or over HTTP.

Each row of the table (``STEPS`` for the eleven steps, ``RETURNS`` for a return at a review step,
``CANCEL``, ``RECEIPT``) says who acts (a role; ``tests/unit/test_kit.py`` checks them against the SOP
file), which service owns the action (the CloudEvents ``source`` in-process, the host over HTTP), the
command it puts to the decider, and the request(s) it makes to that service. Two runners read the rows:

- ``Cycle`` — in-process, through ``shared.sop.decide`` (pure): the events of a cycle for the decider's
  and the audit's tests and the benchmarks (``cycle_events``), or published onto a test topic before the
  service under test takes over (``publish_until``);
- ``HttpCycle`` — over HTTP against running services as the kit's people (``Http``), for ``renja demo``
  and the e2e tests. It waits, before an action, until the acting service has consumed (through Kafka)
  the events that make the step due there.

Typical use::

    driven = await publish_until(settings, topic, step=7)   # steps 1..7 on the topic, step 8 is due
    driven.state.akhir_version, driven.state.akhir_sha256    # what a paraf must name
    events = cycle_events(sop, renja_id, start=START, returns=(9,))   # a whole cycle, returned once at 9

    cycle = HttpCycle(http, sop, opd="OPD Uji", year=2031)
    for row in (STEPS[1], STEPS[2], CANCEL):
        await cycle.run(row)

In-process events are timestamped from the cycle's ``clock`` (default: three hours ago, UTC), ``gap``
apart, so a meeting is never "in the future" and the audit's durations stay positive.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.documents.intake import Row
from shared.events import Attendee, Event, Role, ServiceName, UnitDelivery
from shared.settings import ServiceSettings
from shared.sop import (
    CancelRenja,
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
    RecordReceipt,
    RenjaState,
    ReturnDraft,
    Sign,
    SopDefinition,
    decide,
    evolve,
    load_sop,
)
from tests.kit.kafkatools import publish
from tests.kit.people import BIDANG_HEADS, PEOPLE, Person, actor
from tests.kit.rows import rollup_corrections, rows_by_unit, rows_csv, zero_pagu

TEST_KEY_ID = "sopdriver-test"
"""The key id of the step-10 signatures made in-process (a test key, never the agency's)."""

_TEST_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"renja-sopdriver-test-key").digest())


class DriveError(RuntimeError):
    """An action over HTTP failed; the message names the service, the call and its answer."""


@dataclass(frozen=True)
class Step:
    """One row of the cycle table: an action, who takes it, and what it sends in-process and over HTTP.

    ``number`` is the SOP step the action completes or acts at (None for a cancellation or a receipt).
    """

    number: int | None
    role: Role
    service: ServiceName
    command: Callable[[Cycle], Command]
    request: Callable[[HttpCycle, Step], Awaitable[None]]


# --- in-process ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveOptions:
    """Content knobs for the in-process commands (money in whole rupiah)."""

    opd: str = "Bappeda Kota Bogor"
    fiscal_year: int | None = None  # default: one derived from the Renja id, so cycles never collide
    rows_per_unit: int = 12
    pagu_per_unit: int = 1_250_000_000
    akhir_blocking_findings: int = 0
    akhir_warning_findings: int = 0


@dataclass
class Cycle:
    """One Renja driven command by command through ``shared.sop.decide``: its state, log and clock.

    ``chained`` gives events log-like ids (``uuid5(renja_id, "event-<n>")``) and causation (the previous
    event); otherwise ids are random and there is no causation. ``clock`` (UTC) moves ``gap`` per event.
    """

    sop: SopDefinition
    renja_id: UUID = field(default_factory=uuid4)
    options: DriveOptions = field(default_factory=DriveOptions)
    clock: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=3))
    gap: timedelta = timedelta(minutes=1)
    chained: bool = False
    state: RenjaState = field(default_factory=RenjaState)
    events: list[Event] = field(default_factory=list)

    def observe(self, event: Event) -> None:
        """Fold an event produced outside the driver (e.g. by the service under test) into ``state``."""
        self.state = evolve(self.state, event)
        self.events.append(event)

    def run(self, row: Step) -> list[Event]:
        """Decide ``row``'s command as its role's person and keep the events it yields.

        Raises ``shared.sop.DomainError`` if the decider refuses (the step is not due, ...).
        """
        previous = self.events[-1].event_id if self.chained and self.events else None
        ctx = CommandContext(
            renja_id=self.renja_id,
            actor=actor(row.role),
            source=row.service,
            event_id=uuid5(self.renja_id, f"event-{len(self.events)}") if self.chained else uuid4(),
            correlation_id=self.state.correlation_id or self.renja_id,
            causation_id=previous,
            now=self.clock,
        )
        new = decide(self.state, row.command(self), ctx, self.sop)
        for event in new:
            self.observe(event)
            self.clock += self.gap
        return new

    def run_until(self, step: int) -> list[Event]:
        """Complete every due step up to and including ``step``; the new events (none if already past)."""
        new: list[Event] = []
        while self.state.due_step is not None and self.state.due_step <= step:
            new.extend(self.run(STEPS[self.state.due_step]))
        return new


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _akhir(c: Cycle) -> tuple[int, str]:
    assert c.state.akhir_version is not None and c.state.akhir_sha256 is not None, "no Rancangan Akhir yet"
    return c.state.akhir_version, c.state.akhir_sha256


def _arahan(c: Cycle) -> Command:
    year = c.options.fiscal_year or 2100 - (c.renja_id.int % 90)
    return IssueArahan(opd=c.options.opd, fiscal_year=year, text=f"Susun Renja {year} sesuai Renstra (uji)")


def _collected(c: Cycle) -> Command:
    o = c.options
    return CompleteDataCollection(
        units=tuple(
            UnitDelivery(
                unit=u, rows=o.rows_per_unit, rows_sha256=_sha(f"{c.renja_id}:{u}"), pagu_total=o.pagu_per_unit
            )
            for u in c.sop.unit_codes
        )
    )


def _awal(c: Cycle) -> Command:
    version, units = c.state.next_draft_version(), len(c.sop.units)
    return CreateRancanganAwal(
        version=version,
        content_sha256=_sha(f"{c.renja_id}:draft:{version}"),
        rows=c.options.rows_per_unit * units,
        pagu_total=c.options.pagu_per_unit * units,
    )


def _meeting(c: Cycle) -> Command:
    s = c.state
    assert s.awal_version is not None and s.awal_sha256 is not None and s.awal_created_at is not None
    meeting_id = uuid5(c.renja_id, "meeting")
    staf = PEOPLE["staf"]
    return RecordMeeting(
        meeting_id=meeting_id,
        draft_version=s.awal_version,
        draft_sha256=s.awal_sha256,
        held_at=s.awal_created_at,  # the earliest moment the decider accepts: a meeting cannot predate its draft
        place="Ruang Rapat (uji)",
        attendees=(Attendee(name=staf.name, nip=staf.nip, unit="Sekretariat"),),
        points=("Pembahasan Rancangan Awal",),
        notulen_sha256=_sha(f"{meeting_id}:notulen"),
    )


def _akhir_draft(c: Cycle) -> Command:
    s, o = c.state, c.options
    assert s.meeting_id is not None and s.notulen_sha256 is not None and s.awal_version is not None
    version, units = s.next_draft_version(), len(c.sop.units)
    return CreateRancanganAkhir(
        version=version,
        content_sha256=_sha(f"{c.renja_id}:draft:{version}"),
        based_on_version=s.akhir_version or s.awal_version,
        meeting_id=s.meeting_id,
        notulen_sha256=s.notulen_sha256,
        rows=o.rows_per_unit * units,
        pagu_total=o.pagu_per_unit * units,
        blocking_findings=o.akhir_blocking_findings,
        warning_findings=o.akhir_warning_findings,
    )


def _initial(step: int) -> Callable[[Cycle], Command]:
    def command(c: Cycle) -> Command:
        version, sha = _akhir(c)
        return Initial(step=step, version=version, content_sha256=sha)  # type: ignore[arg-type]

    return command


def _sign(c: Cycle) -> Command:
    version, sha = _akhir(c)
    public = _TEST_SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return Sign(
        version=version,
        content_sha256=sha,
        key_id=TEST_KEY_ID,
        public_key_b64=base64.b64encode(public).decode(),
        signature_b64=base64.b64encode(_TEST_SIGNING_KEY.sign(sha.encode())).decode(),
    )


def _distribute(c: Cycle) -> Command:
    s = c.state
    assert s.signed_version is not None and s.signed_sha256 is not None, "not signed yet"
    return Distribute(
        distribution_id=uuid5(c.renja_id, "distribution"),
        version=s.signed_version,
        content_sha256=s.signed_sha256,
        archive_ref=f"ARSIP/RENJA/{s.fiscal_year}/{str(c.renja_id)[:8]}",
        recipients=tuple(r.to_event_recipient() for r in c.sop.distribution),
    )


def _return_at(step: int) -> Callable[[Cycle], Command]:
    def command(c: Cycle) -> Command:
        version, sha = _akhir(c)
        return ReturnDraft(at_step=step, version=version, content_sha256=sha, notes=f"Perbaiki (langkah {step})")  # type: ignore[arg-type]

    return command


def _cancel(c: Cycle) -> Command:
    return CancelRenja(reason=f"Dibatalkan sebelum langkah {c.state.due_step} (uji)")


def _receipt(c: Cycle) -> Command:
    s = c.state
    assert s.distribution_id is not None, "not distributed yet"
    (recipient, *_) = [r for r in s.recipients if r not in s.receipts]
    return RecordReceipt(distribution_id=s.distribution_id, recipient=recipient, received_at=c.clock)


# --- over HTTP ----------------------------------------------------------------------------------------


def _quiet(_what: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


class Http:
    """Calls the services as the kit's people; every answer is checked and a failure says what happened.

    ``urls(service)`` is a service's base URL; ``tokens`` a bearer token per role (``tokens.everyone``);
    ``progress(what)`` a context shown while waiting (a spinner in the demo, nothing by default).
    """

    def __init__(
        self,
        urls: Callable[[str], str],
        tokens: Mapping[Role, str],
        *,
        progress: Callable[[str], AbstractContextManager[object]] = _quiet,
        timeout_s: float = 120.0,
    ) -> None:
        self.urls = urls
        self.tokens = dict(tokens)
        self.progress = progress
        self.client = httpx.AsyncClient(timeout=timeout_s)
        self.last: httpx.Response | None = None
        """The answer to the latest ``call`` (tests assert on its status)."""

    async def close(self) -> None:
        await self.client.aclose()

    def url(self, service: str, path: str) -> str:
        return self.urls(service) + path

    async def call(
        self, service: str, method: str, path: str, role: Role, *, expect: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> Any:
        """Send one request as ``role``; the JSON answer (bytes if not JSON). Raises ``DriveError`` if unexpected."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kwargs.pop("headers", {})}
        r = await self.client.request(method, self.url(service, path), headers=headers, **kwargs)
        self.last = r
        if r.status_code not in expect:
            raise DriveError(f"{service} {method} {path} as {role}: HTTP {r.status_code}: {r.text[:800]}")
        ctype = r.headers.get("content-type", "")
        return r.json() if ctype.startswith("application/json") else r.content

    async def wait(
        self, service: str, renja_id: str, what: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 120.0
    ) -> dict[str, Any]:
        """Poll ``GET /renja/{id}/state`` of ``service`` until ``until(state)`` (events travel via Kafka)."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        with self.progress(f"{service}: waiting for {what}"):
            while time.monotonic() < deadline:
                r = await self.client.get(
                    self.url(service, f"/renja/{renja_id}/state"),
                    headers={"Authorization": f"Bearer {self.tokens['auditor']}"},
                )
                if r.status_code == 200:
                    last = r.json()
                    if until(last):
                        return dict(last)
                await asyncio.sleep(0.2)
        raise DriveError(f"{service} never reached: {what} (last state: {json.dumps(last)[:600]})")

    async def wait_due(self, service: str, renja_id: str, step: int) -> dict[str, Any]:
        """Wait until ``service`` sees ``step`` as the due step of ``renja_id``."""
        return await self.wait(
            service, renja_id, f"step {step} due", lambda s: (s.get("next_step") or {}).get("number") == step
        )


def _silent(_step: int | None, _text: str) -> None:
    return None


@dataclass
class HttpCycle:
    """One Renja driven over HTTP: the content it carries and what the services answered so far.

    ``rows`` are delivered at step 4 (``rows.load_rows()`` in the demo); ``report(step, text)`` hears a line
    per thing done; ``key_prefix`` names the arahan's Idempotency-Key (``<prefix>-arahan-<year>``).
    """

    http: Http
    sop: SopDefinition
    opd: str
    year: int
    rows: list[Row] = field(default_factory=list)
    report: Callable[[int | None, str], None] = _silent
    key_prefix: str = "demo"
    cancel_reason: str = "Digabung dengan siklus lain"
    renja_id: str = ""
    awal: dict[str, Any] = field(default_factory=dict)
    awal_blocking: int = 0
    akhir: dict[str, Any] = field(default_factory=dict)
    return_changes: list[dict[str, str]] | None = None
    warnings: dict[int, list[str]] = field(default_factory=dict)
    receipts: list[str] = field(default_factory=list)
    acted_at: ServiceName | None = None

    async def run(self, row: Step) -> None:
        """Take ``row``'s action; first wait for the step to be due at its service if another service acted last.

        Raises ``DriveError`` if a service refuses or never sees the step due.
        """
        if row.number is not None and self.acted_at not in (None, row.service):
            await self.http.wait_due(row.service, self.renja_id, row.number)
        await row.request(self, row)
        self.acted_at = row.service

    async def send(self, row: Step, method: str, path: str, **kwargs: Any) -> Any:
        """``row``'s role calls ``row``'s service at ``/renja/<id><path>``."""
        return await self.http.call(row.service, method, f"/renja/{self.renja_id}{path}", row.role, **kwargs)

    def draft(self, draft: dict[str, Any]) -> dict[str, Any]:
        """The body naming ``draft`` exactly (version and content hash)."""
        return {"version": draft["version"], "content_sha256": draft["content_sha256"]}

    def addressee(self, row: Step) -> str:
        """The person of the role that takes the step after ``row``'s (to whom a directive is addressed)."""
        assert row.number is not None
        return PEOPLE[self.sop.step(row.number + 1).role].name


async def _post_arahan(c: HttpCycle, row: Step) -> None:
    body = {
        "opd": c.opd,
        "fiscal_year": c.year,
        "addressee_name": c.addressee(row),
        "text": f"Segera susun Rencana Kerja {c.opd} tahun {c.year} sesuai Renstra dan SOP Penyusunan Renja.",
    }
    headers = {"Idempotency-Key": f"{c.key_prefix}-arahan-{c.year}"}
    r = await c.http.call(row.service, "POST", "/renja", row.role, json=body, headers=headers)
    c.renja_id = r["renja_id"]
    c.report(row.number, f"arahan issued; Renja id {c.renja_id}")


def _post_directive(level: str, text: str) -> Callable[[HttpCycle, Step], Awaitable[None]]:
    async def request(c: HttpCycle, row: Step) -> None:
        await c.send(row, "POST", f"/{level}", json={"text": text, "addressee_name": c.addressee(row)})
        c.report(row.number, f"{level} issued by the {row.role}")

    return request


async def _deliver_rows(c: HttpCycle, row: Step) -> None:
    try:
        by_unit = rows_by_unit(c.rows, c.sop)
    except ValueError as exc:
        raise DriveError(str(exc)) from exc
    for unit in c.sop.units:
        delivered = by_unit[unit.code]
        table = (f"renja-{c.year}-{unit.code.lower()}.csv", rows_csv(delivered), "text/csv")
        await c.send(row, "POST", f"/units/{unit.code}/rows", files={"file": table})
        note = f"Surat pengantar data Renja {c.year} — {unit.name}.\nJumlah baris: {len(delivered)}.\n"
        letter = (f"surat pengantar {unit.name}.txt", note.encode(), "text/plain")
        await c.send(row, "POST", f"/units/{unit.code}/files", files={"files": letter})
        c.report(row.number, f"{unit.name}: {len(delivered)} rows and a cover letter delivered")
    await c.send(row, "POST", "/collection/complete", json={})
    c.report(row.number, "collection marked complete and checked")


async def _post_awal(c: HttpCycle, row: Step) -> None:
    await c.send(row, "POST", "/drafts/awal", json={})
    c.awal = (await c.send(row, "GET", "/drafts"))[-1]
    findings = await c.send(row, "GET", f"/drafts/{c.awal['version']}/findings")
    blocking = sum(1 for f in findings if f["severity"] == "blocking")
    c.awal_blocking = blocking
    c.report(
        row.number,
        f"Rancangan Awal v{c.awal['version']} ({c.awal['content_sha256'][:12]}…): "
        f"{blocking} blocking, {len(findings) - blocking} warning findings",
    )


def _attendance(held_at: datetime) -> list[dict[str, Any]]:
    """The daftar hadir: the kasubag and the staf, and the three Kepala Bidang (the last one absent)."""
    staff: list[tuple[Person, str, str, bool]] = [
        (PEOPLE["kasubag_pp"], "Sekretariat", "Kasubag Perencanaan dan Pelaporan", True),
        (PEOPLE["staf"], "Sekretariat", "Staf Perencanaan", True),
    ]
    heads = [(p, unit, "Kepala Bidang", i < 2) for i, (p, unit) in enumerate(BIDANG_HEADS)]
    return [
        {"name": p.name, "nip": p.nip, "unit": unit, "position": position, "present": present}
        | ({"signed_at": held_at.isoformat()} if present else {})
        for p, unit, position, present in staff + heads
    ]


async def _hold_meeting(c: HttpCycle, row: Step) -> None:
    changes = rollup_corrections(c.rows)
    held_at = datetime.now(UTC)
    schedule = {
        "draft_version": c.awal["version"],
        "draft_sha256": c.awal["content_sha256"],
        "held_at": held_at.isoformat(),
        "place": "Ruang Rapat Bapelitbang",
        "agenda": f"Rapat konsultasi Rancangan Awal Renja {c.year} bersama Sekretariat dan Bidang",
    }
    meeting_id = (await c.send(row, "POST", "/meetings", json=schedule))["meeting_id"]
    attendees = _attendance(held_at)
    await c.send(row, "PUT", f"/meetings/{meeting_id}/attendance", json={"attendees": attendees})
    minutes = {
        "points": [
            f"Pemeriksaan Rancangan Awal v{c.awal['version']}: {c.awal_blocking} temuan blocking",
            "Kesesuaian program/kegiatan dengan Renstra",
        ],
        "decisions": ["Pagu kegiatan yang tidak sama dengan jumlah sub kegiatannya disesuaikan"],
        "requested_changes": changes,
    }
    await c.send(row, "PUT", f"/meetings/{meeting_id}/minutes", json=minutes)
    present = sum(1 for a in attendees if a["present"])
    c.report(row.number, f"meeting held: {present} present, {len(changes)} changes requested in the notulen")


async def _post_akhir(c: HttpCycle, row: Step) -> None:
    """A Rancangan Akhir applying the notulen; after a return, applying the changes the return asked for."""
    if c.return_changes is None:
        body: dict[str, Any] = {"note": "Perbaikan sesuai notulen rapat konsultasi"}
    else:
        body = {"note": "Perbaikan sesuai catatan Kasubag PP", "changes": c.return_changes}
    await c.send(row, "POST", "/drafts/akhir", json=body)
    c.akhir = (await c.send(row, "GET", "/drafts"))[-1]
    head = f"Rancangan Akhir v{c.akhir['version']} ({c.akhir['content_sha256'][:12]}…)"
    if c.return_changes is None:
        c.report(row.number, f"{head}, {c.akhir.get('blocking_findings', '?')} blocking findings")
    else:
        c.report(row.number, f"corrected {head}")
        c.return_changes = None


async def _post_return(c: HttpCycle, row: Step) -> None:
    """Return the Rancangan Akhir asking for a note on each zero-pagu sub kegiatan."""
    zero = zero_pagu(c.rows)
    notes = "Sub kegiatan berpagu nol (" + ", ".join(zero) + ") perlu catatan: tidak dianggarkan tahun ini."
    await c.send(row, "POST", "/return", json={**c.draft(c.akhir), "notes": notes})
    c.return_changes = [
        {"kode": k, "field": "catatan", "new_value": "Tidak dianggarkan pada tahun ini", "note": "catatan Kasubag PP"}
        for k in zero
    ]
    c.report(row.number, f"returned for revision by the {row.role} ({len(zero)} zero-pagu rows need a note)")


def _post_paraf(note: str) -> Callable[[HttpCycle, Step], Awaitable[None]]:
    async def request(c: HttpCycle, row: Step) -> None:
        version = c.akhir["version"]
        if version not in c.warnings:  # read once per version, by the first reviewer
            path = f"/renja/{c.renja_id}/drafts/{version}/findings"
            findings = await c.http.call("documents", "GET", path, row.role)
            c.warnings[version] = sorted({f["rule"] for f in findings})
        body = {**c.draft(c.akhir), "warnings_acknowledged": c.warnings[version], "note": note}
        await c.send(row, "POST", "/paraf", json=body)
        c.report(row.number, f"paraf by the {row.role} on v{version}")

    return request


async def _post_sign(c: HttpCycle, row: Step) -> None:
    signed = await c.send(row, "POST", "/sign", json=c.draft(c.akhir))
    c.report(row.number, f"signed by the {row.role} (Ed25519, key {signed['record'].get('key_id', '?')})")


async def _post_receipt(c: HttpCycle, row: Step) -> None:
    """Record the receipt of the next recipient of the SOP file's distribution list without one."""
    name = next(r.name for r in c.sop.distribution if r.name not in c.receipts)
    body = {"recipient": name, "received_by": f"Petugas penerima {name}", "received_at": datetime.now(UTC).isoformat()}
    await c.send(row, "POST", "/distribution/receipts", json=body)
    c.receipts.append(name)


async def _post_distribution(c: HttpCycle, row: Step) -> None:
    """Distribute the signed Renja, then record a receipt from every recipient."""
    distributed = await c.send(row, "POST", "/distribution", json=c.draft(c.akhir))
    for _ in c.sop.distribution:
        await _post_receipt(c, RECEIPT)
    archive = distributed.get("archive_ref", "")
    c.report(row.number, f"distributed ({archive}) with {len(c.sop.distribution)} receipts")


async def _post_cancel(c: HttpCycle, row: Step) -> None:
    await c.send(row, "POST", "/cancel", json={"reason": c.cancel_reason})
    c.report(row.number, f"cancelled by the {row.role}")


# --- the table ----------------------------------------------------------------------------------------

STEPS: dict[int, Step] = {
    1: Step(1, "kepala_badan", "directive", _arahan, _post_arahan),
    2: Step(
        2,
        "sekretaris",
        "directive",
        lambda c: IssueInstruksi(text="Siapkan penyusunan Renja (uji)"),
        _post_directive(
            "instruksi", "Kasubag PP: koordinasikan penyusunan Renja dengan Sekretariat dan seluruh Bidang."
        ),
    ),
    3: Step(
        3,
        "kasubag_pp",
        "directive",
        lambda c: IssuePerintah(text="Kumpulkan data dari Sekretariat dan Bidang (uji)"),
        _post_directive("perintah", "Staf: kumpulkan data program/kegiatan/sub kegiatan dari Sekretariat dan Bidang."),
    ),
    4: Step(4, "staf", "documents", _collected, _deliver_rows),
    5: Step(5, "staf", "documents", _awal, _post_awal),
    6: Step(6, "staf", "meetings", _meeting, _hold_meeting),
    7: Step(7, "staf", "documents", _akhir_draft, _post_akhir),
    8: Step(8, "kasubag_pp", "approvals", _initial(8), _post_paraf("Diperiksa")),
    9: Step(9, "sekretaris", "approvals", _initial(9), _post_paraf("Setuju")),
    10: Step(10, "kepala_badan", "approvals", _sign, _post_sign),
    11: Step(11, "staf", "notifier", _distribute, _post_distribution),
}
"""The eleven SOP steps: who takes each, the owning service, the command, the request(s)."""

RETURNS: dict[int, Step] = {n: Step(n, STEPS[n].role, "approvals", _return_at(n), _post_return) for n in (8, 9, 10)}
"""A return of the Rancangan Akhir at a review step (8, 9 or 10), by that step's reviewer."""

CANCEL = Step(None, "kepala_badan", "directive", _cancel, _post_cancel)
"""The head cancels the cycle (at any step before distribution)."""

RECEIPT = Step(None, "staf", "notifier", _receipt, _post_receipt)
"""A proof of receipt from the next recipient without one (after distribution)."""


# --- whole cycles -------------------------------------------------------------------------------------


def cycle_events(
    sop: SopDefinition,
    renja_id: UUID,
    *,
    start: datetime,
    gap: timedelta = timedelta(minutes=40),
    opd: str = "Bappeda Kota Bogor",
    fiscal_year: int = 2027,
    returns: Sequence[int] = (),
    cancel_before_step: int | None = None,
    receipts: int = 1,
) -> list[Event]:
    """The events of one cycle, in log order, with log-like ids (``chained``) and ``start + gap * n`` clock.

    ``returns``: the review steps (8, 9 or 10) at which the final draft is returned, one return each, in
    order (each return is followed by a new Rancangan Akhir and the reviews again from step 8).
    ``cancel_before_step``: the head cancels just before this step (2..11); nothing follows.
    ``receipts``: proofs of receipt recorded after distribution (at most the number of recipients).
    ``start`` must be aware (UTC). Raises ``shared.sop.DomainError`` if the script breaks a rule.
    """
    options = DriveOptions(opd=opd, fiscal_year=fiscal_year)
    cycle = Cycle(sop, renja_id, options=options, clock=start, gap=gap, chained=True)
    pending = list(returns)
    while (due := cycle.state.due_step) is not None:
        if due == cancel_before_step:
            cycle.run(CANCEL)
            return cycle.events
        if pending and pending[0] == due and due in RETURNS:
            pending.pop(0)
            cycle.run(RETURNS[due])
        else:
            cycle.run(STEPS[due])
    for _ in range(receipts):
        cycle.run(RECEIPT)
    return cycle.events


async def publish_until(
    settings: ServiceSettings,
    topic: str,
    *,
    step: int,
    renja_id: UUID | None = None,
    driven: Cycle | None = None,
    options: DriveOptions | None = None,
    start: datetime | None = None,
    sop: SopDefinition | None = None,
) -> Cycle:
    """Publish the events completing each due step up to and including ``step``; return the driven Renja.

    Starts a new Renja (``renja_id`` or a random one; clock at ``start``) unless ``driven`` continues an
    earlier one. ``step=5`` leaves step 6 due (the meeting), ``step=7`` leaves step 8 due (the first paraf).
    Nothing is published if the due step is already past ``step``.
    """
    if driven is None:
        driven = Cycle(sop or load_sop(settings.sop_file), renja_id or uuid4())
        if start is not None:
            driven.clock = start
    elif sop is not None:
        driven.sop = sop
    if options is not None:
        driven.options = options
    await publish(settings, topic, driven.run_until(step))
    return driven


__all__ = [
    "CANCEL",
    "RECEIPT",
    "RETURNS",
    "STEPS",
    "TEST_KEY_ID",
    "Cycle",
    "DriveError",
    "DriveOptions",
    "Http",
    "HttpCycle",
    "Step",
    "cycle_events",
    "publish_until",
]
