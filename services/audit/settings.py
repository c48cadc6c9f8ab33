"""Settings of the audit service (the auditor's read-only projection of ``renja.events``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from shared.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class AuditSettings(ServiceSettings):
    """``RENJA_*`` environment; the service name fixes the database (``audit``).

    ``audit_key_file`` (``RENJA_AUDIT_KEY_FILE``): the Ed25519 private key (PEM, PKCS#8) that signs the
    chain heads of completed Renja cycles. In development and test a missing key is generated into
    ``<run_dir>/keys/audit-ed25519.pem`` (``RENJA_RUN_DIR``, default ``<repo>/.run``, never committed);
    in production the file must be given and must exist.
    ``projection_batch_max``: records per projection transaction (one COPY per table per batch).
    """

    service: str = "audit"
    port: int = 8106
    run_dir: Path = REPO_ROOT / ".run"
    audit_key_file: Path | None = None
    projection_batch_max: int = 5000

    @property
    def key_path(self) -> Path:
        """Where the signing key is read from (and, outside production, generated if missing)."""
        return self.audit_key_file or self.run_dir / "keys" / "audit-ed25519.pem"

    @model_validator(mode="after")
    def _key_required_in_production(self) -> AuditSettings:
        if self.environment == "production" and self.audit_key_file is None:
            raise ValueError("production needs RENJA_AUDIT_KEY_FILE (the audit's Ed25519 signing key)")
        return self
