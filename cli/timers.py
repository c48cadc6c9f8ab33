"""``renja timers``: the notifier's step timers (mutu baku) — pending ones, or the notices already fired —
and whether any is late to fire, read from the local stack's notifier over HTTP (``GET /timers``,
``GET /timers/health``) with an auditor token from the local issuer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
import typer
from rich.console import Console
from rich.table import Table

from deploy.local.settings import StackSettings
from shared.auth import mint_token
from shared.settings import ServiceSettings

CLI_AUDITOR = ("renja timers (CLI)", "000000000000000000")
WIB = ZoneInfo("Asia/Jakarta")


def _local(text: str | None) -> str:
    """An ISO instant as ``2023-05-15 13:02 WIB`` (the office's zone), ``-`` when empty."""
    if not text:
        return "-"
    return datetime.fromisoformat(text).astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB")


def timers_table(rows: list[dict[str, Any]], *, fired: bool, health: dict[str, Any]) -> Table:
    """Pending timers (when each fires) or fired notices (when, by which instance), one row per timer."""
    title = (
        f"{'Fired notices' if fired else 'Pending timers'} — pending {health['pending']}, late {health['late']}, "
        f"clock {_local(health['now'])}"
    )
    table = Table(title=title)
    for column in ("Renja", "Step", "Kind", "Role", "Mutu baku", "Due since", "Fires at", "Status"):
        table.add_column(column, overflow="fold")
    for r in rows:
        status = r["status"]
        if fired:
            status = f"fired {_local(r['fired_at'])} ({r['fired_by']})"
        elif r["cancel_reason"]:
            status = f"cancelled: {r['cancel_reason']}"
        style = "bold red" if r["kind"] == "overdue" and fired else None
        table.add_row(
            str(r["renja_id"])[:8],
            str(r["step"]),
            r["kind"],
            r["role"],
            f"{r['standard_minutes']} min",
            _local(r["due_since"]),
            _local(r["fire_at"]),
            status,
            style=style,
        )
    return table


def timers(
    fired: Annotated[bool, typer.Option("--fired", help="list the fired notices instead of pending timers")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many rows")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="print {health, timers} as JSON")] = False,
) -> None:
    """List the notifier's step timers (pending, or fired with ``--fired``) and the late-to-fire count.

    Exit code 1 if the notifier cannot be read, 2 if any timer is late to fire (``RENJA_TIMER_LATE_SECONDS``).
    """
    stack = StackSettings()
    token = mint_token(ServiceSettings(service="cli"), role="auditor", name=CLI_AUDITOR[0], nip=CLI_AUDITOR[1])
    try:
        with httpx.Client(
            base_url=stack.service_url("notifier"), headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        ) as client:
            listed = client.get("/timers", params={"fired": fired, "limit": limit})
            listed.raise_for_status()
            health = client.get("/timers/health").json()
    except (httpx.HTTPError, ValueError) as exc:
        typer.echo(f"the notifier at {stack.service_url('notifier')} could not be read: {exc}", err=True)
        raise typer.Exit(1) from exc
    rows: list[dict[str, Any]] = listed.json()
    if as_json:
        typer.echo(json.dumps({"health": health, "timers": rows}, ensure_ascii=False, indent=2))
    else:
        Console(width=160).print(timers_table(rows, fired=fired, health=health))
    if health.get("late"):
        raise typer.Exit(2)
