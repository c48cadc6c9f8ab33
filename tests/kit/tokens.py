"""Bearer tokens of the kit's people, minted by the local development issuer (``shared.auth.mint_token``).

The services of the local stack and of the in-process tests trust that issuer's shared secret
(``ServiceSettings.jwt_secret``); production verifies tokens from the OIDC provider's JWKS instead.
"""

from __future__ import annotations

from shared.auth import mint_token
from shared.events import Role
from shared.settings import ServiceSettings
from tests.kit.people import PEOPLE


def token(settings: ServiceSettings, role: Role, *, nip: str | None = None, opd: str | None = None) -> str:
    """A 12-hour token for ``role``'s person (``nip`` overrides theirs: another person in the same role);
    ``opd``: the SIPD code of their OPD (claim ``opd``), none by default."""
    person = PEOPLE[role]
    return mint_token(settings, role=role, name=person.name, nip=nip or person.nip, opd=opd, pangkat=person.pangkat)


def auth(settings: ServiceSettings, role: Role, *, nip: str | None = None, opd: str | None = None) -> dict[str, str]:
    """The ``Authorization`` header for ``role``'s person, as ``token`` mints it."""
    return {"Authorization": f"Bearer {token(settings, role, nip=nip, opd=opd)}"}


def everyone(settings: ServiceSettings, opd: str | None = None) -> dict[Role, str]:
    """A token for each person of ``PEOPLE``, keyed by role (all of OPD ``opd``, when given)."""
    return {role: token(settings, role, opd=opd) for role in PEOPLE}
