"""Tamper evidence for one Renja's event log: a SHA-256 hash chain and Ed25519-signed chain heads.

This module owns the auditor's "proof that nothing was altered" (DESIGN.md, *Who uses it*):

- every event of one Renja (log order, positions from 1) is reduced to canonical JSON bytes;
- ``chain_hash(n) = SHA-256(hex(chain_hash(n-1)) + "\\n" + bytes(n))``, with 64 zeros before the first,
  so changing, removing, inserting or reordering any event changes every later link;
- a chain alone cannot show that its *tail* was cut off (a shorter chain is still self-consistent), so the
  audit service signs the head it has seen (Renja id, position, chain hash) with Ed25519; a rebuilt chain
  that no longer reaches that position, or differs there, fails :func:`check_signed_head`.

Pure: keys are passed in, no clock, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.events import Event

GENESIS = "0" * 64
"""The ``prev_hash`` of the first link."""

HEAD_DOMAIN = "renja-audit-head/v1"
"""Domain separation for signed heads, so a head signature can never be replayed as anything else."""


def event_json(event: Event) -> dict[str, Any]:
    """The JSON object hashed for one event: ``{"event_type": "renja.X.v1", **model_dump(mode="json")}``.

    The type is included so two events of different types with equal fields never hash alike.
    """
    return {"event_type": event.event_type, **event.model_dump(mode="json")}


def canonical_event_bytes(event_json: Mapping[str, Any]) -> bytes:
    """Canonical UTF-8 JSON of one event: sorted keys, ``(',', ':')`` separators, non-ASCII kept as is.

    ``event_json`` must hold JSON types only (datetimes already as ISO strings, as produced by
    ``model_dump(mode="json")``). Raises ``TypeError`` for a non-JSON value and ``ValueError`` for NaN or
    infinity (they have no canonical JSON form).
    """
    text = json.dumps(event_json, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def event_hash(event_bytes: bytes) -> str:
    """SHA-256 (lowercase hex) of one event's canonical bytes."""
    return hashlib.sha256(event_bytes).hexdigest()


def chain_hash(prev_hash: str | None, event_bytes: bytes) -> str:
    """The next link: SHA-256 hex over ``(prev_hash or 64 * '0')`` as ASCII, ``b"\\n"``, ``event_bytes``.

    Raises ``ValueError`` if ``prev_hash`` is not 64 lowercase hex characters.
    """
    prev = GENESIS if prev_hash is None else prev_hash
    if len(prev) != 64 or any(c not in "0123456789abcdef" for c in prev):
        raise ValueError(f"prev_hash must be 64 lowercase hex characters, got {prev!r}")
    return hashlib.sha256(prev.encode("ascii") + b"\n" + event_bytes).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One link: the event at ``position`` (1-based, log order of one Renja) and its hashes."""

    position: int
    event_id: str
    event_hash: str
    chain_hash: str


class ChainEntryLike(Protocol):
    """Anything with a chain entry's four attributes (e.g. a row read back from the audit store)."""

    @property
    def position(self) -> int: ...
    @property
    def event_id(self) -> Any: ...
    @property
    def event_hash(self) -> str: ...
    @property
    def chain_hash(self) -> str: ...


ChainItem = Event | Mapping[str, Any] | ChainEntryLike
"""What a chain can be given as: event models, event JSON dicts, or already-built entries."""


def build_chain(events: Iterable[Event | Mapping[str, Any]]) -> list[ChainEntry]:
    """Chain ``events`` (one Renja, log order) into entries with positions 1, 2, ….

    Each item is an event model (hashed as :func:`event_json`) or an event JSON dict of that shape
    (``event_id`` at top level). Raises ``KeyError`` for a dict without ``event_id`` and the errors of
    :func:`canonical_event_bytes`.
    """
    return _chain_from(None, 0, events)


