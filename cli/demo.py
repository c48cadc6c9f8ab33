"""``renja demo``: one complete Renja cycle through the five services' real HTTP APIs, then the audit.

It never writes to a database or to Kafka: it acts as the four SOP roles with tokens from the local
issuer, waits (with progress) for each service to have consumed what enables the next step, and ends
with the auditor's timeline, the chain verification and the rebuild comparison, printed and written to
``out/demo/summary.json``.

The cycle is ``DEMO_CYCLE``, rows of the test kit's step table (``tests/kit/driver.py``: who acts, which
service, which request); the people, their tokens and the input come from the kit too. Input: the real
Renja 2024 rows of Bapelitbang Kabupaten Penajam Paser Utara (``data/``), split by the SOP file's units
(``tests/kit/rows.py``) — the second region's example, opened without a registry OPD.

Then the region of the registry (``data/region/bengkulu-utara.yaml``): Bapperida and Dinas Pendidikan of
Kabupaten Bengkulu Utara, each with its own people (token claim ``opd``), prepare the Renja their SIPD-RI
rows belong to (plan year 2026, prakiraan maju 2027) up to the Rancangan Akhir (``REGION_CYCLE``). The
services refuse a plan year that has already begun (422 ``plan_year_begun``): run the stack with the
simulated office clock in the preparation year to see them open; a second run says the cycles exist. The
demo ends with a table of the region's cycles (OPD, plan year, status, step due, blocking findings).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.status import Status
from rich.table import Table

from deploy.local.settings import StackSettings
from shared.registry import Registry, load_registry
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import RETURNS, STEPS, DriveError, Http, HttpCycle, Step
from tests.kit.rows import BENGKULU_UTARA, BENGKULU_UTARA_YEAR, DATA_YEAR, OPD, REPO, load_opd_rows, load_rows
from tests.kit.tokens import everyone

REGION_CYCLE: tuple[Step, ...] = (STEPS[1], STEPS[2], STEPS[3], STEPS[4], STEPS[5], STEPS[6], STEPS[7])
"""A registry OPD's cycle in the demo: the SOP up to the Rancangan Akhir. The real rows carry blocking
findings (codes outside the 2023 nomenclature, empty indicators, a Renstra of another region), which the
Kasubag's paraf must refuse: the cycle waits at step 8 for a corrected Rancangan Akhir."""

DEMO_CYCLE: tuple[Step, ...] = (
    STEPS[1],
    STEPS[2],
    STEPS[3],
    STEPS[4],
    STEPS[5],
    STEPS[6],
    STEPS[7],
    RETURNS[8],  # the kasubag asks for a note on every sub kegiatan with a placeholder pagu
    STEPS[7],  # the corrected Rancangan Akhir
    STEPS[8],
    STEPS[9],
    STEPS[10],
    STEPS[11],  # with a receipt from every recipient
)
"""The demo's cycle, in order: the whole SOP with one return at step 8."""

# Wide enough for the timeline table even when stdout is not a terminal (CI logs, pipes).
console = Console(width=max(Console().width, 150))


def say(step: int | None, text: str) -> None:
    label = "" if step is None else f"langkah {step}"
    console.print(f"[bold cyan]{label:>9}[/] {text}")


def spinner(what: str) -> Status:
    return console.status(f"[dim]{what}…")


async def pick_fiscal_year(api: Http) -> int:
    """For the PPU example (no registry OPD): the data's year if the plan year is still open, else the
    first open one (the services refuse a plan year that has begun); each later run takes the next year
    with no cycle for this OPD."""
    cycles = await api.call("directive", "GET", "/renja", "auditor")
    taken = {c["fiscal_year"] for c in cycles if c["opd"] == OPD}
    year = max(DATA_YEAR, datetime.now().year + 1)
    while year in taken:
        year += 1
    return year


