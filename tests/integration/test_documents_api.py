"""Documents service (SOP steps 4, 5, 7 and the rendered records) through HTTP, on real Postgres and Kafka.

Steps 1-3, 6 and 8-10 come from ``tests.kit.driver`` (published onto the test topic); steps 4, 5 and 7 are
the service's own. The data is the real PPU Renja (``data/renja-2024-bapelitbang-ppu.csv``), split by
program among the configured units and delivered in the formats units really send.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import openpyxl
import pypdf
import pytest
import uvicorn
from typer.testing import CliRunner

from cli.main import app as cli_app
from services.documents.intake import PAGU_MAX, Row, split_rows_by_program
from services.documents.main import create_app
from services.documents.settings import DocumentsSettings
from shared.cloudevents import from_kafka
from shared.events import Attendee, RequestedChange
from shared.settings import ServiceSettings
from shared.sop import CommandContext, RecordMeeting, ReturnDraft, SopDefinition, decide, load_sop
from tests.kit.driver import Cycle, publish_until
from tests.kit.kafkatools import publish, read_all
from tests.kit.people import PEOPLE, actor
from tests.kit.rows import load_rows
from tests.kit.servicekit import run_service, wait_state
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PPU = ROOT / "data" / "renja-2024-bapelitbang-ppu.csv"
LIMIT = 64 * 1024
LITBANG_NAME = "Bidang Penelitian & Pengembangan – Litbang (研究)"
PPU_TOTAL = 18_130_291_362


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def sop_file(tmp_path: Path) -> Path:
    """The shipped SOP file with one unit renamed to a non-ASCII name."""
    text = (ROOT / "shared" / "sop.yaml").read_text(encoding="utf-8")
    assert "name: Bidang Penelitian dan Pengembangan" in text
    path = tmp_path / "sop-uji.yaml"
    path.write_text(text.replace("name: Bidang Penelitian dan Pengembangan", f'name: "{LITBANG_NAME}"'), "utf-8")
    return path


@pytest.fixture
async def service(
    topic: str, sop_file: Path, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, DocumentsSettings]]:
    async with run_service(
        create_app, DocumentsSettings, topic=topic, sop_file=sop_file, file_store="postgres",
        max_upload_bytes=LIMIT,
    ) as (client, s):  # fmt: skip
        assert isinstance(s, DocumentsSettings)
        yield client, s


def ppu_rows() -> list[Row]:
    """The PPU rows with their prakiraan maju n+1 (the test kit's join of the two source files)."""
    return load_rows()


def by_unit(sop: SopDefinition) -> dict[str, list[Row]]:
    return split_rows_by_program(ppu_rows(), sop.unit_codes)


def _id(v: int | None) -> str:
    return "" if v is None else f"{v:,}".replace(",", ".")


def csv_bom_semicolons(rows: list[Row]) -> bytes:
    """Excel-style Indonesian CSV: UTF-8 BOM, ';' delimiter, 'Rp 1.234.567' amounts, alias headers."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["Kode Rekening", "Uraian", "Indikator Kinerja", "Target", "Satuan", "Pagu Indikatif (Rp)",
                     "Sumber Dana", "Target n+1", "Pagu n+1 (Rp)"])  # fmt: skip
    for r in rows:
        pagu = "" if r.pagu is None else f"Rp {_id(r.pagu)}"
        pagu_n1 = "" if r.pagu_n1 is None else f"Rp {_id(r.pagu_n1)}"
        writer.writerow([r.kode, r.nama, r.indikator, r.target, r.satuan, pagu, r.sumber_dana, r.target_n1, pagu_n1])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def plain_csv(rows: list[Row], *, bad_pagu_at: int | None = None) -> bytes:
    """The data file's own shape (SIPD-like column names, plain integers); optionally one bad pagu."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["kode", "level", "nama", "indikator", "target", "satuan", "pagu_indikatif_rp", "sumber",
                     "target_n1", "pagu_n1_rp"])  # fmt: skip
    for i, r in enumerate(rows):
        pagu = "sejuta" if i == bad_pagu_at else ("" if r.pagu is None else str(r.pagu))
        pagu_n1 = "" if r.pagu_n1 is None else str(r.pagu_n1)
        writer.writerow([r.kode, r.level, r.nama, r.indikator, r.target, r.satuan, pagu, r.sumber_dana, r.target_n1,
                         pagu_n1])  # fmt: skip
    return out.getvalue().encode("utf-8")


