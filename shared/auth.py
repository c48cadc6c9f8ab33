"""Bearer-token authentication (PyJWT): who is acting, in which SOP role, for which OPD.

Invariants:
- every token is checked for signature, ``iss``, ``aud`` and ``exp``; the actor (user id, name, NIP,
  role, OPD) comes only from its claims (``sub``, ``name``, ``nip``, ``role``, ``opd``; ``pangkat`` is
  read too but not recorded in events) — the OIDC claims are listed in docs/operations.md;
- an ``opd`` claim must name an OPD of the region registry (``shared.registry``), else 401; a role the
  registry says that OPD does not staff is 403; the OPD check on each cycle is ``shared.command``'s;
- the local stack signs with HS256 and a shared development secret; production verifies against the OIDC
  provider's JWKS (``RENJA_JWT_JWKS_URL``, RS256/ES256) and the settings refuse the development secret;
- ``auditor`` and ``bappeda`` are read-only everywhere: no command endpoint lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from shared.events import Actor, Role
from shared.registry import Registry
from shared.settings import ServiceSettings

ROLES: tuple[Role, ...] = ("kepala_badan", "sekretaris", "kasubag_pp", "staf", "auditor", "bappeda")
READ_ONLY_ROLES: tuple[Role, ...] = ("auditor", "bappeda")
"""Roles that read across OPDs and never act: ``auditor``, and ``bappeda`` (the region's planning agency,
which coordinates every OPD's Renja: the audit's region-wide page ``GET /region``)."""
SOP_ROLES: tuple[Role, ...] = ("kepala_badan", "sekretaris", "kasubag_pp", "staf")

_bearer = HTTPBearer(auto_error=False, description="JWT from the local issuer (`renja token`) or the OIDC provider")


class TokenVerifier:
    """Checks bearer tokens against the configured issuer; built once in each service's composition root."""

    def __init__(self, settings: ServiceSettings, registry: Registry | None = None) -> None:
        self.registry = registry
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.secret = settings.jwt_secret
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    def actor(self, token: str) -> Actor:
        """The actor named by a valid token. Raises ``HTTPException(401)`` saying what is wrong (also for an
        ``opd`` claim the registry does not know), ``HTTPException(403)`` for a role that OPD does not staff."""
        try:
            if self.jwks is not None:
                key: Any = self.jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "EdDSA"]
            else:
                key, algorithms = self.secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise HTTPException(401, "The token has expired: get a new one (renja token ...).") from exc
        except jwt.PyJWTError as exc:
            raise HTTPException(401, f"The token is not valid here: {exc}.") from exc
        try:
            actor = Actor(
                user_id=claims["sub"],
                name=claims.get("name", ""),
                nip=claims.get("nip", ""),
                role=claims.get("role", ""),
                opd=claims.get("opd") or None,
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise HTTPException(401, f"The token's identity claims are incomplete ({problems}).") from exc
        self._check_opd(actor)
        return actor

    def _check_opd(self, actor: Actor) -> None:
        """401 for an ``opd`` claim not in the registry; 403 for a SOP role that OPD does not staff."""
        if actor.opd is None or self.registry is None:
            return
        opd = self.registry.find(actor.opd)
        if opd is None:
            raise HTTPException(
                401,
                f"Klaim opd {actor.opd!r} pada token tidak terdaftar di registri {self.registry.region.name} "
                f"(versi {self.registry.version}); minta token dengan kode SIPD OPD yang terdaftar.",
            )
        if actor.role in SOP_ROLES and actor.role not in opd.roles:
            raise HTTPException(403, f"{opd.short_name} tidak memiliki peran {actor.role} menurut registri.")


def mint_token(
    settings: ServiceSettings,
    *,
    role: Role,
    name: str,
    nip: str,
    user_id: str | None = None,
    opd: str | None = None,
    pangkat: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """A token from the local development issuer (HS256). Never used when a JWKS URL is configured.

    ``opd`` is the SIPD unit code of the person's OPD (claim ``opd``), ``pangkat`` their pangkat/golongan.
    """
    issued = now or datetime.now(UTC)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": user_id or f"{role}:{nip}",
        "name": name,
        "nip": nip,
        "role": role,
        **({"opd": opd} if opd else {}),
        **({"pangkat": pangkat} if pangkat else {}),
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def require_roles(*roles: Role) -> Callable[..., Actor]:
    """FastAPI dependency: the authenticated actor, if their role is one of ``roles`` (else 403)."""
    allowed: Iterable[Role] = roles

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "Send an 'Authorization: Bearer <token>' header (renja token --role ...).")
        verifier: TokenVerifier = request.app.state.verifier
        actor = verifier.actor(credentials.credentials)
        if actor.role not in allowed:
            raise HTTPException(403, f"Role {actor.role} may not do this; allowed: {', '.join(allowed)}.")
        return actor

    return dependency


ANY_ROLE = require_roles(*ROLES)
