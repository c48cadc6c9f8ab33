"""Signed origin: every record on ``renja.events`` is signed by the service that produced it.

A subscriber checks a record with :func:`verify_record` against the key registry; our consumers and the
audit do so for every record they read (``Trust.check``) and dead-letter what fails.

**What is signed (layout ``renja-event-signature/v1``).** The signature is Ed25519 over these bytes: the
ASCII line ``renja-event-signature/v1``, then eight fields in this fixed order, each as
``<name> <length>\\n<bytes>\\n`` (``<length>``: the byte count in ASCII decimal), or ``<name> -\\n`` for
an absent header::

    renja-event-signature/v1\\n
    key <n>\\n<Kafka key bytes>\\n
    ce_specversion <n>\\n<header bytes>\\n
    ce_id <n>\\n<header bytes>\\n
    ce_type <n>\\n<header bytes>\\n
    ce_source <n>\\n<header bytes>\\n
    ce_subject <n>\\n<header bytes>\\n
    ce_time <n>\\n<header bytes>\\n
    ce_signaturekeyid <n>\\n<header bytes>\\n
    value <n>\\n<Kafka value bytes: the CloudEvents data, exactly as published>\\n

Header bytes are the values as sent (a repeated header: the last one, as the decoder reads it). Not
covered: ``content-type``, ``ce_dataschema`` (a deployment's URL) and ``traceparent`` (transport).

**Where it travels.** Two CloudEvents extension attributes (binary mode headers):
``ce_signature`` (the 64-byte signature, standard base64) and ``ce_signaturekeyid`` (the key id).

**Key registry.** A JSON file ``{"keys": {"<key id>": {"service": "<name>", "public_key": "<32 raw bytes,
base64>", "not_after": "<RFC 3339>" | null}}}``. A key signs only events of its own service: a record
whose ``ce_source`` is not ``/renja/<service of the key>`` is refused (``wrong_signer``). Rotation: add
the new key to the registry, then give the service its new private key; the old entry stays (set its
``not_after``), so every record it signed still verifies. A registry reader re-reads the file when it
meets a key id it does not know (at most every ``RELOAD_SECONDS``), so a new key needs no restart.

**Refusals** (``OriginError.reason``, the dead-letter reason): ``unsigned`` (no signature, or no key id),
``unknown_key`` (a key id not in the registry, or used after its ``not_after``), ``wrong_signer`` (a
known key of another service than ``ce_source``), ``bad_signature`` (the signature does not verify:
the record was altered, or signed by another key).

**Legacy records.** Records published before this release carry no signature. They are accepted only
at offsets below a recorded cut-over (``RENJA_UNSIGNED_BEFORE``, ``{partition: offset}`` of the event
topic, taken at the upgrade); an unsigned record anywhere else is refused.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.cloudevents import (
    SIGNATURE_HEADER,
    SIGNATURE_KEY_ID_HEADER,
    SOURCE_PREFIX,
    DecodeError,
    Headers,
    KafkaRecord,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

SIGNATURE_DOMAIN = b"renja-event-signature/v1\n"
"""First line of every signed message (domain separation, and the layout version)."""

DIGEST_DOMAIN = b"renja-event-digest/v1\n"
"""First line of a record's content digest (:func:`record_digest`), which leaves the key id out."""

SIGNED_HEADERS: tuple[str, ...] = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time")
"""The identifying CloudEvents headers a signature covers, in their fixed order (after the key)."""

RELOAD_SECONDS = 5.0
"""Least time between two re-reads of the registry file prompted by an unknown key id."""

OriginReason = Literal["unsigned", "unknown_key", "wrong_signer", "bad_signature"]


class OriginError(DecodeError):
    """A record's origin cannot be trusted; ``reason`` is one of ``OriginReason`` (the dead-letter reason)."""

    def __init__(self, reason: OriginReason, detail: str) -> None:
        super().__init__(reason, detail)


@dataclass(frozen=True, slots=True)
class SignedBy:
    """Who signed a record: the producing ``service`` and the ``key_id`` of its key."""

    service: str
    key_id: str


# --- the signed bytes ------------------------------------------------------------------------------------


def _last_headers(headers: Any) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name, raw in headers or ():
        found[name] = bytes(raw) if raw is not None else b""
    return found


def _field(name: str, raw: bytes | None) -> bytes:
    if raw is None:
        return name.encode() + b" -\n"
    return b"%s %d\n%s\n" % (name.encode(), len(raw), raw)


def _content(key: bytes | None, found: Mapping[str, bytes]) -> list[bytes]:
    return [_field("key", key), *(_field(name, found.get(name)) for name in SIGNED_HEADERS)]


