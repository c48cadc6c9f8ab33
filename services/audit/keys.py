"""The audit's Ed25519 signing key: loaded from ``RENJA_AUDIT_KEY_FILE``, or generated for development.

The key signs the chain heads of completed Renja cycles (``services.audit.hashchain.sign_head``). A
generated key lives under ``<run_dir>/keys/`` (outside version control), readable by its owner only.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from services.audit.settings import AuditSettings


def load_signing_key(settings: AuditSettings) -> Ed25519PrivateKey:
    """The private key at ``settings.key_path``; generated there (mode 0600) if missing, except in production.

    Raises ``FileNotFoundError`` in production when the file is absent, ``ValueError`` if the file is not
    an unencrypted PEM Ed25519 private key.
    """
    path = settings.key_path
    if not path.exists():
        if settings.environment == "production":
            raise FileNotFoundError(f"audit signing key {path} does not exist (set RENJA_AUDIT_KEY_FILE)")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, standard base64."""
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def key_id(key: Ed25519PublicKey) -> str:
    """A short stable id of a public key: ``audit-`` + first 16 hex of SHA-256 of its raw bytes."""
    return "audit-" + hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]
