"""``GET /registry`` routes every service serves: the region and its OPDs as the registry file says now.

Read-only, any role (the registry is the deployment's public organisation data; a cycle's own identity
is the snapshot its arahan recorded, ``RenjaState.opd_identity``, which these routes never change).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from shared.auth import ANY_ROLE
from shared.events import Actor, OpdIdentity
from shared.registry import Region, Registry

router = APIRouter(tags=["registry"])


# No class docstrings: pydantic would publish them as schema descriptions.
class RegistryPublic(BaseModel):
    version: str
    sha256: str
    region: Region
    opds: list[OpdIdentity]


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


@router.get("/registry", response_model=RegistryPublic, summary="The region and every OPD of the registry (any role)")
async def registry_all(request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> RegistryPublic:
    """The registry file's version and SHA-256, the region, and each OPD as a new cycle would record it."""
    registry = _registry(request)
    return RegistryPublic(
        version=registry.version,
        sha256=registry.sha256,
        region=registry.region,
        opds=[registry.identity(o.code) for o in registry.opds],
    )


@router.get("/registry/region", response_model=Region, summary="The region this deployment serves (any role)")
async def registry_region(request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> Region:
    return _registry(request).region


@router.get(
    "/registry/opd/{code}",
    response_model=OpdIdentity,
    summary="One OPD by SIPD unit code, as a new cycle would record it (any role)",
    responses={404: {"description": "no OPD with this SIPD code in the registry"}},
)
async def registry_opd(code: str, request: Request, _: Annotated[Actor, Depends(ANY_ROLE)]) -> OpdIdentity:
    registry = _registry(request)
    if registry.find(code) is None:
        raise HTTPException(404, f"OPD {code} tidak ada di registri {registry.region.name}.")
    return registry.identity(code)
