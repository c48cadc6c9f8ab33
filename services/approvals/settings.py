"""Settings of the approvals service (SOP steps 8-10: paraf, signature; and returns to step 7)."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from shared.settings import ServiceSettings


class ApprovalsSettings(ServiceSettings):
    """``RENJA_*`` environment; the service name fixes the database (``approvals``) and consumer group.

    ``signing_key_file`` (``RENJA_SIGNING_KEY_FILE``): the agency's Ed25519 private key, PEM PKCS#8,
    unencrypted (protect the file: mode 0600, a secret mount). Required in production. In development and
    test, when unset, a key is generated once into ``<run_dir>/keys/`` (``RENJA_RUN_DIR``, default ``.run``,
    which git ignores) and reused on every restart.
    """

    service: str = "approvals"
    signing_key_file: Path | None = None
    run_dir: Path = Path(".run")

    @property
    def generated_key_file(self) -> Path:
        """Where the development/test key lives when no key file is configured."""
        return self.run_dir / "keys" / "approvals-signing-ed25519.pem"

    @model_validator(mode="after")
    def _production_needs_a_key(self) -> ApprovalsSettings:
        if self.environment == "production" and self.signing_key_file is None:
            raise ValueError("production needs RENJA_SIGNING_KEY_FILE (the agency's Ed25519 key, PEM PKCS#8)")
        return self
