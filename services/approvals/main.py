"""Composition root of the approvals service (SOP steps 8-10: paraf, signature; returns to step 7)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.approvals.api import router
from services.approvals.service import ApprovalsService
from services.approvals.settings import ApprovalsSettings
from services.approvals.signing import Signer, load_signer
from shared.app import build_service_app
from shared.runtime import Runtime


def create_app(settings: ApprovalsSettings | None = None, signer: Signer | None = None) -> FastAPI:
    """Build the app: ``uvicorn services.approvals.main:create_app --factory`` (port 8104 in the local stack).

    ``signer`` replaces the local Ed25519 key (e.g. a BSrE client); by default ``load_signer(settings)``
    reads ``RENJA_SIGNING_KEY_FILE`` or, in development/test, the generated key under ``<run_dir>/keys/``.
    Raises ``SigningKeyError`` when the configured key is unusable. The ``ApprovalsService`` (on
    ``app.state.approvals``, reached through ``deps.ApprovalsDep``) runs on the runtime's command unit and
    pool with this signer.
    """
    settings = settings or ApprovalsSettings()
    app = build_service_app(
        settings,
        title="Renja — approvals",
        description=(
            "Steps 8-10 of the SOP Penyusunan Renja: paraf by the Kasubag PP and the Sekretaris, the head's "
            "Ed25519 signature over the Rancangan Akhir's SHA-256, and returns to step 7. The public key and a "
            "verification endpoint are open to anyone."
        ),
        routers=[router],
        migrations=Path(__file__).parent / "migrations",
    )
    rt: Runtime = app.state.runtime
    app.state.approvals = ApprovalsService(rt.commands, rt.require_pool, signer or load_signer(settings))
    return app
