"""The live resources of one service process: pool, relay, consumer, Kafka probe, background tasks,
command unit.

Built by ``shared.app.build_service_app`` (the pool, relay and consumer only once the app starts) and
kept on ``app.state.runtime``; services reach it through typed dependencies, never a dict of extras.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.command import CommandUnit
from shared.inbox import IdempotentConsumer
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings, env_kafka_security
from shared.sop import SopDefinition


class ServiceStarting(Exception):
    """The service's database is not connected yet (HTTP 503)."""


class KafkaProbe:
    """Whether the Kafka broker answers, for ``/readyz``: a metadata request for ``topic`` through one
    long-lived admin client, bounded by ``timeout_s`` (connecting included), its answer cached for
    ``cache_s`` seconds so that a storm of probes sends at most one request per period (concurrent callers
    share the one in flight). A frozen or unreachable broker is reported within ``timeout_s``.
    """

    def __init__(self, bootstrap: str, topic: str, *, timeout_s: float = 2.0, cache_s: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._admin: AIOKafkaAdminClient | None = None
        self._checked_at = float("-inf")
        self._answer: tuple[bool, str | None] = (False, "not checked yet")
        self._lock = asyncio.Lock()

    async def check(self) -> tuple[bool, str | None]:
        """``(True, None)`` if the broker answered within the bound, else ``(False, why)``. Never raises."""
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.cache_s:
                self._answer = await self._ask()
                self._checked_at = time.monotonic()
            return self._answer

    async def _ask(self) -> tuple[bool, str | None]:
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._admin is None:
                    admin = AIOKafkaAdminClient(
                        bootstrap_servers=self.bootstrap,
                        client_id="readiness-probe",
                        request_timeout_ms=int(self.timeout_s * 1000),
                        **env_kafka_security(),
                    )
                    try:
                        await admin.start()
                    except BaseException:
                        with contextlib.suppress(Exception):
                            await admin.close()
                        raise
                    self._admin = admin
                await self._admin.describe_topics([self.topic])
            return True, None
        except TimeoutError:
            return False, f"no answer from Kafka within {self.timeout_s}s"
        except Exception as exc:  # readiness reports, never raises
            return False, repr(exc)

    async def close(self) -> None:
        """Close the admin client (at shutdown; a broker already gone is no error)."""
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


@dataclass
class Runtime:
    """The live resources of one service process (kept on ``app.state.runtime``)."""

    settings: ServiceSettings
    sop: SopDefinition
    commands: CommandUnit
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    consumer: IdempotentConsumer | None = None
    kafka: KafkaProbe | None = None
    projection_lag: Callable[[], Mapping[int, int]] | None = None
    """A service's own log reader's lag per partition (records), if it has one (the audit's projection)."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def published(self, event_ids: Sequence[UUID]) -> bool:
        """Wait until ``event_ids`` are on the log, at most ``RENJA_PUBLISH_ON_COMMIT_TIMEOUT_S``: True once
        they are, False if the bound passed first (``shared.outbox.OutboxRelay.await_published``); True at
        once without a relay (nothing to wait for in this process)."""
        if self.relay is None or self.pool is None:
            return True
        return await self.relay.await_published(self.pool, event_ids, self.settings.publish_on_commit_timeout_s)

    def require_pool(self) -> asyncpg.Pool:
        """The connection pool; raises ``ServiceStarting`` (503) before the app has started."""
        if self.pool is None:
            raise ServiceStarting("The service is starting: its database is not connected yet.")
        return self.pool
