"""Rebuild the audit projection from offset 0 while the live one keeps serving; compare; swap atomically.

Procedure (``rebuild``):

1. create empty ``audit_*_rebuild`` tables shaped like the live ones;
2. replay ``renja.events`` with a fresh group-less consumer from offset 0 to the end offsets taken at the
   start, through the same :class:`~services.audit.projector.Projector` as the live consumer
   (``services.audit.replay``);
3. wait until the live projection has folded at least as far as the rebuild;
4. in ONE transaction: lock the live tables against writers (readers go on), fold into the rebuild the
   records the live consumer folded meanwhile (so both end at the same offsets), compare every row of
   every table (``EXCEPT`` both ways: events with their hashes, cycles with their signed heads,
   offsets, rejects, anomalies) and rename the rebuild tables into place. When equal, the old tables
   are dropped; when they differ, the log is the truth: the rebuild is swapped in all the same and the
   damaged live tables are moved, whole, into a new schema ``audit_damaged_<UTC time>`` for the
   investigation (``RebuildReport.kept_in``). Only ``swap=False`` (``--dry-run``) leaves the live tables
   in place, and then the rebuild tables are left for inspection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.audit.projector import Projector
from services.audit.replay import Progress, fold_range, fresh_replay, replay_from_start
from services.audit.store import stored_offsets
from services.audit.tables import BASE_TABLES, LIVE, REBUILD, TableSet, drop_tables, swap_in, swap_in_keeping

log = structlog.get_logger(__name__)


@dataclass
class Comparison:
    """Rows present in one table set and not the other, per table (``{table: (only_live, only_other)}``)."""

    differences: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not any(a or b for a, b in self.differences.values())


@dataclass
class RebuildReport:
    """Outcome: ``records`` read from the log, ``events`` rows rebuilt, whether the two projections were
    ``equal`` and whether the rebuild was ``swapped`` in; ``comparison`` per table; ``seconds`` spent;
    ``kept_in``: the schema the differing (damaged) live tables were moved into, if any."""

    records: int
    events: int
    equal: bool
    swapped: bool
    comparison: Comparison
    seconds: float
    offsets: dict[int, int]
    kept_in: str | None = None


def damaged_schema(now: datetime) -> str:
    """``audit_damaged_<YYYYmmdd_HHMMSS>`` (UTC) for damaged tables set aside at ``now`` (aware)."""
    return f"audit_damaged_{now.astimezone(UTC):%Y%m%d_%H%M%S}"


async def compare(conn: asyncpg.Connection, a: TableSet = LIVE, b: TableSet = REBUILD) -> Comparison:
    """Row-by-row comparison of every projection table (all columns, hashes and signatures included)."""
    result = Comparison()
    for base in BASE_TABLES:
        ta, tb = f"{base}{a.suffix}", f"{base}{b.suffix}"
        only_a = await conn.fetchval(f"SELECT count(*) FROM (SELECT * FROM {ta} EXCEPT ALL SELECT * FROM {tb}) x")
        only_b = await conn.fetchval(f"SELECT count(*) FROM (SELECT * FROM {tb} EXCEPT ALL SELECT * FROM {ta}) x")
        result.differences[base] = (int(only_a), int(only_b))
    return result


async def _wait_for_live(conn: asyncpg.Connection, rebuilt: dict[int, int], wait_seconds: float) -> None:
    """Return once the live offsets reach ``rebuilt`` (``{partition: next offset}``); ``TimeoutError``
    after ``wait_seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        live = await stored_offsets(conn, LIVE)
        behind = {p: o for p, o in rebuilt.items() if o > 0 and live.get(p, 0) < o}
        if not behind:
            return
        if loop.time() > deadline:
            raise TimeoutError(
                f"the live audit projection has not reached the rebuilt offsets {behind} within "
                f"{wait_seconds:.0f} s; start the audit service (or give it longer: --wait)"
            )
        await asyncio.sleep(0.2)


@dataclass
class _Settled:
    """What the locked transaction did: records/events caught up, the comparison, the swap, the offsets."""

    records: int
    events: int
    comparison: Comparison
    swapped: bool
    offsets: dict[int, int]
    kept_in: str | None = None