def extend_chain(chain: Sequence[ChainEntry], events: Iterable[Event | Mapping[str, Any]]) -> list[ChainEntry]:
    """The new entries that append ``events`` to ``chain`` (positions continue after its last entry)."""
    if not chain:
        return _chain_from(None, 0, events)
    last = chain[-1]
    return _chain_from(last.chain_hash, last.position, events)


def _chain_from(
    prev_hash: str | None, last_position: int, events: Iterable[Event | Mapping[str, Any]]
) -> list[ChainEntry]:
    entries: list[ChainEntry] = []
    prev = prev_hash
    for offset, item in enumerate(events, start=1):
        data = event_json(item) if isinstance(item, Event) else item
        raw = canonical_event_bytes(data)
        link = chain_hash(prev, raw)
        entries.append(
            ChainEntry(
                position=last_position + offset,
                event_id=str(data["event_id"]),
                event_hash=event_hash(raw),
                chain_hash=link,
            )
        )
        prev = link
    return entries


FailureKind = Literal["changed", "missing", "extra", "reordered", "broken_link", "truncated", "bad_signature"]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a verification; on failure, the first position (1-based) that differs and why."""

    ok: bool
    first_bad_position: int | None = None
    reason: str = ""
    kind: FailureKind | None = None


OK = VerifyResult(ok=True)


def _as_entries(items: Sequence[ChainItem]) -> list[ChainEntry]:
    """Normalise a sequence that is either all chain entries or all events into chain entries."""
    if not items:
        return []
    first = items[0]
    if isinstance(first, Event) or (isinstance(first, Mapping) and "chain_hash" not in first):
        events: list[Event | Mapping[str, Any]] = []
        for item in items:
            if not isinstance(item, Event | Mapping):
                raise TypeError("a chain must be given as all events or all entries, not a mix")
            events.append(item)
        return build_chain(events)
    entries: list[ChainEntry] = []
    for item in items:
        if isinstance(item, Event):
            raise TypeError("a chain must be given as all events or all entries, not a mix")
        if isinstance(item, Mapping):
            entries.append(
                ChainEntry(
                    position=int(item["position"]),
                    event_id=str(item["event_id"]),
                    event_hash=str(item["event_hash"]),
                    chain_hash=str(item["chain_hash"]),
                )
            )
        else:
            entries.append(
                ChainEntry(
                    position=int(item.position),
                    event_id=str(item.event_id),
                    event_hash=str(item.event_hash),
                    chain_hash=str(item.chain_hash),
                )
            )
    return entries


def verify_chain(expected: Sequence[ChainItem], actual: Sequence[ChainItem]) -> VerifyResult:
    """Compare a trusted chain (``expected``, e.g. the audit store) with one rebuilt now (``actual``,
    e.g. a replay of the Kafka log or a service's own event table).

    Each side is all chain entries (objects or dicts with ``position, event_id, event_hash, chain_hash``)
    or all events (models or event JSON dicts), which are chained first. Positions are taken from list
    order (1-based). Returns ``ok`` or the first differing position with a ``kind``:
    ``changed`` (same event id, other content), ``missing`` / ``extra`` (an entry dropped / inserted),
    ``reordered``, ``broken_link`` (same event but the link differs: a stored entry was edited),
    ``truncated`` (``actual`` stops early; ``extra`` if it runs on). Raises ``TypeError`` for a mixed list.
    """
    exp = _as_entries(expected)
    act = _as_entries(actual)
    for index, (e, a) in enumerate(zip(exp, act, strict=False)):
        position = index + 1
        if e.event_id != a.event_id:
            return _id_mismatch(exp, act, index)
        if e.event_hash != a.event_hash:
            return VerifyResult(False, position, f"event {e.event_id} content changed", "changed")
        if e.chain_hash != a.chain_hash:
            return VerifyResult(
                False, position, f"chain link of event {e.event_id} differs (history altered)", "broken_link"
            )
    if len(act) < len(exp):
        position = len(act) + 1
        missing = len(exp) - len(act)
        return VerifyResult(
            False,
            position,
            f"{missing} entr{'y' if missing == 1 else 'ies'} missing from the end",
            "truncated",
        )
    if len(act) > len(exp):
        position = len(exp) + 1
        return VerifyResult(False, position, f"unexpected extra entry {act[len(exp)].event_id}", "extra")
    return OK


def _id_mismatch(exp: Sequence[ChainEntry], act: Sequence[ChainEntry], index: int) -> VerifyResult:
    position = index + 1
    e, a = exp[index], act[index]
    later_expected = {entry.event_id for entry in exp[index + 1 :]}
    expected_ids = {entry.event_id for entry in exp}
    actual_ids = {entry.event_id for entry in act}
    if e.event_id not in actual_ids:
        return VerifyResult(False, position, f"event {e.event_id} is missing", "missing")
    if a.event_id not in expected_ids:
        return VerifyResult(False, position, f"unexpected extra event {a.event_id}", "extra")
    if a.event_id in later_expected:
        return VerifyResult(False, position, f"event {a.event_id} appears out of order", "reordered")
    return VerifyResult(False, position, f"expected event {e.event_id}, found {a.event_id}", "reordered")


# --- signed heads ------------------------------------------------------------------------------------


def head_message(renja_id: UUID | str, position: int, chain_hash: str) -> bytes:
    """The exact bytes a head signature covers: ``domain\\nrenja_id\\nposition\\nchain_hash`` (UTF-8)."""
    return f"{HEAD_DOMAIN}\n{UUID(str(renja_id))}\n{position}\n{chain_hash}".encode()


def sign_head(private_key: Ed25519PrivateKey, renja_id: UUID | str, position: int, chain_hash: str) -> str:
    """Ed25519 signature (standard base64) over :func:`head_message`. Raises ``ValueError`` for a bad id."""
    return base64.b64encode(private_key.sign(head_message(renja_id, position, chain_hash))).decode("ascii")


def verify_head(
    public_key: Ed25519PublicKey, renja_id: UUID | str, position: int, chain_hash: str, signature_b64: str
) -> bool:
    """True if ``signature_b64`` is a valid Ed25519 signature of this head by ``public_key``.

    Never raises for a malformed signature or id (returns False).
    """
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, head_message(renja_id, position, chain_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A chain head the audit service vouched for: the Renja's chain reached ``position`` with
    ``chain_hash``; ``signature_b64`` by the audit key (see :func:`sign_head`)."""

    renja_id: str
    position: int
    chain_hash: str
    signature_b64: str


def make_signed_head(private_key: Ed25519PrivateKey, renja_id: UUID | str, chain: Sequence[ChainEntry]) -> SignedHead:
    """Sign the last entry of ``chain``. Raises ``ValueError`` for an empty chain."""
    if not chain:
        raise ValueError("cannot sign the head of an empty chain")
    last = chain[-1]
    rid = str(UUID(str(renja_id)))
    return SignedHead(rid, last.position, last.chain_hash, sign_head(private_key, rid, last.position, last.chain_hash))


def check_signed_head(public_key: Ed25519PublicKey, head: SignedHead, chain: Sequence[ChainItem]) -> VerifyResult:
    """Check a rebuilt ``chain`` (entries or events) against a signed head.

    Fails with ``bad_signature`` if the head itself is not authentic, ``truncated`` if the chain ends
    before ``head.position`` (the tail was cut off), ``changed`` if the link at that position differs.
    Entries after the head are fine (the log kept growing).
    """
    if not verify_head(public_key, head.renja_id, head.position, head.chain_hash, head.signature_b64):
        return VerifyResult(False, head.position, "signed head does not verify", "bad_signature")
    entries = _as_entries(chain)
    if len(entries) < head.position:
        return VerifyResult(
            False,
            len(entries) + 1,
            f"chain ends at position {len(entries)} but the signed head is at {head.position}",
            "truncated",
        )
    if entries[head.position - 1].chain_hash != head.chain_hash:
        return VerifyResult(
            False,
            head.position,
            f"chain hash at position {head.position} differs from the signed head",
            "changed",
        )
    return OK
