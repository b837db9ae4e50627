"""Who may reach a carer's own routes (A2): a person signed in as a carer, before one school is
chosen for them. A carer with children in two schools asks about a child, and the school that
holds that child is the one acted for."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from hallpass_kit.app import IdentifiedPrincipal, carer_not_linked, named_school
from hallpass_kit.auth import AccessRefused, Principal, Role
from hallpass_kit.clients import SCHOOL_HEADER


async def _carer(request: Request, principal: IdentifiedPrincipal) -> Principal:
    if Role.parent in principal.roles:
        return principal
    route = request.scope.get("route")
    raise AccessRefused(
        "Your role does not allow this.",
        principal=principal,
        action=f"refused:{getattr(route, 'name', request.url.path)}",
        target=request.url.path,
    )


async def _linked_carer(request: Request, principal: Principal = Depends(_carer)) -> Principal:
    if not principal.carers and principal.guardian_id is None:
        raise carer_not_linked()
    principal = named_school(principal, request.headers.get(SCHOOL_HEADER))
    request.state.principal = principal
    return principal


# A carer signed in, linked to a record or not yet (redeeming a code, asking for their links).
Carer: Any = Depends(_carer)
# A carer with at least one record: acting for the school named in X-Hallpass-School, for their
# only school, or (several, none named) for none yet; the route finds the one that holds the child.
LinkedCarer: Any = Depends(_linked_carer)