def xlsx_merged_headers(rows: list[Row]) -> bytes:
    """T-C.33 style sheet: a title line, two header rows with merged cells, the (1)..(9) numbering line."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Tabel T-C.33 Rumusan Rencana Program dan Kegiatan PD Tahun 2024"])
    ws.append(["Kode", "Program/Kegiatan/Sub Kegiatan", "Indikator Kinerja", "Rencana Tahun 2024", None, None, None,
               None, "Catatan Penting", "Prakiraan Maju Tahun 2025", None])  # fmt: skip
    ws.append([None, None, None, "Lokasi", "Target", "Satuan", "Pagu Indikatif", "Sumber Dana", None, "Target", "Pagu"])
    ws.append([f"({i})" for i in range(1, 12)])
    for r in rows:
        ws.append([r.kode, r.nama, r.indikator, r.lokasi, r.target, r.satuan, r.pagu, r.sumber_dana, r.catatan,
                   r.target_n1, r.pagu_n1])  # fmt: skip
    for cells in ("A2:A3", "B2:B3", "C2:C3", "D2:H2", "I2:I3", "J2:K2"):
        ws.merge_cells(cells)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


async def post_rows(
    client: httpx.AsyncClient, s: ServiceSettings, renja_id: Any, unit: str, name: str, data: bytes,
    role: str = "staf",
) -> httpx.Response:  # fmt: skip
    return await client.post(f"/renja/{renja_id}/units/{unit}/rows", files={"file": (name, data)},
                              headers=auth(s, role))  # type: ignore[arg-type]  # fmt: skip


async def db_count(s: ServiceSettings, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(s.postgres_dsn())
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def observe_own_events(driven: Cycle, s: ServiceSettings, topic: str, expect: int) -> None:
    """Fold into ``driven`` the events the documents service published (read back from the topic)."""
    known = {e.event_id for e in driven.events}
    records = await read_all(s.kafka_bootstrap, topic, expect=expect)
    for rec in records:
        event = from_kafka(rec.key, rec.value, rec.headers)
        if event.renja_id == driven.renja_id and event.event_id not in known:
            driven.observe(event)
            known.add(event.event_id)


@contextlib.asynccontextmanager
async def serve_http(client: httpx.AsyncClient) -> AsyncIterator[int]:
    """Serve the in-process app on a loopback port (for the CLI, which speaks plain HTTP); yields the port."""
    app = client._transport.app  # type: ignore[attr-defined]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages).split())


async def deliver_everything(client: httpx.AsyncClient, s: ServiceSettings, renja_id: Any, sop: SopDefinition) -> None:
    """Every unit delivers its programs: Sekretariat as BOM/';' CSV, one Bidang as XLSX with merged
    headers, others as plain CSV (one under a non-ASCII file name), the last one files only."""
    split = by_unit(sop)
    assert [len(split[u]) for u in sop.unit_codes] == [21, 15, 18, 10, 0]
    formats = {
        "SET": ("Usulan Sekretariat.csv", csv_bom_semicolons(split["SET"])),
        "SOSBUDPEM": ("Rancangan Bidang Sosbudpem.xlsx", xlsx_merged_headers(split["SOSBUDPEM"])),
        "PEREKSDA": ("usulan-pereksda.csv", plain_csv(split["PEREKSDA"])),
        "INFRAWIL": ("Usulan Bidang Infrastruktur – Kewilayahan ⅱ.csv", plain_csv(split["INFRAWIL"])),
    }
    for unit, (name, data) in formats.items():
        r = await post_rows(client, s, renja_id, unit, name, data)
        assert r.status_code == 201, r.text
        assert r.json()["rows"] == len(split[unit]) and r.json()["file"]["name"] == name
    r = await client.post(f"/renja/{renja_id}/units/LITBANG/files", headers=auth(s, "staf"),
                          files={"files": ("Kajian Litbang – Café 研究.pdf", b"%PDF-1.4 kajian\n")})  # fmt: skip
    assert r.status_code == 201, r.text


# --- step 4 ------------------------------------------------------------------------------------------


async def test_step_4_intake_formats_refusals_and_collection(
    service: tuple[httpx.AsyncClient, DocumentsSettings], topic: str, tmp_path: Path
) -> None:
    client, s = service
    sop = load_sop(s.sop_file)
    driven = await publish_until(s, topic, step=2, sop=sop)
    rid = driven.renja_id
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 3)
    split = by_unit(sop)

    # Wrong order: step 3 (perintah) is still due.
    r = await post_rows(client, s, rid, "SET", "a.csv", csv_bom_semicolons(split["SET"]))
    assert r.status_code == 409 and r.json()["error"] == "out_of_order" and r.json()["due_step"] == 3

    driven = await publish_until(s, topic, step=3, driven=driven, sop=sop)
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 4)

    # Wrong role: auditors never act; kasubag_pp is not the step 4 role.
    for role in ("auditor", "kasubag_pp"):
        r = await post_rows(client, s, rid, "SET", "a.csv", csv_bom_semicolons(split["SET"]), role=role)
        assert r.status_code == 403, (role, r.text)
    r = await post_rows(client, s, rid, "NOPE", "a.csv", csv_bom_semicolons(split["SET"]))
    assert r.status_code == 404 and "SET" in r.json()["message"]

    # A file with a bad row: 422 naming file, row and column; nothing stored.
    bad = plain_csv(split["PEREKSDA"], bad_pagu_at=2)  # data line 3 = spreadsheet row 4
    r = await post_rows(client, s, rid, "PEREKSDA", "Usulan PEREKSDA.csv", bad)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_rows"
    assert r.json()["details"] == [
        {"file": "Usulan PEREKSDA.csv", "row": 4, "column": "pagu_indikatif_rp", "column_letter": "G",
         "message": "'sejuta' bukan angka rupiah"}
    ]  # fmt: skip
    assert await db_count(s, "SELECT count(*) FROM unit_rows WHERE renja_id = $1", rid) == 0
    assert await db_count(s, "SELECT count(*) FROM blobs") == 0  # refused rows: no bytes stored

    # 0-byte and over-limit files, rows and attachments alike.
    r = await post_rows(client, s, rid, "SET", "kosong.csv", b"")
    assert r.status_code == 422 and "0 byte" in r.json()["message"]
    r = await client.post(f"/renja/{rid}/units/LITBANG/files", headers=auth(s, "staf"),
                          files={"files": ("Kosong – ñ.pdf", b"")})  # fmt: skip
    assert r.status_code == 422 and "Kosong – ñ.pdf" in r.json()["message"]
    big = b"x" * (LIMIT + 1)
    r = await client.post(f"/renja/{rid}/units/LITBANG/files", headers=auth(s, "staf"),
                          files=[("files", ("ok.txt", b"ok")), ("files", ("Lampiran besar.zip", big))])  # fmt: skip
    assert r.status_code == 413 and "melebihi batas" in r.json()["message"] and f"{LIMIT:,}" in r.json()["message"]
    r = await post_rows(client, s, rid, "SET", "besar.csv", big)
    assert r.status_code == 413
    assert await db_count(s, "SELECT count(*) FROM unit_files WHERE renja_id = $1", rid) == 0  # "ok.txt" neither

    # Real deliveries. A replaced delivery counts once, with its latest content.
    r = await post_rows(client, s, rid, "PEREKSDA", "lama.csv", plain_csv(split["PEREKSDA"][:3]))
    assert r.status_code == 201 and r.json()["rows"] == 3
    await deliver_everything(client, s, rid, sop)
    assert await db_count(s, "SELECT count(*) FROM unit_rows WHERE renja_id = $1", rid) == 4

    r = await client.get(f"/renja/{rid}/units", headers=auth(s, "auditor"))
    assert r.status_code == 200
    units = {u["code"]: u for u in r.json()["units"]}
    assert units["PEREKSDA"]["rows"] == 18 and units["PEREKSDA"]["rows_file"]["name"] == "usulan-pereksda.csv"
    assert units["LITBANG"]["name"] == LITBANG_NAME and units["LITBANG"]["rows"] == 0
    (attached,) = units["LITBANG"]["files"]
    assert attached["name"] == "Kajian Litbang – Café 研究.pdf"
    assert attached["sha256"] == hashlib.sha256(b"%PDF-1.4 kajian\n").hexdigest()
    assert (
        await db_count(  # the bytes live in the documents database (RENJA_FILE_STORE=postgres)
            s,
            "SELECT count(*) FROM blob_chunks WHERE sha256 = $1 AND data = $2",
            attached["sha256"],
            b"%PDF-1.4 kajian\n",
        )
        == 1
    )
    assert sum(u["pagu_total"] for u in units.values()) == PPU_TOTAL
    r = await client.get(f"/renja/{rid}/units/LITBANG/files/{attached['sha256']}", headers=auth(s, "auditor"))
    assert r.status_code == 200 and r.content == b"%PDF-1.4 kajian\n"
    assert r.headers["etag"] == f'"{attached["sha256"]}"'

    # Collection complete (the refusal while a unit is missing has its own test below).
    r = await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "kasubag_pp"))
    assert r.status_code == 403
    r = await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))
    assert r.status_code == 201, r.text
    records = await read_all(s.kafka_bootstrap, topic, expect=4)
    collected = [from_kafka(x.key, x.value, x.headers) for x in records][-1]
    assert collected.event_type == "renja.DataCollected.v1"
    assert collected.model_dump()["rows"] == 64 and collected.model_dump()["pagu_total"] == PPU_TOTAL
    assert [u["unit"] for u in collected.model_dump()["units"]] == list(sop.unit_codes)

    # Once collected, deliveries are frozen: step 5 is due.
    r = await post_rows(client, s, rid, "SET", "telat.csv", csv_bom_semicolons(split["SET"]))
    assert r.status_code == 409 and r.json()["due_step"] == 5


async def test_cells_and_amounts_beyond_what_can_be_read_or_stored_are_422s(
    topic: str, sop_file: Path, tmp_path: Path
) -> None:
    async with run_service(
        create_app, DocumentsSettings, topic=topic, sop_file=sop_file, file_store="postgres",
        max_upload_bytes=1024 * 1024,
    ) as (client, s):  # fmt: skip
        sop = load_sop(s.sop_file)
        driven = await publish_until(s, topic, step=3, sop=sop)
        rid = driven.renja_id
        await wait_state(client, s, rid, until=lambda st: st["due_step"] == 4)

        # A cell longer than the csv module's field limit (an unclosed quote, typically).
        huge = "x" * (csv.field_size_limit() + 1)
        data = f'kode;nama;pagu\n5.01.02;PROGRAM;1.000\n5.01.03;"{huge}";2.000\n'.encode()
        r = await post_rows(client, s, rid, "SET", "panjang.csv", data)
        assert r.status_code == 422, r.text
        (detail,) = r.json()["details"]
        assert (detail["file"], detail["row"]) == ("panjang.csv", 3) and "lebih panjang" in detail["message"]

        # A pagu beyond bigint: a row error at its row and column, never a database error.
        data = f"kode;nama;pagu\n5.01.02;PROGRAM;{10**20}\n".encode()
        r = await post_rows(client, s, rid, "SET", "besar.csv", data)
        assert r.status_code == 422 and r.json()["error"] == "invalid_rows", r.text
        (detail,) = r.json()["details"]
        assert (detail["file"], detail["row"], detail["column"]) == ("besar.csv", 2, "pagu")
        assert await db_count(s, "SELECT count(*) FROM unit_rows WHERE renja_id = $1", rid) == 0

        # Each unit within the limit, their sum beyond it: refused at collection, while units can still redo.
        big = PAGU_MAX // 2 + 1
        for unit, kode in (("SET", "5.01.01"), ("SOSBUDPEM", "5.01.02")):
            r = await post_rows(client, s, rid, unit, f"{unit}.csv", f"kode;nama;pagu\n{kode};PROGRAM;{big}\n".encode())
            assert r.status_code == 201, r.text
        for unit in ("PEREKSDA", "INFRAWIL", "LITBANG"):
            r = await client.post(f"/renja/{rid}/units/{unit}/files", headers=auth(s, "staf"),
                                  files={"files": ("berkas.pdf", b"%PDF-1.4 berkas\n")})  # fmt: skip
            assert r.status_code == 201, r.text
        r = await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))
        assert r.status_code == 422 and "SET" in r.json()["message"], r.text
        r = await post_rows(client, s, rid, "SET", "SET.csv", b"kode;nama;pagu\n5.01.01;PROGRAM;1.000\n")
        assert r.status_code == 201, r.text
        r = await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))
        assert r.status_code == 201, r.text


async def test_collection_is_refused_while_a_unit_is_missing(
    service: tuple[httpx.AsyncClient, DocumentsSettings], topic: str
) -> None:
    client, s = service
    sop = load_sop(s.sop_file)
    driven = await publish_until(s, topic, step=3, sop=sop)
    rid = driven.renja_id
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 4)
    r = await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))
    assert r.status_code == 422 and "LITBANG" in r.json()["message"]
    split = by_unit(sop)
    r = await post_rows(client, s, rid, "SET", "Usulan Sekretariat.csv", csv_bom_semicolons(split["SET"]))
    assert r.status_code == 201
    r = await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))
    assert r.status_code == 422 and r.json()["error"] == "invalid_command"
    for code in ("SOSBUDPEM", "PEREKSDA", "INFRAWIL", "LITBANG"):
        assert code in r.json()["message"]
    assert "not yet delivered" in r.json()["message"] and "SET," not in r.json()["message"]
    r = await client.get(f"/renja/{rid}/units", headers=auth(s, "staf"))
    assert r.json()["missing"] == ["SOSBUDPEM", "PEREKSDA", "INFRAWIL", "LITBANG"]
    assert r.json()["collection_complete"] is False


# --- steps 5 to 10 -----------------------------------------------------------------------------------


async def test_a_notulen_change_that_does_not_apply_is_skipped_and_reported_never_a_permanent_422(
    service: tuple[httpx.AsyncClient, DocumentsSettings], topic: str
) -> None:
    client, s = service
    sop = load_sop(s.sop_file)
    driven = await publish_until(s, topic, step=3, sop=sop)
    rid = driven.renja_id
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 4)
    await deliver_everything(client, s, rid, sop)
    assert (await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))).status_code == 201
    awal = (await client.post(f"/renja/{rid}/drafts/awal", headers=auth(s, "staf"))).json()
    await observe_own_events(driven, s, topic, expect=5)

    # A notulen already on the log (written before the meetings service validated changes, or naming a
    # kode the draft does not have): one good change and three that cannot apply.
    changes = (
        RequestedChange(kode="5.01.01.2.02", field="pagu", new_value="6.361.771.800"),
        RequestedChange(kode="9.99.99", field="pagu", new_value="-5"),
        RequestedChange(kode="5.01.01.2.09", field="kode", new_value="5.01.01.2.10"),
        RequestedChange(kode="5.01.99", field="nama", new_value="Program baru"),
    )
    now = datetime.now(UTC)
    meeting = RecordMeeting(
        meeting_id=uuid4(), draft_version=1, draft_sha256=awal["content_sha256"], held_at=now,
        notulen_sha256=hashlib.sha256(b"notulen lama").hexdigest(), attendees=(Attendee(name="Peserta"),),
        points=("Pembahasan",), requested_changes=changes,
    )  # fmt: skip
    ctx = CommandContext(renja_id=rid, actor=actor("staf"), source="meetings", event_id=uuid4(),
                         correlation_id=driven.state.correlation_id or rid, now=now)  # fmt: skip
    (held_event,) = decide(driven.state, meeting, ctx, sop)
    driven.observe(held_event)
    await publish(s, topic, [held_event])
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 7)

    # The staff's own bad change is still refused, and nothing is created.
    bad = {"changes": [{"kode": "9.99.99", "field": "pagu", "new_value": "1"}]}
    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"), json=bad)
    assert r.status_code == 422 and "9.99.99" in r.json()["message"]
    assert await db_count(s, "SELECT count(*) FROM drafts WHERE renja_id = $1", rid) == 1

    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"), json={"note": "Sesuai notulen"})
    assert r.status_code == 201, r.text
    akhir = r.json()
    assert [c["kode"] for c in akhir["applied_changes"]] == ["5.01.01.2.02"]
    skipped = {c["change"]["kode"]: c["reason"] for c in akhir["skipped_changes"]}
    assert list(skipped) == ["9.99.99", "5.01.01.2.09", "5.01.99"]
    assert "tidak ada" in skipped["9.99.99"] and "tidak dapat diubah" in skipped["5.01.01.2.09"]
    assert akhir["note"].startswith("Sesuai notulen") and "9.99.99" in akhir["note"] and "5.01.99" in akhir["note"]
    findings = (await client.get(f"/renja/{rid}/drafts/2/findings", headers=auth(s, "auditor"))).json()
    notulen = [f for f in findings if f["rule"] == "notulen_change_not_applied"]
    assert [(f["severity"], f["codes"]) for f in notulen] == [
        ("warning", ["5.01.01.2.09"]), ("warning", ["5.01.99"]), ("warning", ["9.99.99"])
    ]  # fmt: skip
    assert all(f["message"].startswith("notulen change not applied: ") for f in notulen)
    assert akhir["warning_findings"] == sum(f["severity"] == "warning" for f in findings)
    r = await client.get(f"/renja/{rid}/drafts/2", headers=auth(s, "auditor"))
    assert "9.99.99" in r.json()["note"]

    # Returned at step 8: the next version does not apply the notulen again, and still reports what it lacks.
    await observe_own_events(driven, s, topic, expect=7)
    ret = ReturnDraft(at_step=8, version=2, content_sha256=akhir["content_sha256"], notes="Lengkapi")
    ctx = CommandContext(renja_id=rid, actor=actor("kasubag_pp"), source="approvals", event_id=uuid4(),
                         correlation_id=rid, now=datetime.now(UTC))  # fmt: skip
    (returned,) = decide(driven.state, ret, ctx, sop)
    await publish(s, topic, [returned])
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 7 and st["returns"] == 1)
    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"), json={})
    assert r.status_code == 201, r.text
    assert r.json()["applied_changes"] == [] and r.json()["skipped_changes"] == []
    findings = (await client.get(f"/renja/{rid}/drafts/3/findings", headers=auth(s, "auditor"))).json()
    assert len([f for f in findings if f["rule"] == "notulen_change_not_applied"]) == 3


async def test_drafts_findings_meeting_changes_diff_and_rendered_files(
    service: tuple[httpx.AsyncClient, DocumentsSettings], topic: str
) -> None:
    client, s = service
    sop = load_sop(s.sop_file)
    driven = await publish_until(s, topic, step=3, sop=sop)
    rid = driven.renja_id
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 4)

    r = await client.post(f"/renja/{rid}/drafts/awal", headers=auth(s, "staf"))
    assert r.status_code == 409 and r.json()["due_step"] == 4  # wrong order: data not collected
    await deliver_everything(client, s, rid, sop)
    assert (await client.post(f"/renja/{rid}/collection/complete", headers=auth(s, "staf"))).status_code == 201

    # Step 5, with an Idempotency-Key: the retry returns the first result and makes no second draft.
    r = await client.post(f"/renja/{rid}/drafts/awal", headers=auth(s, "auditor"))
    assert r.status_code == 403
    headers = {**auth(s, "staf"), "Idempotency-Key": f"awal-{rid}"}
    burst = await asyncio.gather(
        *[client.post(f"/renja/{rid}/drafts/awal", headers=headers, json={"note": "dari data unit"}) for _ in range(5)]
    )
    assert [r.status_code for r in burst] == [201] * 5, [r.text for r in burst]
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in burst) == 4
    (first,) = [r for r in burst if r.headers.get("Idempotent-Replayed") != "true"]
    assert all(r.json() == first.json() for r in burst)
    again = await client.post(f"/renja/{rid}/drafts/awal", headers=headers, json={"note": "dari data unit"})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    # The key names one request (method, path, body): reused for anything else it is refused, never replayed.
    reused: list[tuple[str, dict[str, str] | None]] = [
        (f"/renja/{rid}/drafts/awal", {"note": "lain"}),
        (f"/renja/{rid}/drafts/awal", None),
        (f"/renja/{rid}/drafts/akhir", {}),
        (f"/renja/{uuid4()}/drafts/awal", {"note": "dari data unit"}),
        (f"/renja/{rid}/collection/complete", None),
    ]
    for path, sent in reused:
        r = await client.post(path, headers=headers, json=sent)
        assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused", (path, r.text)
        assert r.headers.get("Idempotent-Replayed") is None
    awal = first.json()
    assert (awal["version"], awal["stage"], awal["rows"], awal["pagu_total"]) == (1, "awal", 64, PPU_TOTAL)
    assert awal["blocking_findings"] == 4 and awal["next_step"] == {"number": 6, "role": "staf"}
    r = await client.post(f"/renja/{rid}/drafts/awal", headers=auth(s, "staf"))
    assert r.status_code == 409  # step 6 is due now
    assert await db_count(s, "SELECT count(*) FROM drafts WHERE renja_id = $1", rid) == 1
    assert await db_count(s, "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = $2", rid,
                          "renja.DraftCreated.v1") == 1  # fmt: skip

    r = await client.get(f"/renja/{rid}/drafts/1/findings", headers=auth(s, "auditor"))
    findings = r.json()
    assert {"severity", "rule", "codes", "message", "source"} <= set(findings[0])
    rollups = sorted(f["codes"][0] for f in findings if f["rule"] == "rollup_mismatch")
    assert rollups == ["5.01.01.2.02", "5.01.01.2.09"]
    zero = sorted(f["codes"][0] for f in findings if f["rule"] == "pagu_zero_with_target")
    assert zero == ["5.01.01.2.02.0003", "5.01.01.2.09.0010"]
    assert all(f["severity"] == "blocking" for f in findings if f["rule"] == "rollup_mismatch")

    # The draft's rows are the real data, whatever format each unit delivered in.
    r = await client.get(f"/renja/{rid}/drafts/1", headers=auth(s, "kasubag_pp"))
    content = {row["kode"]: row for row in r.json()["content"]}
    assert {k: (v.pagu, v.target, v.satuan) for k, v in ((r.kode, r) for r in ppu_rows())} == {
        k: (v["pagu"], v["target"], v["satuan"]) for k, v in content.items()
    }
    assert content["5.01.02"]["unit"] == "SOSBUDPEM"

    # The rendered PDF: served with ETag = its SHA-256, and its T-C.33 lists every row code.
    r = await client.get(f"/renja/{rid}/drafts/1/document.pdf", headers=auth(s, "auditor"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["etag"] == f'"{awal["pdf_sha256"]}"' == f'"{hashlib.sha256(r.content).hexdigest()}"'
    text = pdf_text(r.content)
    assert "T-C.33" in text and [k for k in content if k not in text] == []
    r = await client.get(f"/renja/{rid}/drafts/1/document.pdf",
                         headers={**auth(s, "auditor"), "If-None-Match": f'"{awal["pdf_sha256"]}"'})  # fmt: skip
    assert r.status_code == 304
    r = await client.get(f"/renja/{rid}/drafts/1/document.docx", headers=auth(s, "auditor"))
    assert r.status_code == 200 and r.content.startswith(b"PK")

    # Step 7 before the meeting: wrong order.
    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"), json={})
    assert r.status_code == 409 and r.json()["due_step"] == 6

    # Step 6 (the meetings service's event): the notulen funds the two unfunded sub kegiatan with their
    # kegiatan's gaps, so both roll-ups hold and the pagu stays the RKPD's (the reviewer's fix).
    await observe_own_events(driven, s, topic, expect=5)
    assert driven.state.awal_version == 1 and driven.state.awal_sha256 == awal["content_sha256"]
    meeting_id = uuid4()
    changes = (
        RequestedChange(kode="5.01.01.2.02.0003", field="Pagu Indikatif", new_value="254.906.000", note="selisih"),
        RequestedChange(kode="5.01.01.2.09.0010", field="pagu", new_value="Rp 45.000.000", note="selisih"),
    )
    held = datetime.now(UTC)  # not before the Rancangan Awal existed (the decider refuses that)
    meeting = RecordMeeting(
        meeting_id=meeting_id, draft_version=1, draft_sha256=awal["content_sha256"], held_at=held,
        place="Ruang Rapat Bappeda", notulen_sha256=hashlib.sha256(b"notulen uji").hexdigest(),
        attendees=(Attendee(name=PEOPLE["staf"][0], nip=PEOPLE["staf"][1], unit="Subbag PP", present=True,
                            signed_at=held),
                   Attendee(name="Rudi Hartono Ñoño (fiktif)", unit="Bidang Litbang – Café", present=True)),
        points=("Pagu kegiatan harus sama dengan jumlah sub kegiatan",), decisions=("Pagu disesuaikan",),
        requested_changes=changes,
    )  # fmt: skip
    ctx = CommandContext(renja_id=rid, actor=actor("staf"), source="meetings", event_id=uuid4(),
                         correlation_id=driven.state.correlation_id or rid, now=datetime.now(UTC))  # fmt: skip
    (held_event,) = decide(driven.state, meeting, ctx, sop)
    driven.observe(held_event)
    await publish(s, topic, [held_event])
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 7)

    for kind, expected in (("daftar-hadir", "Rudi Hartono Ñoño (fiktif)"), ("notulen", "5.01.01.2.09")):
        r = await client.get(f"/renja/{rid}/meetings/{meeting_id}/{kind}.pdf", headers=auth(s, "auditor"))
        assert r.status_code == 200, r.text
        assert expected in pdf_text(r.content)
        assert r.headers["etag"] == f'"{hashlib.sha256(r.content).hexdigest()}"'
        again_pdf = await client.get(f"/renja/{rid}/meetings/{meeting_id}/{kind}.pdf", headers=auth(s, "auditor"))
        assert again_pdf.content == r.content  # rendered once, then served from the store

    # Step 7: a change that cannot apply is refused, nothing is created.
    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"),
                          json={"changes": [{"kode": "9.99.99", "field": "pagu", "new_value": "1"}]})  # fmt: skip
    assert r.status_code == 422 and "9.99.99" in r.json()["message"]
    # The notulen's changes plus the staff's note on a placeholder pagu.
    body = {"changes": [{"kode": "5.01.01.2.01.0001", "field": "catatan", "new_value": "Pagu sementara",
                         "note": "catatan"}], "note": "Perbaikan sesuai notulen"}  # fmt: skip
    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"), json=body)
    assert r.status_code == 201, r.text
    akhir = r.json()
    assert (akhir["version"], akhir["stage"], akhir["based_on_version"]) == (2, "akhir", 1)
    assert akhir["meeting_id"] == str(meeting_id) and akhir["notulen_sha256"] == meeting.notulen_sha256
    assert akhir["blocking_findings"] == 0 and akhir["pagu_total"] == PPU_TOTAL
    assert [c["kode"] for c in akhir["applied_changes"]] == ["5.01.01.2.02.0003", "5.01.01.2.09.0010",
                                                             "5.01.01.2.01.0001"]  # fmt: skip

    r = await client.get(f"/renja/{rid}/drafts/diff", params={"from": 1, "to": 2}, headers=auth(s, "auditor"))
    assert r.status_code == 200, r.text
    d = r.json()["diff"]
    assert d["added"] == [] and d["removed"] == []
    assert {(c["kode"], c["field"], c["old"], c["new"]) for c in d["changed"]} == {
        ("5.01.01.2.02.0003", "pagu", 0, 254_906_000),
        ("5.01.01.2.09.0010", "pagu", 0, 45_000_000),
        ("5.01.01.2.01.0001", "catatan", "", "Pagu sementara"),
    }
    r = await client.get(f"/renja/{rid}/drafts", headers=auth(s, "auditor"))
    assert [(d["version"], d["stage"], d["blocking_findings"]) for d in r.json()] == [(1, "awal", 4), (2, "akhir", 0)]
    assert (await client.get(f"/renja/{rid}/drafts/7", headers=auth(s, "auditor"))).status_code == 404

    # renja findings (the CLI) reads the same findings over HTTP: latest version by default.
    async with serve_http(client) as port:
        env = {"RENJA_SERVICE_HOST": "127.0.0.1", "RENJA_SERVICE_PORTS": json.dumps({"documents": port})}

        def cli(*args: str) -> Any:
            return CliRunner().invoke(cli_app, ["findings", str(rid), *args], env=env)

        latest = await asyncio.to_thread(cli, "--format", "json")
        first_json = await asyncio.to_thread(cli, "--version", "1", "--format", "json")
        table = await asyncio.to_thread(cli, "--version", "1")
        missing = await asyncio.to_thread(cli, "--version", "9")
    assert latest.exit_code == 0, latest.output
    assert json.loads(latest.stdout) == (await client.get(f"/renja/{rid}/drafts/2/findings",
                                                          headers=auth(s, "auditor"))).json()  # fmt: skip
    assert all(f["severity"] == "warning" for f in json.loads(latest.stdout))
    assert {"5.01.01.2.02", "5.01.01.2.09"} <= {f["codes"][0] for f in json.loads(first_json.stdout)}
    assert table.exit_code == 0 and "rollup_mismatch" in table.stdout and "draft version 1" in table.stdout
    assert missing.exit_code == 1 and "404" in missing.output

    # The kasubag returns it (approvals' event): the next version applies only the staff's corrections,
    # not the notulen again (it already holds them).
    await observe_own_events(driven, s, topic, expect=7)
    assert driven.state.akhir_sha256 == akhir["content_sha256"]
    ret = ReturnDraft(
        at_step=8, version=2, content_sha256=akhir["content_sha256"], notes="Target penatausahaan 13 dokumen"
    )
    ctx = CommandContext(renja_id=rid, actor=actor("kasubag_pp"), source="approvals", event_id=uuid4(),
                         correlation_id=driven.state.correlation_id or rid, now=datetime.now(UTC))  # fmt: skip
    (returned,) = decide(driven.state, ret, ctx, sop)
    driven.observe(returned)
    await publish(s, topic, [returned])
    await wait_state(client, s, rid, until=lambda st: st["due_step"] == 7 and st["returns"] == 1)
    body = {"changes": [{"kode": "5.01.01.2.02.0003", "field": "target", "new_value": "13"}]}
    r = await client.post(f"/renja/{rid}/drafts/akhir", headers=auth(s, "staf"), json=body)
    assert r.status_code == 201, r.text
    akhir = r.json()
    assert (akhir["version"], akhir["based_on_version"], akhir["meeting_id"]) == (3, 2, str(meeting_id))
    assert [c["kode"] for c in akhir["applied_changes"]] == ["5.01.01.2.02.0003"]
    r = await client.get(f"/renja/{rid}/drafts/diff", params={"from": 2, "to": 3}, headers=auth(s, "auditor"))
    assert [(c["kode"], c["field"], c["new"]) for c in r.json()["diff"]["changed"]] == [
        ("5.01.01.2.02.0003", "target", "13")
    ]

    # Steps 8-10 (approvals): the signed Renja is rendered with its signature block.
    await observe_own_events(driven, s, topic, expect=9)
    assert driven.state.akhir_sha256 == akhir["content_sha256"]
    r = await client.get(f"/renja/{rid}/signed.pdf", headers=auth(s, "auditor"))
    assert r.status_code == 404
    driven = await publish_until(s, topic, step=10, driven=driven, sop=sop)
    await wait_state(client, s, rid, until=lambda st: st["signed"] is True)
    r = await client.get(f"/renja/{rid}/signed.pdf", headers=auth(s, "auditor"))
    assert r.status_code == 200, r.text
    text = pdf_text(r.content)
    assert akhir["content_sha256"] in text and PEOPLE["kepala_badan"][1] in text and "sopdriver-test" in text
