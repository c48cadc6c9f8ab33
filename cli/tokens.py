"""``renja token``: mint a bearer token from the local development issuer."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from shared.auth import ROLES, mint_token
from shared.settings import ServiceSettings


def token(
    role: Annotated[str, typer.Option(help=f"SOP role: one of {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="the person's name, as it will appear in the audit trail")],
    nip: Annotated[str, typer.Option(help="18-digit NIP (Nomor Induk Pegawai)")],
    user_id: Annotated[str | None, typer.Option(help="subject id (default: ROLE:NIP)")] = None,
    hours: Annotated[float, typer.Option(help="validity in hours")] = 12.0,
    opd: Annotated[str | None, typer.Option(help="SIPD unit code of the person's OPD (claim opd)")] = None,
    pangkat: Annotated[str | None, typer.Option(help="pangkat/golongan (claim pangkat)")] = None,
) -> None:
    """Print a token alone on stdout, so ``curl -H "Authorization: Bearer $(renja token ...)"`` works.

    Only for the local stack: production services verify tokens from the OIDC provider's JWKS instead.
    """
    if role not in ROLES:
        typer.echo(f"--role must be one of {', '.join(ROLES)}; got {role!r}", err=True)
        raise typer.Exit(2)
    if not (len(nip) == 18 and nip.isdigit()):
        typer.echo(f"--nip must be 18 digits; got {nip!r}", err=True)
        raise typer.Exit(2)
    settings = ServiceSettings(service="cli")
    minted = mint_token(
        settings, role=role, name=name, nip=nip, user_id=user_id, opd=opd, pangkat=pangkat, ttl=timedelta(hours=hours)
    )
    typer.echo(minted)
