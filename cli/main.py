"""The ``renja`` command: the one composition root of the CLI.

Each feature lives in its own ``cli/<feature>.py`` and is registered here by one explicit line
(``app.command(...)`` or ``app.add_typer(...)``); nothing registers itself on import.
"""

from __future__ import annotations

import typer

from cli import audit, demo, dlq, findings, migrate, republish, stack, timers, tokens

app = typer.Typer(
    name="renja",
    help="Renja workflow services: run the local stack and operate the SOP Penyusunan Renja.",
    no_args_is_help=True,
    add_completion=False,
)

# Local stack (deploy/local).
app.command("up")(stack.up)
app.command("down")(stack.down)
app.command("status")(stack.status)

# Databases: every service's migrations, once (the container deployment's migrations step).
app.command("migrate")(migrate.migrate)

# Identity for the local stack.
app.command("token")(tokens.token)

# The auditor's projection (services/audit).
app.command("timeline")(audit.timeline)
app.command("verify")(audit.verify)
app.add_typer(audit.rebuild_app, name="rebuild")
app.command("reconcile")(audit.reconcile)

# The way back when the event log is lost: write it again from the services' own event tables.
app.command("republish")(republish.republish)

# Dead letters of a consumer group: inspect, and replay onto the event log.
app.add_typer(dlq.dlq_app, name="dlq")

# Findings of a draft (services/documents).
app.command("findings")(findings.findings)

# The notifier's step timers (mutu baku): pending, fired, late.
app.command("timers")(timers.timers)

# The main job: one whole Renja cycle through the HTTP APIs, then the auditor's view.
app.command("demo")(demo.demo)


if __name__ == "__main__":
    app()