async def _settle(
    conn: asyncpg.Connection,
    consumer: AIOKafkaConsumer,
    projector: Projector,
    tps: list[TopicPartition],
    end: dict[TopicPartition, int],
    *,
    batch_max: int,
    swap: bool,
    tick: Callable[[int], None],
) -> _Settled:
    """Step 4 of the procedure (module docstring), in one transaction on ``conn``."""
    records = events = 0
    async with conn.transaction():
        # writers wait (the live consumer's fold takes ROW EXCLUSIVE on audit_offsets), readers go on
        # offsets first, the order the live fold takes its locks in (no deadlock)
        order = [LIVE.offsets] + [t for t in LIVE.all if t != LIVE.offsets]
        await conn.execute(f"LOCK TABLE {', '.join(order)} IN EXCLUSIVE MODE")
        live = await stored_offsets(conn, LIVE)
        catch_up = {tp: live.get(tp.partition, 0) for tp in tps}
        if any(catch_up[tp] > end[tp] for tp in tps):
            # fold what the live consumer folded since the replay's end, so both stop at one offset
            for tp in tps:
                consumer.seek(tp, end[tp])
            records, events = await fold_range(conn, consumer, tps, catch_up, projector, batch_max, tick)
        comparison = await compare(conn, LIVE, projector.tables)
        kept_in = None
        if swap and comparison.equal:
            await swap_in(conn, projector.tables)
        elif swap:
            # the log is the truth: restore from it, and keep what was served for the investigation
            kept_in = damaged_schema(datetime.now(UTC))
            await swap_in_keeping(conn, projector.tables, kept_in)
            log.warning("audit_projection_restored", kept_in=kept_in, differences=comparison.differences)
        final = await stored_offsets(conn, LIVE if swap else projector.tables)
    return _Settled(records, events, comparison, swap, final, kept_in)


async def rebuild(
    pool: asyncpg.Pool,
    *,
    bootstrap: str,
    topic: str,
    projector: Projector,
    swap: bool = True,
    force: bool = False,
    progress: Progress | None = None,
    batch_max: int = 5000,
    live_wait_seconds: float = 60.0,
    workers: int = 1,
    dsn: str | None = None,
) -> RebuildReport:
    """Rebuild into ``projector.tables`` (must not be LIVE), compare with the live tables, swap if asked.

    ``swap=False``: build and compare only (the live tables are not locked beyond the comparison).
    ``swap=True`` swaps whether or not the comparison differs (the log is the source of truth); differing
    live tables are kept in a new schema (``RebuildReport.kept_in``). ``force`` is accepted for old callers
    and changes nothing.
    Raises ``TimeoutError`` if the live projection does not reach the rebuilt offsets within
    ``live_wait_seconds`` (is the audit service running?), ``LookupError`` for a missing topic.
    ``workers``/``dsn``: as for :func:`~services.audit.replay.replay_into` (the replay phase only).
    """
    if projector.tables == LIVE:
        raise ValueError("a rebuild must write into a table set other than the live one")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with fresh_replay(pool, projector, bootstrap, "audit-rebuild") as consumer:
        tps, end, records, events = await replay_from_start(
            pool, consumer, bootstrap=bootstrap, topic=topic, projector=projector, progress=progress,
            batch_max=batch_max, workers=workers, dsn=dsn,
        )  # fmt: skip
        done = records

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, done)

        async with pool.acquire() as conn:
            await _wait_for_live(conn, {tp.partition: end[tp] for tp in tps}, live_wait_seconds)
            settled = await _settle(conn, consumer, projector, tps, end, batch_max=batch_max, swap=swap, tick=tick)
    records, events = records + settled.records, events + settled.events
    equal, swapped, seconds = settled.comparison.equal, settled.swapped, loop.time() - started
    log.info(
        "audit_rebuilt", records=records, events=events, equal=equal, swapped=swapped, seconds=seconds,
        kept_in=settled.kept_in,
    )  # fmt: skip
    return RebuildReport(records, events, equal, swapped, settled.comparison, seconds, settled.offsets, settled.kept_in)


async def rebuild_equals_live(
    pool: asyncpg.Pool, *, bootstrap: str, topic: str, projector: Projector, live_wait_seconds: float = 60.0
) -> bool:
    """True if a rebuild from offset 0 gives exactly the live projection (rows and hashes); nothing is
    swapped, and the scratch tables are dropped afterwards. For the demo and the tests."""
    try:
        report = await rebuild(
            pool,
            bootstrap=bootstrap,
            topic=topic,
            projector=projector,
            swap=False,
            live_wait_seconds=live_wait_seconds,
        )
    finally:
        async with pool.acquire() as conn:
            await drop_tables(conn, projector.tables)
    return report.equal