def signed_message(key: bytes | None, value: bytes | None, headers: Any) -> bytes:
    """The exact bytes a record's signature covers (module docstring layout); ``headers`` a sequence of
    ``(name, bytes)``, its ``ce_signaturekeyid`` included (absent: ``ce_signaturekeyid -``)."""
    found = _last_headers(headers)
    parts = [SIGNATURE_DOMAIN, *_content(key, found)]
    parts.append(_field(SIGNATURE_KEY_ID_HEADER, found.get(SIGNATURE_KEY_ID_HEADER)))
    parts.append(_field("value", value))
    return b"".join(parts)


def record_digest(key: bytes | None, value: bytes | None, headers: Any) -> bytes:
    """SHA-256 (32 bytes) of what a record says: the key, the identifying headers and the value, in the
    signature's layout but under ``DIGEST_DOMAIN`` and without the key id. Two deliveries of one event
    have the same digest; the same event id with other content (or other identifying headers) does not."""
    found = _last_headers(headers)
    return hashlib.sha256(b"".join([DIGEST_DOMAIN, *_content(key, found), _field("value", value)])).digest()


# --- signing ---------------------------------------------------------------------------------------------


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, standard base64 (the registry's ``public_key``)."""
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def key_id_of(service: str, key: Ed25519PublicKey) -> str:
    """The id of a service's key: ``<service>-`` + the first 16 hex digits of SHA-256 of the raw key."""
    return f"{service}-" + hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signer:
    """One service's signing key: ``service``, ``key_id`` (as in the registry) and the private key."""

    service: str
    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def of(cls, service: str, private_key: Ed25519PrivateKey, key_id: str | None = None) -> Signer:
        """A signer with ``key_id`` (default :func:`key_id_of` the public key)."""
        return cls(service, key_id or key_id_of(service, private_key.public_key()), private_key)

    def signature(self, key: bytes | None, value: bytes | None, headers: Headers) -> str:
        """The base64 signature of a record whose ``headers`` do not carry the signature headers yet."""
        with_id = [*headers, (SIGNATURE_KEY_ID_HEADER, self.key_id.encode())]
        return base64.b64encode(self.private_key.sign(signed_message(key, value, with_id))).decode("ascii")

    def sign(self, key: bytes | None, value: bytes | None, headers: Headers) -> Headers:
        """``headers`` plus ``ce_signaturekeyid`` and ``ce_signature`` for this record."""
        signature = self.signature(key, value, headers)
        return [*headers, (SIGNATURE_KEY_ID_HEADER, self.key_id.encode()), (SIGNATURE_HEADER, signature.encode())]

    def signed(self, record: KafkaRecord) -> KafkaRecord:
        """``record`` with this key's signature headers (e.g. ``signer.signed(to_kafka(event))``)."""
        return KafkaRecord(record.key, record.value, self.sign(record.key, record.value, record.headers))


# --- the registry and verification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    """A public key of the registry: whose it is, and until when it may sign (None: no end)."""

    service: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None


class KeyRegistry:
    """The services' public keys by key id, optionally backed by a file that is re-read on an unknown id."""

    def __init__(self, keys: Mapping[str, RegisteredKey], path: Path | None = None) -> None:
        self._keys = dict(keys)
        self.path = path
        self._read_at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def from_json(cls, text: str | bytes, path: Path | None = None) -> KeyRegistry:
        """Parse the registry JSON (module docstring). Raises ``ValueError`` for a malformed file."""
        return cls(_parse_registry(json.loads(text)), path)

    @classmethod
    def load(cls, path: Path) -> KeyRegistry:
        """The registry in ``path``. Raises ``FileNotFoundError`` or ``ValueError``."""
        return cls.from_json(path.read_bytes(), path)

    def get(self, key_id: str) -> RegisteredKey | None:
        """The key with ``key_id``; re-reads the backing file first if the id is unknown (rate-limited)."""
        found = self._keys.get(key_id)
        if found is None and self.path is not None and time.monotonic() - self._read_at >= RELOAD_SECONDS:
            with self._lock:
                self._read_at = time.monotonic()
                with contextlib.suppress(OSError, ValueError):
                    self._keys = _parse_registry(json.loads(self.path.read_bytes()))
            found = self._keys.get(key_id)
        return found

    def key_ids(self, service: str | None = None) -> list[str]:
        """Every key id (of ``service``), sorted."""
        return sorted(k for k, v in self._keys.items() if service is None or v.service == service)

    def to_json(self) -> str:
        """The registry as its JSON file."""
        return registry_json(self._keys)


def registry_json(keys: Mapping[str, RegisteredKey]) -> str:
    """The registry file's JSON text for ``keys`` (sorted, indented)."""
    doc = {
        "keys": {
            key_id: {
                "service": k.service,
                "public_key": public_key_b64(k.public_key),
                "not_after": None if k.not_after is None else k.not_after.isoformat(),
            }
            for key_id, k in sorted(keys.items())
        }
    }
    return json.dumps(doc, indent=2) + "\n"


def _parse_registry(doc: Any) -> dict[str, RegisteredKey]:
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
        raise ValueError('a key registry is a JSON object {"keys": {key id: {service, public_key, not_after}}}')
    out: dict[str, RegisteredKey] = {}
    for key_id, entry in doc["keys"].items():
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            public_key = Ed25519PublicKey.from_public_bytes(raw)
            not_after = None if entry.get("not_after") is None else datetime.fromisoformat(entry["not_after"])
            out[str(key_id)] = RegisteredKey(str(entry["service"]), public_key, not_after)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"key registry entry {key_id!r} is malformed: {exc}") from exc
    return out


