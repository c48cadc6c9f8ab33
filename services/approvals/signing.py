"""The agency's signature for SOP step 10 (*Menandatangani Rancangan Akhir*), behind one small interface.

Owns:
- ``Signer``: what step 10 needs from a signing facility — a key id, the public key, and ``sign(bytes)``.
  ``LocalKeySigner`` signs with an Ed25519 key held by this service; a national e-signature service
  (BSrE) can implement the same Protocol later without touching the API or the decider;
- loading the key: ``RENJA_SIGNING_KEY_FILE`` (PEM PKCS#8), or — in development/test only — a key
  generated once into ``<run_dir>/keys/`` (never into the repository) and reused on restart;
- offline verification helpers (``verify``, ``public_key_pem``).

What is signed: the UTF-8 bytes of the draft's lowercase hex SHA-256 (``Signed.content_sha256``), as
``shared.sop`` verifies it — so anyone with the public key checks a signature without our service.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from services.approvals.settings import ApprovalsSettings

log = structlog.get_logger(__name__)

ALGORITHM = "Ed25519"


class Signer(Protocol):
    """A signing facility for step 10. ``sign`` returns the raw 64-byte Ed25519 signature of ``data``.

    ``key_id`` is read-only: a signer's key never changes under it (``LocalKeySigner`` is frozen), and a
    read-only protocol member is what lets a frozen dataclass or a property satisfy the Protocol.
    """

    @property
    def key_id(self) -> str:
        """The id recorded in ``Signed.key_id`` (e.g. ``ed25519:`` + 16 hex digits)."""
        ...

    def public_key_b64(self) -> str:
        """The raw 32-byte public key, standard base64."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; raises on failure (never returns an invalid signature)."""
        ...


class SigningKeyError(ValueError):
    """The configured key cannot be used; the message names the file and the problem."""


def key_id_for(public_raw: bytes) -> str:
    """A stable id for a public key: ``ed25519:`` + the first 16 hex digits of its SHA-256."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class LocalKeySigner:
    """``Signer`` over an Ed25519 private key held in this process."""

    private_key: Ed25519PrivateKey
    key_id: str

    @classmethod
    def from_key(cls, private_key: Ed25519PrivateKey) -> LocalKeySigner:
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(private_key=private_key, key_id=key_id_for(raw))

    def public_key_b64(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def _read_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the signing key: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM PKCS#8 private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: the signing key must be Ed25519, not {type(key).__name__}")
    return key


def _generate_into(path: Path) -> None:
    """Write a new key to ``path`` (mode 0600) unless one appears there first (two processes starting)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        # link() fails if the file exists, so a key another process just created is kept, never replaced.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            log.info("signing_key_generated", path=str(path))
    finally:
        os.unlink(tmp)


def load_signer(settings: ApprovalsSettings) -> LocalKeySigner:
    """The service's signer: the configured key file, or (development/test only) the generated key.

    Raises ``SigningKeyError`` for an unreadable, encrypted or non-Ed25519 key, and in production when no
    key file is configured (the settings validator refuses that earlier, too).
    """
    if settings.signing_key_file is not None:
        return LocalKeySigner.from_key(_read_key(settings.signing_key_file))
    if settings.environment == "production":
        raise SigningKeyError("production needs RENJA_SIGNING_KEY_FILE; no key is generated in production")
    path = settings.generated_key_file
    if not path.exists():
        _generate_into(path)
    return LocalKeySigner.from_key(_read_key(path))


def public_key_pem(public_key_b64: str) -> str:
    """The SubjectPublicKeyInfo PEM of a raw base64 Ed25519 public key (for ``openssl pkeyutl -verify``)."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def verify(public_key_b64: str, content_sha256: str, signature_b64: str) -> bool:
    """True iff ``signature_b64`` is the Ed25519 signature of ``content_sha256``'s UTF-8 bytes under the key.

    Malformed base64, a wrong-length key or signature, or a mismatch all give False (never raise).
    """
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), content_sha256.encode("utf-8"))
    except (ValueError, binascii.Error, InvalidSignature):
        return False
    return True
