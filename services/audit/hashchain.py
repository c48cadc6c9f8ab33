r"""Tamper evidence for one Renja's event log: a SHA-256 hash chain over the records as published, and
Ed25519-signed chain heads.

This module owns the auditor's "proof that nothing was altered" (DESIGN.md, *Who uses it*). The chain
covers the bytes that were published to ``renja.events``, never an event as re-serialised by the current
model, so no release (an added defaulted field, an upcaster, another JSON library) can alter a past hash.

**Byte layout (version 2).** One Kafka record of one Renja (positions from 1, log order) is reduced to its
*record bytes*: the ASCII line ``renja-audit-record/v2``, then seven fields in this fixed order, each as
``<name> <length>\n<bytes>\n`` (``<length>``: the byte count of ``<bytes>`` in ASCII decimal), or as
``<name> -\n`` when an optional header was absent::

    renja-audit-record/v2\n
    key <n>\n<Kafka key bytes>\n
    ce_id <n>\n<header bytes>\n
    ce_type <n>\n<header bytes>\n
    ce_source <n>\n<header bytes>\n
    ce_subject <n>\n<header bytes>\n        (or: ce_subject -\n)
    ce_time <n>\n<header bytes>\n           (or: ce_time -\n)
    value <n>\n<Kafka value bytes>\n

Header bytes are the values as received (a repeated header: the last one, as the decoder reads it); other
headers (``content-type``, ``ce_dataschema``, ``traceparent``, …) are not covered.

**Byte layout (version 3): signed records.** A record that carries the producer's signature
(``ce_signaturekeyid``, ``ce_signature``: ``shared.origin``) is reduced to the same fields under the first
line ``renja-audit-record/v3``, with the two signature headers between ``ce_time`` and ``value``::

    renja-audit-record/v3\n
    key … ce_time (as in v2)
    ce_signaturekeyid <n>\n<header bytes>\n
    ce_signature <n>\n<header bytes>\n
    value <n>\n<Kafka value bytes>\n

so the chain covers who signed each record, and the signature proves which service produced it. An
unsigned (legacy) record keeps the v2 layout, so no hash of a record published before signing changes.
Then:

- ``event_hash = sha256(record bytes)``;
- ``chain_hash(n) = sha256("renja-audit-chain/v2\n" + hex(chain_hash(n-1)) + "\n" + record bytes(n))``,
  with 64 ASCII zeros before the first; hashes are lowercase hex. The two fixed first lines keep a record
  preimage and a chain preimage (and a signed head, ``renja-audit-head/v1``) from ever being confused.

An auditor recomputes a link with shell tools from the stored columns of ``audit_events``
(``record_key``, ``ce_*``, ``value``; see ``docs/events.md``)::

    field() { printf '%s %d\n' "$1" "$(wc -c < "$2")"; cat "$2"; printf '\n'; }
    { printf 'renja-audit-record/v2\n'; field key key.bin; field ce_id id.bin; field ce_type type.bin
      field ce_source source.bin; field ce_subject subject.bin; field ce_time time.bin
      field value value.bin; } > record.bin      # an absent header: printf 'ce_time -\n' instead
    { printf 'renja-audit-chain/v2\n%s\n' "$PREV"; cat record.bin; } | sha256sum

Changing, removing, inserting or reordering any record changes every later link. A chain alone cannot
show that its *tail* was cut off (a shorter chain is still self-consistent), so the audit service signs
the head it has seen (Renja id, position, chain hash) with Ed25519; a rebuilt chain that no longer reaches
that position, or differs there, fails :func:`check_signed_head`.

Pure: keys are passed in, no clock, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.cloudevents import to_kafka
from shared.events import Event

GENESIS = "0" * 64
"""The ``prev_hash`` of the first link."""

RECORD_DOMAIN = b"renja-audit-record/v2\n"
"""The first line of every unsigned record's bytes (domain separation, and the version of the layout)."""

SIGNED_RECORD_DOMAIN = b"renja-audit-record/v3\n"
"""The first line of a signed record's bytes (layout v3: v2 plus the signature headers)."""

CHAIN_DOMAIN = b"renja-audit-chain/v2\n"
"""The first line of every chain link's preimage."""

HEAD_DOMAIN = "renja-audit-head/v1"
"""Domain separation for signed heads, so a head signature can never be replayed as anything else."""

HEADER_FIELDS: tuple[str, ...] = ("ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")
"""The CloudEvents headers a record's bytes cover, in their fixed order (after the key)."""


@dataclass(frozen=True, slots=True)
class Published:
    """One record of ``renja.events`` as received: the Kafka key, the identifying headers (raw bytes;
    ``ce_subject``/``ce_time`` None when absent) and the value bytes. What the chain covers."""

    key: bytes
    ce_id: bytes
    ce_type: bytes
    ce_source: bytes
    ce_subject: bytes | None
    ce_time: bytes | None
    value: bytes
    signature_key_id: bytes | None = None
    """``ce_signaturekeyid`` (None for an unsigned record: layout v2)."""
    signature: bytes | None = None
    """``ce_signature``, base64 as received (None for an unsigned record)."""

    @property
    def signed(self) -> bool:
        """Whether the record carries a producer's signature (hashed with layout v3)."""
        return self.signature is not None or self.signature_key_id is not None

    def headers(self) -> list[tuple[str, bytes]]:
        """The covered headers as a Kafka header list (absent ones left out), e.g. to verify the signature."""
        pairs = [
            ("ce_specversion", b"1.0"),
            ("ce_id", self.ce_id),
            ("ce_type", self.ce_type),
            ("ce_source", self.ce_source),
            ("ce_subject", self.ce_subject),
            ("ce_time", self.ce_time),
            ("ce_signaturekeyid", self.signature_key_id),
            ("ce_signature", self.signature),
        ]
        return [(name, raw) for name, raw in pairs if raw is not None]