def verify_record(key: bytes | None, value: bytes | None, headers: Any, registry: KeyRegistry) -> SignedBy:
    """Check a ``renja.events`` record's signature against ``registry``; who signed it.

    ``headers``: the record's headers, a sequence of ``(name, bytes)`` as aiokafka gives them.
    Raises ``OriginError`` with ``reason`` ``unsigned``, ``unknown_key``, ``wrong_signer`` or
    ``bad_signature`` (module docstring). A subscriber should treat any of them as "not our event".
    """
    found = _last_headers(headers)
    signature_b64 = found.get(SIGNATURE_HEADER)
    key_id_raw = found.get(SIGNATURE_KEY_ID_HEADER)
    if not signature_b64 or not key_id_raw:
        raise OriginError("unsigned", "the record carries no ce_signature/ce_signaturekeyid")
    key_id = key_id_raw.decode(errors="replace")
    entry = registry.get(key_id)
    if entry is None:
        raise OriginError("unknown_key", f"key id {key_id!r} is not in the key registry")
    source = found.get("ce_source", b"").decode(errors="replace")
    if source != f"{SOURCE_PREFIX}{entry.service}":
        raise OriginError("wrong_signer", f"key {key_id!r} belongs to {entry.service!r}, not to ce_source {source!r}")
    if entry.not_after is not None:
        try:
            signed_at: datetime | None = datetime.fromisoformat(found.get("ce_time", b"").decode(errors="replace"))
        except ValueError:
            signed_at = None  # the decoder refuses such a record
        if signed_at is not None and signed_at > entry.not_after:
            raise OriginError("unknown_key", f"key {key_id!r} was retired at {entry.not_after.isoformat()}")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        entry.public_key.verify(signature, signed_message(key, value, headers))
    except (InvalidSignature, ValueError) as exc:
        raise OriginError("bad_signature", f"the signature by key {key_id!r} does not verify") from exc
    return SignedBy(entry.service, key_id)


LEGACY = SignedBy("", "")
"""What :meth:`Trust.check` returns for an unsigned record accepted below the cut-over."""


@dataclass(frozen=True, slots=True)
class Trust:
    """What a reader of ``renja.events`` accepts: records signed per ``registry``, and unsigned legacy
    records only at offsets below ``unsigned_before[partition]`` (records published before signing)."""

    registry: KeyRegistry
    unsigned_before: Mapping[int, int] = field(default_factory=dict)

    def check(self, key: bytes | None, value: bytes | None, headers: Any, partition: int, offset: int) -> SignedBy:
        """The signer of a record at ``partition``/``offset``, or ``LEGACY`` for an unsigned record below
        the cut-over. Raises ``OriginError`` (see :func:`verify_record`)."""
        try:
            return verify_record(key, value, headers, self.registry)
        except OriginError as exc:
            if exc.reason == "unsigned" and offset < self.unsigned_before.get(partition, 0):
                return LEGACY
            raise


# --- keys and settings -----------------------------------------------------------------------------------


