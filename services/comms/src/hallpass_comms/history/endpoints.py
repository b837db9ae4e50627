"""GET /v1/families/{pupil_id}/messages: a family's messages (E3)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from hallpass_comms.common import HISTORY_READERS
from hallpass_comms.context import CommsContextDep
from hallpass_comms.history import service
from hallpass_comms.history.schemas import FamilyHistoryEntry
from hallpass_kit.app import WriteSessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.clients import caller_token
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.pagination import Page

router = APIRouter(prefix="/v1", tags=["history"], responses=problem_responses(403))


@router.get("/families/{pupil_id}/messages", responses=problem_responses(400, 404, 503))
def family_messages(
    pupil_id: uuid.UUID,
    request: Request,
    session: WriteSessionDep,
    context: CommsContextDep,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Search subjects and bodies (head, DSL)."),
        STORABLE,
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require_roles(*HISTORY_READERS, Role.parent),
) -> Page[FamilyHistoryEntry]:
    """The messages between the school and a pupil's family, newest first. Staff read by role
    (pastoral replies only the DSL, pastoral staff and the head; sensitive words only
    leadership, the DSL and pastoral staff); a carer reads what reached them about their own
    child. Every read is audited."""
    return service.family_history(
        session,
        context.consent,
        principal,
        pupil_id,
        cursor=cursor,
        limit=limit,
        search=q,
        now=context.clock(),
        caller_token=caller_token(request.headers.get("authorization")),
    )
