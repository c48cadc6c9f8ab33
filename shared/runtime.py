"""The live resources of one service process: pool, relay, consumer, background tasks, command unit.

Built by ``shared.app.build_service_app`` (the pool, relay and consumer only once the app starts) and
kept on ``app.state.runtime``; services reach it through typed dependencies, never a dict of extras.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from shared.command import CommandUnit
from shared.inbox import IdempotentConsumer
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from shared.sop import SopDefinition


class ServiceStarting(Exception):
    """The service's database is not connected yet (HTTP 503)."""


@dataclass
class Runtime:
    """The live resources of one service process (kept on ``app.state.runtime``)."""

    settings: ServiceSettings
    sop: SopDefinition
    commands: CommandUnit
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    consumer: IdempotentConsumer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def require_pool(self) -> asyncpg.Pool:
        """The connection pool; raises ``ServiceStarting`` (503) before the app has started."""
        if self.pool is None:
            raise ServiceStarting("The service is starting: its database is not connected yet.")
        return self.pool
