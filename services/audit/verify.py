"""``verify``: is one Renja's history intact? Recomputed from the projection and from the Kafka log.

Three checks, each naming the first chain position (1-based) that differs:

- ``projection``: the chain recomputed from the stored records as published (key, ``ce_*`` headers,
  value bytes) equals the stored hashes, and the event JSON the pages show is what those bytes say (an
  edited stored byte, an edited hash or an edited shown event shows here);
- ``kafka``: the chain rebuilt from the Renja's records in ``renja.events`` (the source of truth) equals
  the stored chain, and the shown events are what the log says (deleted, inserted or reordered rows show
  here);
- ``signed_head``: for a completed Renja, the audit's Ed25519-signed head still verifies and the stored
  chain (and the log) still reach it with the same hash, so a cut-off tail is detected even without Kafka;
- ``origin``: every stored entry's producer signature (``shared.origin``) verifies again, from the stored
  bytes, against the key registry (an unsigned entry passes only as a legacy record below the cut-over).

The report names the signer of each entry (``signers``: service and key id, or ``legacy`` for an
unsigned record from before signing).

The report also lists the Renja's anomalies (``audit_anomalies``): events that are intact but that the
SOP would not have decided where they stand. They do not make a chain "not intact"; they are reported
next to it. ``Integrity`` is the one-line verdict every read carries (timeline API and page): verified
up to entry N, or tampered at entry N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.hashchain import (
    OK,
    ChainEntry,
    Published,
    SignedHead,
    VerifyResult,
    build_chain,
    check_signed_head,
    published_from_record,
    verify_chain,
)
from services.audit.logreader import read_from_start
from services.audit.store import StoredAnomaly, StoredEvent, load_anomalies, load_cycle, load_stored, record_json
from shared.cloudevents import DecodeError, from_kafka
from shared.origin import LEGACY, OriginError, Trust, process_trust


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: ``name`` (projection, kafka, signed_head), ``ok``, and on failure the first bad
    ``position``, the ``kind`` (see ``hashchain.FailureKind``), a reason, and the event id found there."""

    name: str
    ok: bool
    position: int | None = None
    kind: str | None = None
    reason: str = ""
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class EntrySigner:
    """Who signed the entry at ``position``: ``service`` and ``key_id``; ``status`` ``signed``, ``legacy``
    (unsigned, accepted below the cut-over) or the refusal reason (``bad_signature``, ``unknown_key``…)."""

    position: int
    event_id: str
    service: str | None
    key_id: str | None
    status: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """All checks of one Renja; ``ok`` only if every check passed. ``first_bad_position`` is the
    lowest failing position over the checks; ``head_signed`` whether a signed head exists."""

    renja_id: str
    ok: bool
    entries: int
    log_entries: int | None
    head_signed: bool
    first_bad_position: int | None
    first_bad_event_id: str | None
    reason: str
    checks: list[CheckResult] = field(default_factory=list)
    anomalies: list[StoredAnomaly] = field(default_factory=list)
    signers: list[EntrySigner] = field(default_factory=list)

    @property
    def position(self) -> int | None:
        """Alias read by the timeline page's integrity box."""
        return self.first_bad_position


def _check(name: str, result: VerifyResult, *chains: list[ChainEntry] | list[StoredEvent]) -> CheckResult:
    if result.ok:
        return CheckResult(name, True)
    event_id = None
    pos = result.first_bad_position
    for chain in chains:
        if pos is not None and 0 < pos <= len(chain):
            item = chain[pos - 1]
            event_id = item.entry.event_id if isinstance(item, StoredEvent) else item.event_id
            break
    return CheckResult(name, False, pos, result.kind, result.reason, event_id)


async def log_records(
    bootstrap: str, topic: str, renja_id: UUID, partition: int | None, trust: Trust | None = None
) -> list[Published]:
    """The Renja's records as they are in the log, as published (in offset order; a record that does not
    decode, whose origin ``trust`` refuses, or that repeats an event id, is left out, as the fold leaves
    it out).

    Reads only ``partition`` when known (every event of one Renja is in one partition), else all of them,
    from offset 0 to the end offsets at the time of the call.
    """
    key = str(renja_id).encode()
    checked = trust or process_trust()
    seen: set[UUID] = set()
    records: list[Published] = []
    partitions = None if partition is None else (partition,)
    async for batch in read_from_start(bootstrap, topic, "audit-verify", partitions=partitions):
        for rec in batch:
            if rec.key != key:
                continue
            try:
                ev = from_kafka(rec.key, rec.value, rec.headers)
                checked.check(rec.key, rec.value, rec.headers, rec.partition, rec.offset)
            except DecodeError:  # OriginError included
                continue
            if ev.event_id not in seen:
                seen.add(ev.event_id)
                records.append(published_from_record(rec.key, rec.value, rec.headers))
    return records


def check_shown(truth: list[Published], stored: list[StoredEvent]) -> VerifyResult:
    """Is every shown event JSON (``audit_events.event``) what the record at its position says
    (``store.record_json``)? ``changed`` at the first position where it is not; positions beyond the
    shorter list are left to the chain comparison."""
    for index, (record, row) in enumerate(zip(truth, stored, strict=False)):
        try:
            said = record_json(record)
        except ValueError:
            said = None
        if said != row.event_json:
            event_id = row.entry.event_id
            return VerifyResult(False, index + 1, f"shown event {event_id} is not what its record says", "changed")
    return OK


def _projection_check(stored: list[StoredEvent], recomputed: list[ChainEntry]) -> CheckResult:
    """The stored hashes against the stored bytes, and the shown events against the stored bytes: the
    first position where either fails (an edited event before deleted rows is named, not the gap)."""
    result = _first_failure(
        verify_chain([s.entry for s in stored], recomputed), check_shown([s.published for s in stored], stored)
    )
    return _check("projection", result, stored)