class OriginSettings(BaseSettings):
    """Where a process finds its signing key and the key registry (``RENJA_*`` environment).

    - ``signing_key_file`` (``RENJA_SIGNING_KEY_FILE``): this service's Ed25519 private key (PEM, PKCS#8),
      or ``signing_key`` (``RENJA_SIGNING_KEY``: the PEM text itself, e.g. from a secret); optional
      ``signing_key_id`` (``RENJA_SIGNING_KEY_ID``, default ``<service>-<hash of the public key>``);
    - ``key_registry_file`` (``RENJA_KEY_REGISTRY_FILE``): the registry JSON every reader loads;
    - ``unsigned_before`` (``RENJA_UNSIGNED_BEFORE``, JSON ``{partition: offset}``): the legacy cut-over;
    - in ``development``/``test``, unset files default to ``<run_dir>/keys/signing/<service>-ed25519.pem``
      and ``<run_dir>/keys/signing-registry.json`` (``RENJA_RUN_DIR``, default ``<repo>/.run``), generated
      when missing; in ``production`` keys are never generated: the key and the registry must be given.
    """

    model_config = SettingsConfigDict(env_prefix="RENJA_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    run_dir: Path = REPO_ROOT / ".run"
    signing_key_file: Path | None = None
    signing_key: SecretStr | None = None
    signing_key_id: str | None = None
    key_registry_file: Path | None = None
    unsigned_before: dict[int, int] = Field(default_factory=dict)

    @property
    def keys_dir(self) -> Path:
        return self.run_dir / "keys"

    @property
    def registry_path(self) -> Path:
        return self.key_registry_file or local_registry_path(self.keys_dir)

    @model_validator(mode="after")
    def _registry_required_in_production(self) -> OriginSettings:
        if self.environment == "production" and self.key_registry_file is None:
            raise ValueError("production needs RENJA_KEY_REGISTRY_FILE (the services' public signing keys)")
        return self


def local_key_path(keys_dir: Path, service: str) -> Path:
    """A development key's file: ``<keys_dir>/signing/<service>-ed25519.pem``."""
    return keys_dir / "signing" / f"{service}-ed25519.pem"


def local_registry_path(keys_dir: Path) -> Path:
    """The development registry: ``<keys_dir>/signing-registry.json``."""
    return keys_dir / "signing-registry.json"


def load_private_key(pem: bytes, where: str) -> Ed25519PrivateKey:
    """An unencrypted PEM Ed25519 private key. Raises ``ValueError`` naming ``where``."""
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{where} is not an Ed25519 private key")
    return key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically, only if it does not exist (a concurrent writer's file wins)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def ensure_local_keys(keys_dir: Path, services: Iterable[str]) -> Path:
    """Development only: a key for each of ``services`` under ``keys_dir/signing`` (generated if missing,
    mode 0600) and the registry of every key there, rewritten. Returns the registry path.

    Safe to run from several processes at once (a lock file serialises them). Keys already in the
    registry but no longer on disk (rotated out) are kept in it, so old records still verify.
    """
    signing = keys_dir / "signing"
    signing.mkdir(parents=True, exist_ok=True, mode=0o700)
    registry_path = local_registry_path(keys_dir)
    with open(keys_dir / ".signing.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for service in services:
            path = local_key_path(keys_dir, service)
            if not path.exists():
                pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
                _write_new(path, pem, 0o600)
        keys: dict[str, RegisteredKey] = {}
        if registry_path.exists():
            with contextlib.suppress(ValueError):
                keys.update(_parse_registry(json.loads(registry_path.read_bytes())))
        for path in sorted(signing.glob("*-ed25519.pem")):
            service = path.name.removesuffix("-ed25519.pem")
            public = load_private_key(path.read_bytes(), str(path)).public_key()
            keys[key_id_of(service, public)] = RegisteredKey(service, public)
        text = registry_json(keys).encode()
        if not registry_path.exists() or registry_path.read_bytes() != text:
            tmp = registry_path.with_name(f".{registry_path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(text)
            tmp.replace(registry_path)
    return registry_path


def signer_from(settings: OriginSettings, service: str) -> Signer:
    """``service``'s signer per ``settings`` (module docstring of :class:`OriginSettings`).

    Raises ``FileNotFoundError`` in production without a key, ``ValueError`` for a key that is not an
    unencrypted Ed25519 PEM.
    """
    if settings.signing_key is not None:
        key = load_private_key(settings.signing_key.get_secret_value().encode(), "RENJA_SIGNING_KEY")
        return Signer.of(service, key, settings.signing_key_id)
    path = settings.signing_key_file
    if path is None:
        if settings.environment == "production":
            raise FileNotFoundError(
                f"production needs the {service} service's signing key (RENJA_SIGNING_KEY_FILE or RENJA_SIGNING_KEY)"
            )
        ensure_local_keys(settings.keys_dir, [service])
        path = local_key_path(settings.keys_dir, service)
    return Signer.of(service, load_private_key(path.read_bytes(), str(path)), settings.signing_key_id)


def trust_from(settings: OriginSettings) -> Trust:
    """The registry and cut-over per ``settings``; in development a missing registry is generated (with a
    key for every publishing service of the manifest). Raises ``FileNotFoundError`` in production."""
    path = settings.registry_path
    if settings.key_registry_file is None and settings.environment != "production":
        from shared.manifest import SERVICES

        ensure_local_keys(settings.keys_dir, [s.name for s in SERVICES if s.publishes])
    return Trust(KeyRegistry.load(path), dict(settings.unsigned_before))


@cache
def service_signer(service: str) -> Signer:
    """This process's signer for ``service``, from ``OriginSettings()`` (read once)."""
    return signer_from(OriginSettings(), service)


@cache
def process_trust() -> Trust:
    """This process's :class:`Trust`, from ``OriginSettings()`` (read once; the registry file is re-read
    when an unknown key id shows up)."""
    return trust_from(OriginSettings())
