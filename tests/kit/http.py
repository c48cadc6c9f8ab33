"""A cycle's actions over HTTP against running services, as the kit's people (``HttpCycle``).

``Http`` calls a service as a role with that person's token and checks every answer; ``HttpCycle``
carries one Renja's content (the rows delivered at step 4) and what the services answered so far (draft
versions and hashes, warnings acknowledged, receipts). The ``post_*`` functions are the requests of the
rows of ``tests.kit.driver``'s table: each acts as its row's role on its row's service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from services.documents.intake import Row
from shared.events import Role, ServiceName
from shared.registry import load_registry
from shared.sop import SopDefinition
from tests.kit.people import BIDANG_HEADS, PEOPLE, Person
from tests.kit.rows import placeholder_pagu, rollup_corrections, rows_by_unit, rows_csv

if TYPE_CHECKING:
    from tests.kit.driver import Step


class DriveError(RuntimeError):
    """An action over HTTP failed; the message names the service, the call and its answer."""


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
    opd_code: str | None = None
    """The OPD's SIPD code in the region registry (the tokens must carry the same ``opd`` claim)."""
    recipients: list[str] = field(default_factory=list)
    """The recipients the distribution named (the cycle's OPD's list); receipts are recorded for these."""
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

    @staticmethod
    def draft(draft: dict[str, Any]) -> dict[str, Any]:
        """The body naming ``draft`` exactly (version and content hash)."""
        return {"version": draft["version"], "content_sha256": draft["content_sha256"]}

    def addressee(self, row: Step) -> str:
        """The person of the role that takes the step after ``row``'s (to whom a directive is addressed)."""
        assert row.number is not None
        return PEOPLE[self.sop.step(row.number + 1).role].name


async def post_arahan(c: HttpCycle, row: Step) -> None:
    """Step 1: the arahan for ``c.opd`` and ``c.year`` (idempotent per year); sets ``c.renja_id``."""
    body = {
        "opd": c.opd,
        "fiscal_year": c.year,
        "addressee_name": c.addressee(row),
        "text": f"Segera susun Rencana Kerja {c.opd} tahun rencana {c.year} sesuai Renstra dan SOP Penyusunan Renja.",
        **({"opd_code": c.opd_code} if c.opd_code else {}),
    }
    headers = {"Idempotency-Key": f"{c.key_prefix}-arahan-{c.year}"}
    r = await c.http.call(row.service, "POST", "/renja", row.role, json=body, headers=headers)
    c.renja_id = r["renja_id"]
    c.report(row.number, f"arahan issued; Renja id {c.renja_id}")


def post_directive(level: str, text: str) -> Callable[[HttpCycle, Step], Awaitable[None]]:
    """Steps 2-3: the request issuing a directive of ``level`` (``instruksi``, ``perintah``) saying ``text``."""

    async def request(c: HttpCycle, row: Step) -> None:
        await c.send(row, "POST", f"/{level}", json={"text": text, "addressee_name": c.addressee(row)})
        c.report(row.number, f"{level} issued by the {row.role}")

    return request


post_instruksi = post_directive(
    "instruksi", "Kasubag PP: koordinasikan penyusunan Renja dengan Sekretariat dan seluruh Bidang."
)
post_perintah = post_directive(
    "perintah", "Staf: kumpulkan data program/kegiatan/sub kegiatan dari Sekretariat dan Bidang."
)


