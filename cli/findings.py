"""``renja findings``: print the findings of a Renja draft version, read from the documents service.

Findings are computed by the documents service on every draft (steps 5 and 7) and shown to the
reviewers at paraf (steps 8-9); this command is the auditor's read-only view of them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import httpx
import typer
from rich.console import Console
from rich.table import Table

from deploy.local.settings import StackSettings
from shared.auth import mint_token
from shared.settings import ServiceSettings

# A fictitious read-only identity for the local issuer; the audit trail shows it as the reader.
CLI_AUDITOR = ("renja findings (CLI)", "000000000000000000")


class Format(StrEnum):
    table = "table"
    json = "json"


class FindingsError(Exception):
    """The findings could not be read; the message says why, for people."""


def fetch_findings(client: httpx.Client, renja_id: UUID, version: int | None) -> tuple[int, list[dict[str, Any]]]:
    """``(version, findings)`` of draft ``version`` (default: the latest) via the documents HTTP API.

    Each finding is a dict with at least ``severity``, ``rule``, ``codes``, ``message`` and ``source``.
    Raises ``FindingsError`` for an unknown Renja, a Renja without drafts, or an unreachable service.
    """
    try:
        if version is None:
            r = client.get(f"/renja/{renja_id}/drafts")
            _raise_for(r, renja_id)
            drafts = r.json()
            if not drafts:
                raise FindingsError(f"Renja {renja_id} has no draft yet (step 5 not done).")
            version = max(int(d["version"]) for d in drafts)
        r = client.get(f"/renja/{renja_id}/drafts/{version}/findings")
        _raise_for(r, renja_id)
    except httpx.TransportError as exc:
        raise FindingsError(f"The documents service at {client.base_url} is not reachable: {exc}.") from exc
    findings: list[dict[str, Any]] = r.json()
    return version, findings


def _raise_for(r: httpx.Response, renja_id: UUID) -> None:
    if r.status_code == 200:
        return
    try:
        message = r.json().get("message", r.text)
    except ValueError:
        message = r.text
    raise FindingsError(f"documents service answered {r.status_code} for Renja {renja_id}: {message}")


def findings_table(renja_id: UUID, version: int, findings: list[dict[str, Any]]) -> Table:
    """A rich table: severity, rule, codes (the first is the row to fix), message."""
    blocking = sum(f["severity"] == "blocking" for f in findings)
    table = Table(
        title=f"Renja {renja_id} — draft version {version}: {blocking} blocking, {len(findings) - blocking} warning",
        show_lines=False,
    )
    for column in ("Severity", "Rule", "Codes", "Message"):
        table.add_column(column, overflow="fold")
    for f in findings:
        style = "bold red" if f["severity"] == "blocking" else "yellow"
        table.add_row(f["severity"], f["rule"], ", ".join(f["codes"]), f["message"], style=style)
    return table


def findings(
    renja_id: Annotated[UUID, typer.Argument(help="the Renja cycle's id")],
    version: Annotated[int | None, typer.Option(help="draft version (default: the latest)", min=1)] = None,
    output: Annotated[Format, typer.Option("--format", help="table for people, json for scripts")] = Format.table,
) -> None:
    """Print the findings of a draft version of a Renja (default: the latest), as a table or JSON.

    Reads the local stack's documents service with an auditor token from the local issuer. Exit code 1
    if the findings cannot be read (message on stderr).
    """
    stack = StackSettings()
    token = mint_token(ServiceSettings(service="cli"), role="auditor", name=CLI_AUDITOR[0], nip=CLI_AUDITOR[1])
    with httpx.Client(
        base_url=stack.service_url("documents"), headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    ) as client:
        try:
            found_version, items = fetch_findings(client, renja_id, version)
        except FindingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
    if output is Format.json:
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        Console().print(findings_table(renja_id, found_version, items))