async def run_region(stack: StackSettings, registry: Registry, plan_year: int) -> list[dict[str, Any]]:
    """Each registry OPD with demo rows prepares its Renja ``plan_year`` as its own people; a cycle that
    exists is reported, not repeated; a refusal (plan year begun) is printed as the services word it."""
    results: list[dict[str, Any]] = []
    for code in BENGKULU_UTARA:
        opd = registry.opd(code)
        console.rule(f"Renja tahun rencana {plan_year} — {opd.name} ({opd.code})")
        api = Http(stack.service_url, everyone(ServiceSettings(service="demo"), opd=code), progress=spinner)
        try:
            cycles = await api.call("directive", "GET", "/renja", "auditor")
            existing = [c for c in cycles if c["opd"] == opd.name and c["fiscal_year"] == plan_year
                        and c["status"] != "cancelled"]  # fmt: skip
            if existing:
                say(None, f"Siklus Renja {opd.short_name} tahun rencana {plan_year} sudah ada "
                          f"({existing[0]['renja_id']}, status {existing[0]['status']}); tidak dibuat lagi. "
                          "Untuk OPD lain: `renja token --role kepala_badan --opd <kode SIPD>` lalu "
                          "POST /renja dengan opd_code.")  # fmt: skip
                results.append({"opd": opd.short_name, "code": code, "renja_id": existing[0]["renja_id"]})
                continue
            cycle = HttpCycle(api, load_sop(), opd=opd.name, year=plan_year, rows=load_opd_rows(code),
                              report=say, opd_code=code, key_prefix=f"demo-{opd.short_name.lower()}")  # fmt: skip
            try:
                for row in REGION_CYCLE:
                    await cycle.run(row)
            except DriveError as exc:
                if cycle.renja_id:
                    raise
                say(1, f"[yellow]ditolak:[/] {exc}")
                results.append({"opd": opd.short_name, "code": code, "refused": str(exc)})
                continue
            results.append({"opd": opd.short_name, "code": code, "renja_id": cycle.renja_id})
        finally:
            await api.close()
    return results


