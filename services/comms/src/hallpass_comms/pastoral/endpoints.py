"""The pastoral inbox (E7): carers write in, the DSL and pastoral staff read and reply."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from hallpass_comms.common import PASTORAL_READERS
from hallpass_comms.context import CommsContextDep
from hallpass_comms.messages.schemas import MessageReceipt
from hallpass_comms.models import ConcernStatus
from hallpass_comms.pastoral import service
from hallpass_comms.pastoral.schemas import (
    ConcernCreate,
    ConcernReceipt,
    ConcernView,
    ReplyCreate,
)
from hallpass_kit.app import SessionDep, WriteSessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.clients import caller_token
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.pagination import Page

router = APIRouter(prefix="/v1/pastoral", tags=["pastoral"], responses=problem_responses(403))


@router.post("/concerns", status_code=201, responses=problem_responses(404, 503))
def raise_concern(
    body: ConcernCreate,
    request: Request,
    session: SessionDep,
    context: CommsContextDep,
    principal: Principal = require_roles(Role.parent),
) -> ConcernReceipt:
    """A carer raises a concern with the school's pastoral team. Only the DSL and pastoral
    staff can read it (E7)."""
    return service.raise_concern(
        session,
        context.consent,
        principal,
        body,
        context.clock(),
        caller_token=caller_token(request.headers.get("authorization")),
    )


@router.get("/concerns", responses=problem_responses(400))
def list_concerns(
    session: WriteSessionDep,
    status: ConcernStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require_roles(*PASTORAL_READERS),
) -> Page[ConcernView]:
    """The pastoral inbox, newest first (DSL and pastoral staff; audited)."""
    return service.list_concerns(session, principal, status=status, cursor=cursor, limit=limit)


@router.get("/concerns/{concern_id:uuid}", responses=problem_responses(404))
def read_concern(
    concern_id: uuid.UUID,
    session: WriteSessionDep,
    principal: Principal = require_roles(*PASTORAL_READERS),
) -> ConcernView:
    """One concern (DSL and pastoral staff; audited)."""
    return service.read_concern(session, principal, concern_id)


@router.post(
    "/concerns/{concern_id}/replies",
    status_code=202,
    response_model=MessageReceipt,
    responses=problem_responses(404, 409, 422, 503),
)
def reply_to_concern(
    concern_id: uuid.UUID,
    body: ReplyCreate,
    request: Request,
    session: SessionDep,
    context: CommsContextDep,
    principal: Principal = require_roles(*PASTORAL_READERS),
) -> MessageReceipt:
    """Reply to the carer as an official message from your school account, copied to the head
    and/or deputy (E1), sensitive by default (E5), held outside school hours unless urgent
    (E8)."""
    return service.reply(
        session,
        context.consent,
        principal,
        concern_id,
        body,
        context.clock(),
        caller_token=caller_token(request.headers.get("authorization")),
    )
