"""``renja timeline``, ``renja verify``, ``renja rebuild audit``, ``renja reconcile``: the auditor's and
operator's commands. They read the audit database and Kafka directly (an operator tool; no token
needed), at the addresses of ``AuditSettings`` (``RENJA_*`` environment, defaults of the local stack).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated
from uuid import UUID

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.audit.api import parse_as_of
from services.audit.keys import key_id, load_signing_key, public_key_b64
from services.audit.page import format_minutes
from services.audit.projector import Projector
from services.audit.rebuild import rebuild as rebuild_projection
from services.audit.reconcile import collect, compare_witnesses, format_report
from services.audit.schemas import timeline_csv, timeline_public, verify_public
from services.audit.settings import AuditSettings
from services.audit.store import load_timeline
from services.audit.tables import REBUILD
from services.audit.verify import verify_renja
from services.audit.workcalendar import calendar_from_sop
from shared.manifest import PRODUCERS, database_of
from shared.sop import load_sop

console = Console()


def timeline(
    renja_id: Annotated[UUID, typer.Argument(help="the Renja id")],
    format: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO time with zone: as it stood then")] = None,
    position: Annotated[int | None, typer.Option("--position", min=1, help="up to this chain position")] = None,
) -> None:
    """Print a Renja's timeline: every event, and each step's working minutes against its standard."""
    if format not in ("table", "json", "csv"):
        raise typer.BadParameter("--format must be table, json or csv")
    settings = AuditSettings()
    sop = load_sop(settings.sop_file)
    try:
        when = parse_as_of(as_of)
    except Exception as exc:
        raise typer.BadParameter(str(getattr(exc, "detail", exc))) from exc

    async def run() -> None:
        conn = await asyncpg.connect(settings.postgres_dsn())
        try:
            tl = await load_timeline(conn, renja_id, sop, calendar_from_sop(sop), as_of=when, position=position)
        finally:
            await conn.close()
        if tl is None:
            typer.echo(f"Renja {renja_id} is not in the audit log.", err=True)
            raise typer.Exit(1)
        public = timeline_public(tl, position)
        if format == "json":
            typer.echo(public.model_dump_json(indent=2))
            return
        if format == "csv":
            typer.echo(timeline_csv(public), nl=False)
            return
        table = Table(title=f"Renja {public.opd} {public.fiscal_year} — {public.status}")
        for col in ("#", "time (UTC)", "event", "step", "actor", "version", "working", "standard", ""):
            table.add_column(col)
        for e in public.entries:
            table.add_row(
                str(e.position),
                e.occurred_at.strftime("%Y-%m-%d %H:%M"),
                e.event_type.split(".")[1],
                "" if e.step_number is None else f"{e.step_number}. {e.step_name}",
                f"{e.actor_name} ({e.actor_role})",
                "" if e.draft_version is None else f"v{e.draft_version}",
                "" if e.step_number is None else format_minutes(e.working_minutes),
                "" if e.standard_minutes is None else format_minutes(e.standard_minutes),
                "[red]terlambat[/red]" if e.overdue else (e.note[:40] if e.note else ""),
            )
        console.print(table)
        console.print(
            f"total {format_minutes(public.total_working_minutes)} working time "
            f"(standard {format_minutes(public.total_standard_minutes)}), {public.overdue_count} overdue"
        )

    asyncio.run(run())


def verify(
    renja_id: Annotated[UUID, typer.Argument(help="the Renja id")],
    kafka: Annotated[bool, typer.Option(help="also replay the Renja's events from Kafka")] = True,
) -> None:
    """Check a Renja's hash chain (projection, Kafka log, signed head); exit 1 naming the first bad entry.
    Anomalies (events the SOP would not have decided there) are listed; they do not fail the check."""
    settings = AuditSettings()
    public = load_signing_key(settings).public_key()

    async def run() -> bool:
        conn = await asyncpg.connect(settings.postgres_dsn())
        try:
            report = await verify_renja(
                conn,
                renja_id,
                public,
                bootstrap=settings.kafka_bootstrap if kafka else None,
                topic=settings.event_topic if kafka else None,
            )
        finally:
            await conn.close()
        if report is None:
            typer.echo(f"Renja {renja_id} is not in the audit log.", err=True)
            raise typer.Exit(1)
        typer.echo(verify_public(report, public_key_b64(public), key_id(public)).model_dump_json(indent=2))
        if report.ok:
            console.print(f"[green]intact[/green]: {report.entries} entries", highlight=False)
        else:
            console.print(
                f"[red]NOT intact[/red] from position {report.first_bad_position} "
                f"(event {report.first_bad_event_id}): {report.reason}",
                highlight=False,
            )
        if report.anomalies:
            console.print(f"[yellow]{len(report.anomalies)} anomalies[/yellow] (events kept in the chain):")
        for a in report.anomalies:
            where = "-" if a.position is None else str(a.position)
            console.print(f"  position {where}: {a.kind}: {a.message} (event {a.event_id})", highlight=False)
        return report.ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


rebuild_app = typer.Typer(help="Rebuild a projection from the event log.", no_args_is_help=True)


@rebuild_app.command("audit")
def rebuild_audit(
    force: Annotated[
        bool, typer.Option(help="no longer needed: a differing projection is always restored from the log")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="rebuild and compare, but do not swap")] = False,
    wait: Annotated[float, typer.Option(help="seconds to wait for the live projection to catch up")] = 60.0,
) -> None:
    """Replay renja.events from offset 0 into fresh tables, compare with the live audit, swap atomically.

    The log is the truth: when the live tables differ, the rebuild replaces them all the same and the
    damaged tables are kept in a new schema audit_damaged_<UTC time> for the investigation."""
    settings = AuditSettings()
    sop = load_sop(settings.sop_file)
    key = load_signing_key(settings)

    async def run() -> bool:
        pool = await asyncpg.create_pool(settings.postgres_dsn(), min_size=1, max_size=2)
        try:
            with Progress(
                TextColumn("rebuilding audit"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("replay", total=None)
                report = await rebuild_projection(
                    pool,
                    bootstrap=settings.kafka_bootstrap,
                    topic=settings.event_topic,
                    projector=Projector(sop, key, REBUILD, keep_cache=True),
                    swap=not dry_run,
                    force=force,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                    batch_max=settings.projection_batch_max,
                    live_wait_seconds=wait,
                )
        finally:
            await pool.close()
        rate = report.records / report.seconds if report.seconds else 0.0
        console.print(f"{report.records} records, {report.events} events in {report.seconds:.1f} s ({rate:,.0f}/s)")
        for table, (only_live, only_rebuild) in report.comparison.differences.items():
            mark = "same" if not (only_live or only_rebuild) else f"{only_live} only live, {only_rebuild} only rebuilt"
            console.print(f"  {table}: {mark}")
        if report.equal:
            console.print(f"rebuild equal; {'swapped in' if report.swapped else 'live tables kept'}")
            return True
        if report.kept_in is not None:
            console.print(
                f"[red]the live audit tables differed from the log[/red]: restored from the log; the damaged "
                f"tables are kept aside in schema {report.kept_in} for the investigation "
                f"(e.g. SELECT * FROM {report.kept_in}.audit_events)",
                highlight=False,
            )
            return True
        console.print("rebuild DIFFERENT; live tables kept (--dry-run)")
        return False

    if not asyncio.run(run()):
        raise typer.Exit(1)


def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Compare the event ids in every service's events table, in Kafka and in the audit; exit 1 on any gap."""
    settings = AuditSettings()
    dsns = {name: settings.postgres_dsn(database_of(name)) for name in PRODUCERS}

    async def run() -> bool:
        witnesses = await collect(
            bootstrap=settings.kafka_bootstrap,
            topic=settings.event_topic,
            audit_dsn=settings.postgres_dsn(),
            service_dsns=dsns,
        )
        report = compare_witnesses(witnesses)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "ok": report.ok,
                        "counts": report.counts,
                        "discrepancies": [asdict(d) for d in report.discrepancies],
                    },
                    indent=2,
                )
            )
        else:
            for line in format_report(report):
                typer.echo(line)
        return report.ok

    if not asyncio.run(run()):
        raise typer.Exit(1)
