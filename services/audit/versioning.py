"""Which version of the fold built the live audit projection, and a refold from the log when it changed.

Invariant: the live tables are always the fold of ``renja.events`` by the running code's
``PROJECTION_VERSION``. When a release changes what the fold writes (a rule in ``shared.sop.evolve``, the
hash chain, a column's meaning), bump ``PROJECTION_VERSION``: on start-up the audit service then empties
its live tables, in one transaction with the new version mark, and its live consumer folds the whole log
again from offset 0 (the log is the source of truth; nothing is lost). Without a bump, an operator can
still run ``renja rebuild audit --force``.

A release that adds an event type counts: the previous audit skipped those records as unknown, the new
one chains them, so every chain that holds one changes (``make drill-rolling-upgrade`` shows it).
"""

from __future__ import annotations

import asyncpg
import structlog

from services.audit.tables import LIVE

log = structlog.get_logger(__name__)

PROJECTION_VERSION = "8"
"""2: cancellation is absorbing in ``evolve`` (a command that raced a cancellation changes nothing).
3: the hash chain covers the records as published (Kafka key, identifying ``ce_*`` headers, value bytes;
``services.audit.hashchain`` layout v2) instead of each event as re-serialised by the model, so every
``event_hash``/``chain_hash`` and signed head changes once, and never again with a model change; the
rows also keep those bytes (migration ``audit_0003``) and show the event JSON as published. In the same
release ``audit_events.step_number`` comes from the one fold (``evolve``: the step the event newly
completed), so an event that raced a cancellation is stored with no step, as the timeline shows it.
4: ``renja.DirectiveIssued.v1`` records are read as v2 (upcast, ``opd_code`` None) and the folded
``RenjaState`` carries ``opd_code``: the stored cycle states change, so the audit refolds.
5: the fold also records anomalies (``audit_anomalies``, migration ``audit_0004``: ``shared.sop.classify``
and a repeated event id with other bytes), so the audit refolds to flag the events already in the log.
No hash changes: flagged events stay in their chains as before.
6: the notifier's timer notices ``renja.StepReminderDue.v1`` / ``renja.StepOverdue.v1`` are new types: the
previous audit skipped them as unknown, this one chains them and shows them on the timeline as
informational entries (no step, no state change).

7: the folded ``RenjaState`` carries ``opd_identity``, the OPD/region snapshot a registry arahan records
(``DirectiveIssued.opd_identity``, additive): the stored cycle states of such cycles change.

8: signed origin (``shared.origin``): a record whose producer signature does not verify is rejected, not
folded (an unsigned one is accepted only below the legacy cut-over ``RENJA_UNSIGNED_BEFORE``); a signed
record is chained with record layout v3, which covers ``ce_signaturekeyid``/``ce_signature`` (an
unsigned record keeps layout v2, so its hashes do not change), and each row keeps the signature."""

_KEY = "projection_version"


async def ensure_projection_version(pool: asyncpg.Pool, version: str = PROJECTION_VERSION) -> bool:
    """Mark the live projection with ``version``; empty it first if another version (or none) built it.

    Returns True when the live tables were emptied (the live consumer then refolds from offset 0).
    A fresh, empty projection is only marked.
    """
    async with pool.acquire() as conn, conn.transaction():
        # serialises two audit instances starting at once
        await conn.execute("LOCK TABLE audit_meta IN EXCLUSIVE MODE")
        stored = await conn.fetchval("SELECT value FROM audit_meta WHERE key = $1", _KEY)
        if stored == version:
            return False
        has_rows = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {LIVE.offsets})")
        if has_rows:
            await conn.execute(f"TRUNCATE {', '.join(LIVE.all)}")
            log.warning("audit_projection_refold", built_by=stored, now=version)
        await conn.execute(
            "INSERT INTO audit_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
            _KEY,
            version,
        )
        return bool(has_rows)