def _first_failure(*results: VerifyResult) -> VerifyResult:
    """The failed result with the lowest position (OK if none failed)."""
    failed = [r for r in results if not r.ok]
    return min(failed, key=lambda r: r.first_bad_position or 0) if failed else OK


def _kafka_check(
    log: list[Published], log_chain: list[ChainEntry], stored: list[StoredEvent], recomputed: list[ChainEntry]
) -> CheckResult:
    """The log's chain against the chain of the stored bytes, then against the stored hashes; and the
    shown events against the log's records: the first position where the chains or the shown events fail."""
    result = verify_chain(log_chain, recomputed)
    if result.ok:
        result = verify_chain(log_chain, [s.entry for s in stored])
    result = _first_failure(result, check_shown(log, stored))
    return _check("kafka", result, log_chain, stored)


def entry_signers(stored: list[StoredEvent], trust: Trust) -> list[EntrySigner]:
    """Each stored entry's signer, its signature verified again from the stored bytes (``origin``)."""
    out: list[EntrySigner] = []
    for s in stored:
        p = s.published
        key_id = None if p.signature_key_id is None else p.signature_key_id.decode(errors="replace")
        try:
            by = trust.check(p.key, p.value, p.headers(), s.partition, s.offset)
        except OriginError as exc:
            out.append(EntrySigner(s.entry.position, s.entry.event_id, None, key_id, exc.reason))
            continue
        if by == LEGACY:
            out.append(EntrySigner(s.entry.position, s.entry.event_id, None, None, "legacy"))
        else:
            out.append(EntrySigner(s.entry.position, s.entry.event_id, by.service, by.key_id, "signed"))
    return out


def _origin_check(signers: list[EntrySigner]) -> CheckResult:
    for signer in signers:
        if signer.status not in ("signed", "legacy"):
            return CheckResult(
                "origin",
                False,
                signer.position,
                signer.status,
                f"entry {signer.event_id}: {signer.status} (key {signer.key_id})",
                signer.event_id,
            )
    return CheckResult("origin", True)


async def verify_renja(
    conn: asyncpg.Connection,
    renja_id: UUID,
    public_key: Ed25519PublicKey,
    *,
    bootstrap: str | None = None,
    topic: str | None = None,
    trust: Trust | None = None,
) -> VerifyReport | None:
    """Verify one Renja (None if the audit has never seen it). Without ``bootstrap``/``topic`` the
    Kafka check is skipped (the page uses the cheap projection + signed-head checks). ``trust``: the key
    registry and legacy cut-over the producer signatures are checked with (default: this process's)."""
    cycle = await load_cycle(conn, renja_id)
    stored = await load_stored(conn, renja_id)
    if cycle is None and not stored:
        return None
    stored_entries = [s.entry for s in stored]
    recomputed = build_chain([s.published for s in stored])
    checked = trust or process_trust()
    signers = entry_signers(stored, checked)
    checks = [_projection_check(stored, recomputed), _origin_check(signers)]
    log_chain: list[ChainEntry] | None = None
    if bootstrap is not None and topic is not None:
        partition = stored[0].partition if stored else None
        log = await log_records(bootstrap, topic, renja_id, partition, checked)
        log_chain = build_chain(log)
        checks.append(_kafka_check(log, log_chain, stored, recomputed))
    head_signed = cycle is not None and cycle["signature_b64"] is not None
    if cycle is not None and head_signed:
        head = SignedHead(str(renja_id), cycle["signed_position"], cycle["signed_hash"], cycle["signature_b64"])
        result = check_signed_head(public_key, head, stored_entries)
        if result.ok and log_chain is not None:
            result = check_signed_head(public_key, head, log_chain)
        checks.append(_check("signed_head", result, *([log_chain] if log_chain else []), stored))
    failed = [c for c in checks if not c.ok]
    first = min(failed, key=lambda c: c.position or 0) if failed else None
    anomalies = await load_anomalies(conn, renja_id)
    return VerifyReport(
        renja_id=str(renja_id),
        ok=not failed,
        entries=len(stored),
        log_entries=None if log_chain is None else len(log_chain),
        head_signed=head_signed,
        first_bad_position=first.position if first else None,
        first_bad_event_id=first.event_id if first else None,
        reason="; ".join(f"{c.name}: {c.reason} (position {c.position})" for c in failed),
        checks=checks,
        anomalies=anomalies,
        signers=signers,
    )


@dataclass(frozen=True, slots=True)
class Integrity:
    """The verdict on one Renja's stored history, for every read: ``verified`` entries 1..N intact, or
    ``tampered_at`` the first broken entry (1-based); ``message`` in English, ``message_id`` in Indonesian
    (the page's). ``checks`` names the checks run (``projection``, ``signed_head``, ``kafka``)."""

    ok: bool
    entries: int
    verified_entries: int
    tampered_at: int | None
    message: str
    message_id: str
    checks: tuple[str, ...]


def integrity(report: VerifyReport) -> Integrity:
    """The :class:`Integrity` of a verification report."""
    names = tuple(c.name for c in report.checks)
    if report.ok:
        n = report.entries
        return Integrity(True, n, n, None, f"verified up to entry {n}", f"Terverifikasi sampai entri {n}", names)
    at = report.first_bad_position or 1
    return Integrity(
        False,
        report.entries,
        at - 1,
        at,
        f"tampered at entry {at}: {report.reason}",
        f"Riwayat telah diubah pada entri {at}",
        names,
    )