SIGNATURE_FIELDS: tuple[str, ...] = ("ce_signaturekeyid", "ce_signature")
"""The signature headers a signed record's bytes cover (layout v3), in their fixed order."""


def published_from_record(key: bytes | None, value: bytes | None, headers: Any) -> Published:
    """The :class:`Published` form of a Kafka record (``headers``: a sequence of ``(str, bytes)``).

    A missing key, value or required header becomes ``b""`` (the decoder refuses such a record before
    the audit folds it); for a repeated header the last value counts, as in ``shared.cloudevents``.
    """
    found: dict[str, bytes] = {}
    for name, raw in headers or ():
        if name in HEADER_FIELDS or name in SIGNATURE_FIELDS:
            found[name] = bytes(raw) if raw is not None else b""
    return Published(
        key=key or b"",
        ce_id=found.get("ce_id", b""),
        ce_type=found.get("ce_type", b""),
        ce_source=found.get("ce_source", b""),
        ce_subject=found.get("ce_subject"),
        ce_time=found.get("ce_time"),
        value=value or b"",
        signature_key_id=found.get("ce_signaturekeyid"),
        signature=found.get("ce_signature"),
    )


def published_from_event(event: Event) -> Published:
    """The :class:`Published` form of the record ``shared.cloudevents.to_kafka`` makes of ``event``."""
    rec = to_kafka(event)
    return published_from_record(rec.key, rec.value, rec.headers)


def record_bytes(p: Published) -> bytes:
    """The record bytes of the module docstring's layout (what ``event_hash`` and the chain cover): v3 for
    a signed record, v2 for an unsigned one."""
    signed = p.signed
    fields: list[tuple[bytes, bytes | None]] = [
        (b"key", p.key),
        (b"ce_id", p.ce_id),
        (b"ce_type", p.ce_type),
        (b"ce_source", p.ce_source),
        (b"ce_subject", p.ce_subject),
        (b"ce_time", p.ce_time),
    ]
    if signed:
        fields += [(b"ce_signaturekeyid", p.signature_key_id), (b"ce_signature", p.signature)]
    fields.append((b"value", p.value))
    parts = [SIGNED_RECORD_DOMAIN if signed else RECORD_DOMAIN]
    for name, raw in fields:
        if raw is None:
            parts.append(name + b" -\n")
        else:
            parts.append(b"%s %d\n%s\n" % (name, len(raw), raw))
    return b"".join(parts)


def event_hash(record: bytes) -> str:
    """SHA-256 (lowercase hex) of one record's bytes (:func:`record_bytes`)."""
    return hashlib.sha256(record).hexdigest()


def chain_hash(prev_hash: str | None, record: bytes) -> str:
    """The next link: SHA-256 hex over ``CHAIN_DOMAIN``, ``(prev_hash or 64 * '0')`` as ASCII, ``b"\\n"``
    and ``record`` (:func:`record_bytes`).

    Raises ``ValueError`` if ``prev_hash`` is not 64 lowercase hex characters.
    """
    prev = GENESIS if prev_hash is None else prev_hash
    if len(prev) != 64 or any(c not in "0123456789abcdef" for c in prev):
        raise ValueError(f"prev_hash must be 64 lowercase hex characters, got {prev!r}")
    return hashlib.sha256(CHAIN_DOMAIN + prev.encode("ascii") + b"\n" + record).hexdigest()


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


ChainItem = Published | Mapping[str, Any] | ChainEntryLike
"""What a chain can be given as: published records, or already-built entries (objects or dicts)."""


def build_chain(records: Iterable[Published]) -> list[ChainEntry]:
    """Chain ``records`` (one Renja, log order) into entries with positions 1, 2, ….

    The entry's ``event_id`` is the record's ``ce_id`` header (UTF-8, undecodable bytes replaced).
    """
    return _chain_from(None, 0, records)


def extend_chain(chain: Sequence[ChainEntry], records: Iterable[Published]) -> list[ChainEntry]:
    """The new entries that append ``records`` to ``chain`` (positions continue after its last entry)."""
    if not chain:
        return _chain_from(None, 0, records)
    last = chain[-1]
    return _chain_from(last.chain_hash, last.position, records)


def _chain_from(prev_hash: str | None, last_position: int, records: Iterable[Published]) -> list[ChainEntry]:
    entries: list[ChainEntry] = []
    prev = prev_hash
    for offset, item in enumerate(records, start=1):
        raw = record_bytes(item)
        link = chain_hash(prev, raw)
        entries.append(
            ChainEntry(
                position=last_position + offset,
                event_id=item.ce_id.decode(errors="replace"),
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
    """Normalise a sequence that is either all chain entries or all published records into entries."""
    if not items:
        return []
    if isinstance(items[0], Published):
        records: list[Published] = []
        for item in items:
            if not isinstance(item, Published):
                raise TypeError("a chain must be given as all records or all entries, not a mix")
            records.append(item)
        return build_chain(records)
    entries: list[ChainEntry] = []
    for item in items:
        if isinstance(item, Published):
            raise TypeError("a chain must be given as all records or all entries, not a mix")
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
    or all published records (:class:`Published`), which are chained first. Positions are taken from list
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
    """Check a rebuilt ``chain`` (entries or published records) against a signed head.

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
