"""``renja up`` / ``renja down`` / ``renja status``: the CLI face of the local stack supervisor.

Thin wrappers over ``deploy.local.stack``; settings come from ``RENJA_*`` environment variables
(``deploy.local.settings.StackSettings``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from deploy.local import stack
from deploy.local.settings import StackSettings


def _quiet_client_logs() -> None:
    # Health probes against a broker that is still starting make aiokafka log connection errors;
    # they are expected while polling and would drown the progress lines.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def up(
    clock: str | None = typer.Option(
        None,
        "--clock",
        help="Run every service on a simulated office clock starting at this instant (ISO 8601 with offset, "
        "e.g. 2023-05-15T08:00+07:00). Development only: production refuses it.",
    ),
    speed: float = typer.Option(1.0, "--speed", min=0.001, help="Simulated seconds per wall second (--clock)."),
) -> None:
    """Start (or repair) the local stack: Postgres, Kafka, topics, mail sink, services. Idempotent.

    With ``--clock`` the services started now share one simulated clock (``shared.clock``; services already
    running keep theirs: ``renja down`` first). The epoch
    is the wall time of this command, passed to every process with the start and the speed.
    """
    _quiet_client_logs()
    try:
        settings = StackSettings()
        if clock is not None:
            start = datetime.fromisoformat(clock)
            if start.tzinfo is None:
                raise typer.BadParameter("--clock needs a UTC offset, e.g. 2023-05-15T08:00+07:00")
            settings = settings.model_copy(
                update={"clock_start": start, "clock_speed": speed, "clock_epoch": datetime.now(UTC)}
            )
            typer.echo(f"simulated clock: {start.isoformat()} x{speed:g} (RENJA_CLOCK_START/SPEED/EPOCH)")
        asyncio.run(stack.up(settings, echo=typer.echo))
    except stack.StackError as exc:
        typer.echo(f"up failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def down() -> None:
    """Stop every process of the local stack (services, mail, Kafka, Postgres). Data is kept in .run/."""
    _quiet_client_logs()
    try:
        asyncio.run(stack.down(StackSettings(), echo=typer.echo))
    except stack.StackError as exc:
        typer.echo(f"down failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def status(
    as_json: bool = typer.Option(False, "--json", help="Print {components: {name: {address, pid, healthy}}}."),
) -> None:
    """Check every component; exits 1 if any is unhealthy."""
    _quiet_client_logs()
    statuses = asyncio.run(stack.status(StackSettings()))
    if as_json:
        typer.echo(json.dumps(stack.status_document(statuses), indent=2))
    else:
        table = Table("component", "address", "pid", "healthy", "log")
        for st in statuses.values():
            mark = "[green]yes[/green]" if st.healthy else "[red]no[/red]"
            table.add_row(st.name, st.address, str(st.pid or "-"), mark, str(st.log))
        Console().print(table)
    if not all(st.healthy for st in statuses.values()):
        raise typer.Exit(code=1)