async def deliver_rows(c: HttpCycle, row: Step) -> None:
    """Step 4: each unit's rows (CSV) and a cover letter, then the collection marked complete."""
    opd = load_registry().find(c.opd_code) if c.opd_code else None
    try:
        by_unit = rows_by_unit(c.rows, c.sop, opd)
    except ValueError as exc:
        raise DriveError(str(exc)) from exc
    for unit in opd.units if opd is not None else c.sop.units:
        delivered = by_unit[unit.code]
        table = (f"renja-{c.year}-{unit.code.lower()}.csv", rows_csv(delivered), "text/csv")
        await c.send(row, "POST", f"/units/{unit.code}/rows", files={"file": table})
        note = f"Surat pengantar data Renja {c.year} — {unit.name}.\nJumlah baris: {len(delivered)}.\n"
        letter = (f"surat pengantar {unit.name}.txt", note.encode(), "text/plain")
        await c.send(row, "POST", f"/units/{unit.code}/files", files={"files": letter})
        c.report(row.number, f"{unit.name}: {len(delivered)} rows and a cover letter delivered")
    await c.send(row, "POST", "/collection/complete", json={})
    c.report(row.number, "collection marked complete and checked")


async def post_awal(c: HttpCycle, row: Step) -> None:
    """Step 5: the Rancangan Awal; keeps it (``c.awal``) and its count of blocking findings."""
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


async def hold_meeting(c: HttpCycle, row: Step) -> None:
    """Step 6: the consultation meeting on ``c.awal``: schedule, attendance, minutes correcting the roll-up."""
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


async def post_akhir(c: HttpCycle, row: Step) -> None:
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


async def post_return(c: HttpCycle, row: Step) -> None:
    """Return the Rancangan Akhir asking for a note on each sub kegiatan with a placeholder pagu."""
    placeholder = placeholder_pagu(c.rows)
    notes = "Sub kegiatan berpagu sementara (" + ", ".join(placeholder) + ") perlu catatan rincian biaya."
    await c.send(row, "POST", "/return", json={**c.draft(c.akhir), "notes": notes})
    c.return_changes = [
        {
            "kode": k,
            "field": "catatan",
            "new_value": "Pagu sementara; rincian biaya pada RKA",
            "note": "catatan Kasubag PP",
        }
        for k in placeholder
    ]
    c.report(
        row.number, f"returned for revision by the {row.role} ({len(placeholder)} placeholder-pagu rows need a note)"
    )


def post_paraf(note: str) -> Callable[[HttpCycle, Step], Awaitable[None]]:
    """Steps 8-9: the request initialing ``c.akhir`` with ``note``, acknowledging its warning findings."""

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


async def post_sign(c: HttpCycle, row: Step) -> None:
    """Step 10: the head signs ``c.akhir`` (with the approvals service's key)."""
    signed = await c.send(row, "POST", "/sign", json=c.draft(c.akhir))
    c.report(row.number, f"signed by the {row.role} (Ed25519, key {signed['record'].get('key_id', '?')})")


async def post_receipt(c: HttpCycle, row: Step) -> None:
    """Record the receipt of the next recipient without one: of the distribution made (``c.recipients``),
    else of the SOP file's list."""
    names = c.recipients or [r.name for r in c.sop.distribution]
    name = next(n for n in names if n not in c.receipts)
    body = {"recipient": name, "received_by": f"Petugas penerima {name}", "received_at": datetime.now(UTC).isoformat()}
    await c.send(row, "POST", "/distribution/receipts", json=body)
    c.receipts.append(name)


async def post_distribution(c: HttpCycle, row: Step) -> None:
    """Distribute the signed Renja, then record a receipt from every recipient."""
    distributed = await c.send(row, "POST", "/distribution", json=c.draft(c.akhir))
    c.recipients = list(distributed.get("recipients") or [r.name for r in c.sop.distribution])
    for _ in c.recipients:
        await post_receipt(c, row)  # the same person at the same service
    archive = distributed.get("archive_ref", "")
    c.report(row.number, f"distributed ({archive}) with {len(c.recipients)} receipts")


async def post_cancel(c: HttpCycle, row: Step) -> None:
    """The head cancels the cycle with ``c.cancel_reason``."""
    await c.send(row, "POST", "/cancel", json={"reason": c.cancel_reason})
    c.report(row.number, f"cancelled by the {row.role}")
