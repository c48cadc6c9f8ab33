"""``renja migrate``: apply every service's Alembic migrations once, before the services start (the
container deployment's migrations step: compose's ``migrate`` service, the Helm chart's Job).

Each database is migrated under its advisory lock (``shared.db.migrate``), so this is also safe beside
replicas that still migrate at start-up (``RENJA_MIGRATE_ON_START``, default true).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from shared.db import migrate as migrate_database
from shared.manifest import SERVICE_NAMES
from shared.settings import ServiceSettings

SERVICES_DIR = Path(__file__).resolve().parents[1] / "services"


def migrate(
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="only this service (repeatable); default: all")
    ] = None,
) -> None:
    """Migrate the database of each service (``RENJA_POSTGRES_*`` connection settings)."""
    names = service or list(SERVICE_NAMES)
    unknown = sorted(set(names) - set(SERVICE_NAMES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")

    async def run() -> None:
        for name in names:
            settings = ServiceSettings(service=name)
            await migrate_database(settings.postgres_dsn(), SERVICES_DIR / name / "migrations")
            typer.echo(f"{name}: migrated ({settings.database})")

    asyncio.run(run())
