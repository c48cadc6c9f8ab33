"""``renja dlq list|show|replay``: the operator's view of a consumer group's dead letters, and the way
back onto the event log for a record that was refused by a bug since fixed (``shared.dlq``).

Addresses come from the ``RENJA_*`` environment (``ServiceSettings``: Kafka bootstrap, topic names).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shared.dlq import DeadLetter, dead_letters, replay
from shared.settings import ServiceSettings

console = Console()
dlq_app = typer.Typer(help="Dead-letter topics: list, show, replay onto renja.events.", no_args_is_help=True)

GroupArg = Annotated[str, typer.Argument(help="the consumer group, e.g. documents (topic renja.events.dlq.<group>)")]


def _settings() -> ServiceSettings:
    return ServiceSettings()


def _letters(group: str) -> list[DeadLetter]:
    settings = _settings()
    return asyncio.run(dead_letters(settings.kafka_bootstrap, f"{settings.dlq_topic_prefix}{group}"))


def _pick(letters: list[DeadLetter], offsets: list[int]) -> list[DeadLetter]:
    by_offset = {(d.offset): d for d in letters}
    missing = [o for o in offsets if o not in by_offset]
    if missing:
        raise typer.BadParameter(f"no dead letter at offset(s) {missing}; see `renja dlq list`")
    return [by_offset[o] for o in offsets]


@dlq_app.command("list")
def list_letters(group: GroupArg, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One line per dead letter: offset, reason, event type and id, original position, error."""
    letters = _letters(group)
    if as_json:
        rows = [
            {"offset": d.offset, "reason": d.reason, "ce_type": d.headers.get("ce_type"),
             "ce_id": d.headers.get("ce_id"), "origin": d.origin, "error": d.error}
            for d in letters
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"renja.events.dlq.{group}: {len(letters)} dead letter(s)")
    for col in ("offset", "reason", "type", "event id", "from", "error"):
        table.add_column(col)
    for d in letters:
        error = d.error.splitlines()[0][:60] if d.error else ""
        table.add_row(
            str(d.offset), d.reason, d.headers.get("ce_type", ""), d.headers.get("ce_id", ""), d.origin, error
        )
    console.print(table)


@dlq_app.command("show")
def show(group: GroupArg, offset: Annotated[int, typer.Argument(help="the dead letter's offset")]) -> None:
    """The whole dead letter: headers, key and value (as text)."""
    (letter,) = _pick(_letters(group), [offset])
    typer.echo(json.dumps({
        "offset": letter.offset, "reason": letter.reason, "error": letter.error, "origin": letter.origin,
        "key": None if letter.key is None else letter.key.decode(errors="replace"),
        "headers": letter.headers,
        "value": None if letter.value is None else letter.value.decode(errors="replace"),
    }, indent=2, ensure_ascii=False))  # fmt: skip


@dlq_app.command("replay")
def replay_letters(
    group: GroupArg,
    offsets: Annotated[list[int] | None, typer.Argument(help="offsets to replay (default: all, with --all)")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="replay every dead letter of the group")] = False,
) -> None:
    """Put dead letters back on renja.events through the services' producer, each at most once.

    A letter that still does not decode is not sent (its reason is printed); exit 1 if any was refused.
    """
    letters = _letters(group)
    if not offsets and not replay_all:
        raise typer.BadParameter("name the offsets to replay, or pass --all")
    chosen = letters if replay_all else _pick(letters, offsets or [])
    settings = _settings()
    outcomes = asyncio.run(replay(settings.kafka_bootstrap, settings.event_topic, chosen))
    for o in outcomes:
        typer.echo(f"{o.dead_letter.offset}\t{o.outcome}\t{o.detail}")
    if any(o.outcome == "still_broken" for o in outcomes):
        raise typer.Exit(1)
