"""The audit service's live loop: ``renja.events`` folded into the live tables as it arrives.

The live consumer reads without a consumer group (partitions assigned, positions from
``audit_offsets``): the audit is a single writer of its own projection. It does not pick up partitions
added to the topic while it runs (restart it after adding partitions). A new ``PROJECTION_VERSION``
empties the live tables before this loop starts (``services.audit.versioning``), so it then refolds the
log from offset 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError

from services.audit.logreader import Record, close_reader, open_reader, seek_to, topic_partitions
from services.audit.projector import BatchResult, Projector
from services.audit.store import stored_offsets
from shared import tracing
from shared.inbox import partition_lag

log = structlog.get_logger(__name__)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    KafkaConnectionError,
    KafkaError,
)


class LiveProjection:
    """The audit service's consumer: folds ``topic`` into the live tables from the stored offsets on.

    Each ``getmany`` batch (all partitions) is one transaction: rows + cycles + offsets. On any failure
    the transaction rolls back, the loop backs off, and the consumer is re-positioned from the offsets in
    the database, so nothing is lost and nothing is applied twice.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        bootstrap: str,
        topic: str,
        projector: Projector,
        batch_max: int = 5000,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.topic = topic
        self.projector = projector
        self.batch_max = batch_max
        self.on_batch = on_batch
        self.running = False
        self.applied = 0
        self.last_error: str | None = None
        self.lag: dict[int, int] = {}
        """Records of the log not yet folded, per partition (log end minus folded offset), after each poll."""

    async def run(self) -> None:
        """Consume until cancelled; reconnect with backoff after errors."""
        backoff = 0.2
        while True:
            consumer: AIOKafkaConsumer | None = None
            try:
                consumer = await open_reader(self.bootstrap, "audit-projection")
                await self._position(consumer)
                self.running = True
                backoff = 0.2
                while True:
                    got = await consumer.getmany(timeout_ms=500, max_records=self.batch_max)
                    records = [rec for recs in got.values() for rec in recs]
                    if records:
                        await self._fold(records)
                    self.lag = await partition_lag(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble or a bug: never skip, re-read from stored offsets
                self.projector.forget()
                self.last_error = repr(exc)
                level = "warning" if isinstance(exc, CONNECTION_ERRORS) else "error"
                getattr(log, level)("audit_projection_restarting", error=repr(exc), backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.running = False
                if consumer is not None:
                    await close_reader(consumer)

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        """Assign every partition of the topic and seek each to its stored next offset (else offset 0)."""
        tps = await topic_partitions(consumer, self.topic)
        async with self.pool.acquire() as conn:
            offsets = await stored_offsets(conn, self.projector.tables)
        await seek_to(consumer, tps, offsets)

    async def _fold(self, records: list[Record]) -> None:
        # a span per record, continuing its trace (shared.tracing; a no-op unless tracing is on)
        with tracing.folding(self.topic, "audit", [tracing.record_trace(rec.headers) for rec in records]):
            async with self.pool.acquire() as conn, conn.transaction():
                # a rebuild's swap takes this lock too: the fold waits while the tables are exchanged
                await conn.execute(f"LOCK TABLE {self.projector.tables.offsets} IN ROW EXCLUSIVE MODE")
                result = await self.projector.apply(conn, records)
        self.applied += result.applied
        if self.on_batch is not None:
            self.on_batch(result)