async def region_table(api: Http, registry: Registry, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both OPDs' cycles as the services give them (the directive's list, the documents' state)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        row: dict[str, Any] = {"opd": result["opd"], "opd_code": result["code"], "renja_id": result.get("renja_id")}
        if result.get("renja_id"):
            state = await api.call("documents", "GET", f"/renja/{result['renja_id']}/state", "auditor")
            s, due = state["state"], state.get("next_step") or {}
            row.update(plan_year=s["fiscal_year"], status=s["status"], due_step=due.get("number"),
                       waiting_on=due.get("role"), blocking_findings=s["akhir_blocking_findings"],
                       region=(s.get("opd_identity") or {}).get("region"))  # fmt: skip
        else:
            row.update(status="ditolak", note=result.get("refused", "")[:200])
        rows.append(row)
    table = Table(title=f"Renja {registry.region.name} — siklus per OPD (registri versi {registry.version})")
    for col in ("OPD", "kode SIPD", "tahun rencana", "status", "langkah", "menunggu", "temuan blocking", "Renja id"):
        table.add_column(col, no_wrap=True, overflow="ellipsis", max_width=40)
    for r in rows:
        table.add_row(r["opd"], r["opd_code"], str(r.get("plan_year", "–")), r["status"],
                      str(r.get("due_step") or "–"), r.get("waiting_on") or "–",
                      str(r.get("blocking_findings", "–")), r.get("renja_id") or "–")  # fmt: skip
    console.print(table)
    return rows


async def run_demo(api: Http, stack: StackSettings, out_dir: Path) -> dict[str, Any]:
    """Drive ``DEMO_CYCLE`` on a fresh fiscal year, then summarise what the auditor sees (``audit_summary``)."""
    sop = load_sop()
    year = await pick_fiscal_year(api)
    console.rule(f"Renja {year} — {OPD}")
    cycle = HttpCycle(api, sop, opd=OPD, year=year, rows=load_rows(), report=say)
    for row in DEMO_CYCLE:
        await cycle.run(row)
    return await audit_summary(api, stack, cycle.renja_id, year, out_dir, receipts=len(cycle.receipts))


async def audit_summary(
    api: Http, stack: StackSettings, renja_id: str, year: int, out_dir: Path, receipts: int
) -> dict[str, Any]:
    """Wait for the audit to hold the whole cycle, then verify, compare a rebuild, fetch the artefacts."""
    deadline = time.monotonic() + 120
    timeline: dict[str, Any] = {}
    with console.status("[dim]audit: waiting for the projection to hold the whole cycle…"):
        while time.monotonic() < deadline:
            r = await api.client.get(
                api.url("audit", f"/renja/{renja_id}/timeline"),
                headers={"Authorization": f"Bearer {api.tokens['auditor']}"},
            )
            if r.status_code == 200:
                timeline = r.json()
                got = sum(e["event_type"] == "renja.ReceiptRecorded.v1" for e in timeline["entries"])
                if timeline["status"] == "distributed" and got >= receipts:
                    break
            await asyncio.sleep(0.3)
        else:
            raise DriveError(f"the audit projection never showed the distributed cycle (last: {timeline})")
    verify = await api.call("audit", "GET", f"/renja/{renja_id}/verify", "auditor")
    with console.status("[dim]audit: replaying the log from offset 0 and comparing with the live projection…"):
        compare = await api.call("audit", "POST", "/rebuild/compare", "auditor")

    artefacts = await fetch_artefacts(api, stack, renja_id, out_dir)
    steps = [
        {
            "step": e["step_number"],
            "event_type": e["event_type"],
            "role": e["actor_role"],
            "actor": e["actor_name"],
            "time": e["occurred_at"],
            "working_minutes": e["working_minutes"] if e["working_minutes"] is not None else 0.0,
            "standard_minutes": e["standard_minutes"],
            "overdue": bool(e["overdue"]),
            "draft_version": e["draft_version"],
        }
        for e in timeline["entries"]
        if e["step_number"] is not None
    ]
    returned = any(e["event_type"] == "renja.DraftReturned.v1" for e in timeline["entries"])
    summary = {
        "renja_id": renja_id,
        "opd": OPD,
        "fiscal_year": year,
        "events": len(timeline["entries"]),
        "status": timeline["status"],
        "steps": steps,
        "returned_for_revision": returned,
        "verify_ok": bool(verify["ok"]),
        "verify": {"entries": verify["entries"], "head_signed": verify["head_signed"], "reason": verify["reason"]},
        "rebuild_equals_live": bool(compare["rebuild_equals_live"]),
        "total_working_minutes": timeline["total_working_minutes"],
        "total_standard_minutes": timeline["total_standard_minutes"],
        "artefacts": artefacts,
    }
    print_summary(summary, timeline)
    return summary


async def fetch_artefacts(api: Http, stack: StackSettings, renja_id: str, out_dir: Path) -> dict[str, str]:
    """Download the rendered files into ``out_dir``; name the mail folder and the timeline page."""
    found: dict[str, str] = {}
    drafts = await api.call("documents", "GET", f"/renja/{renja_id}/drafts", "auditor")
    wanted = [
        (f"rancangan_{d['stage']}_v{d['version']}.pdf", f"/renja/{renja_id}/drafts/{d['version']}/document.pdf")
        for d in drafts
    ]
    wanted.append(("renja_signed.pdf", f"/renja/{renja_id}/signed.pdf"))
    meetings = await api.call("meetings", "GET", f"/renja/{renja_id}/meetings", "auditor")
    for m in meetings:
        wanted.append(("daftar_hadir.pdf", f"/renja/{renja_id}/meetings/{m['meeting_id']}/daftar-hadir.pdf"))
        wanted.append(("notulen.pdf", f"/renja/{renja_id}/meetings/{m['meeting_id']}/notulen.pdf"))
    with console.status("[dim]documents: fetching the rendered files…"):
        for name, path in wanted:
            data = await api.call("documents", "GET", path, "auditor", expect=(200,))
            target = out_dir / name
            target.write_bytes(data)
            found[name.removesuffix(".pdf")] = str(target)
    found["mail_dir"] = str(stack.mail_dir)
    mails = sorted(stack.mail_dir.glob("*.eml")) if stack.mail_dir.is_dir() else []
    if mails:
        found["latest_mail"] = str(mails[-1])
    found["logs_dir"] = str(stack.log_dir)
    found["timeline_page"] = api.url("audit", f"/renja/{renja_id}/timeline.html?token={api.tokens['auditor']}")
    return found


def _elapsed(entry: dict[str, Any]) -> str:
    """Wall-clock time from the step's input to its completion (the demo runs in seconds, not days)."""
    if not entry.get("started_at"):
        return ""
    start = datetime.fromisoformat(entry["started_at"])
    end = datetime.fromisoformat(entry["occurred_at"])
    return f"{(end - start).total_seconds():.1f}s"


def print_summary(summary: dict[str, Any], timeline: dict[str, Any]) -> None:
    table = Table(title=f"Audit timeline — Renja {summary['fiscal_year']} ({summary['renja_id']})", show_lines=False)
    columns = ("#", "step", "event", "role", "actor", "time (UTC)", "elapsed", "work min", "standard", "overdue")
    for col in columns:
        table.add_column(col, no_wrap=True, overflow="ellipsis", max_width=36)
    for e in timeline["entries"]:
        table.add_row(
            str(e["position"]),
            "" if e["step_number"] is None else str(e["step_number"]),
            e["event_type"].split(".")[1],
            e["actor_role"],
            e["actor_name"],
            e["occurred_at"][:19],
            _elapsed(e),
            "" if e["working_minutes"] is None else f"{e['working_minutes']:.1f}",
            "" if e["standard_minutes"] is None else str(e["standard_minutes"]),
            "[red]yes[/]" if e["overdue"] else ("no" if e["overdue"] is not None else ""),
        )
    console.print(table)
    console.print(
        f"working minutes: {summary['total_working_minutes']:.1f} of a standard "
        f"{summary['total_standard_minutes']} — counted only inside the agency's office hours (Asia/Jakarta, "
        "weekends, public holidays and cuti bersama excluded); the demo's cycle takes seconds, and outside "
        "office hours it counts 0, so every step is within its mutu baku here."
    )
    ok = "[green]ok[/]" if summary["verify_ok"] else "[red]FAILED[/]"
    console.print(
        f"hash chain verification: {ok} ({summary['verify']['entries']} entries, "
        f"head signed: {summary['verify']['head_signed']})"
    )
    same = "[green]yes[/]" if summary["rebuild_equals_live"] else "[red]NO[/]"
    console.print(f"rebuild from offset 0 equals the live projection: {same}")
    console.print("files:")
    for name, path in summary["artefacts"].items():
        if name != "timeline_page":
            console.print(f"  {name:<20} {path}", soft_wrap=True)
    console.print("timeline page (open in a browser; the link carries a 12-hour auditor token):")
    # Printed without wrapping: a wrapped URL copied line by line would lose the token.
    sys.stdout.write(summary["artefacts"]["timeline_page"] + "\n")


def demo(
    out: Path = typer.Option(REPO / "out" / "demo", help="where summary.json and the rendered files go"),
    plan_year: int = typer.Option(
        BENGKULU_UTARA_YEAR, help="the plan year the registry OPDs prepare (default: their SIPD rows' year)"
    ),
) -> None:
    """Run one complete Renja cycle on the real input through the services' HTTP APIs, then audit it."""

    async def main() -> dict[str, Any]:
        stack = StackSettings()
        api = Http(stack.service_url, everyone(ServiceSettings(service="demo")), progress=spinner)
        try:
            summary = await run_demo(api, stack, out)
            registry = load_registry()
            results = await run_region(stack, registry, plan_year)
            summary["region"] = await region_table(api, registry, results)
            return summary
        finally:
            await api.close()

    out.mkdir(parents=True, exist_ok=True)
    try:
        summary = asyncio.run(main())
    except (DriveError, httpx.HTTPError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        raise typer.Exit(1) from exc
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    console.print(f"\nsummary written to {out / 'summary.json'}")
