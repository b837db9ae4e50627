"""Consent requests: the office asks carers by email; each carer answers by a personal link."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from hallpass_consent.common import REGISTRARS
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.models import kit_tables
from hallpass_consent.requests import service
from hallpass_consent.requests.schemas import (
    ConsentRequestCreate,
    ConsentRequestSummary,
    ConsentRequestView,
    LinkAnswer,
    LinkAnswerReceipt,
    LinkOpen,
    LinkRequestView,
    RoundLinks,
)
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import PROBLEM_MEDIA_TYPE, Problem, problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.idempotency import IdempotencyDep, run_idempotent
from hallpass_kit.pagination import Page

GONE: dict[int | str, dict[str, object]] = {
    410: {
        "model": Problem,
        "description": "The request has closed (or its closing date has passed)",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}

router = APIRouter(
    prefix="/v1", tags=["consent-requests"], responses=problem_responses(403, 404, 422)
)


@router.post(
    "/consent-requests",
    status_code=201,
    response_model=ConsentRequestView,
    responses=problem_responses(409),
)
def create_consent_request(
    body: ConsentRequestCreate,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Ask the carers (with parental responsibility and an email address) of the chosen classes,
    year groups or whole school for the chosen purposes. Pupils none of whose carers has an
    address are listed in the answer, to be chased on paper."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.create_request(session, principal, body, now=context.clock()),
        status_code=201,
    )


@router.get("/consent-requests", responses=problem_responses(400))
def list_consent_requests(
    session: SessionDep,
    context: ConsentContextDep,
    cursor: Annotated[str | None, Query(max_length=500), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    principal: Principal = require_roles(*REGISTRARS),
) -> Page[ConsentRequestSummary]:
    """The school's consent requests, newest first, each with pupils answered / in total."""
    return service.list_requests(
        session, principal, cursor=cursor, limit=limit, now=context.clock()
    )


@router.get("/consent-requests/{request_id:uuid}")
def get_consent_request(
    request_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> ConsentRequestView:
    """Progress per class: pupils answered (a record for every purpose asked, made since the
    request, by any method) and the names of those not yet, for chasing."""
    return service.get_request(session, principal, request_id, now=context.clock())


@router.post(
    "/consent-requests/{request_id}:remind",
    response_model=ConsentRequestView,
    responses=problem_responses(409),
)
def remind_consent_request(
    request_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Another email round, to the carers of pupils not answered yet (409 when closed)."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.remind(session, principal, request_id, now=context.clock()),
        status_code=200,
    )


@router.post(
    "/consent-requests/{request_id}:close",
    response_model=ConsentRequestView,
    responses=problem_responses(409),
)
def close_consent_request(
    request_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Close the request: its links stop working (410); recorded answers stay."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.close(session, principal, request_id, now=context.clock()),
        status_code=200,
    )


@router.post("/consent-requests/{request_id}/rounds/{round}:links", responses=GONE)
def issue_round_links(
    request_id: uuid.UUID,
    round: Annotated[int, Path(ge=1, le=1000)],
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(Role.service),
) -> RoundLinks:
    """For comms: a fresh personal link for each carer due in this round (the first: everyone
    asked; a reminder: carers with a child not answered yet). Tokens are returned once."""
    return service.issue_links(session, principal, request_id, round, now=context.clock())


# Deliberately public (mounted without the bearer check in app.py): the personal link is the
# credential, as in ParentMail, so a carer answers from their email without an account. The
# token alone picks the carer, their school and their children; a wrong one learns nothing.
link_router = APIRouter(
    prefix="/v1", tags=["consent-requests"], responses={**problem_responses(404, 422), **GONE}
)


@link_router.post("/consent-requests:open-link")
def open_consent_request_link(
    body: LinkOpen, session: SessionDep, context: ConsentContextDep
) -> LinkRequestView:
    """What a carer's personal link opens: the request, their children in it, each purpose's
    current wording (English, and Welsh where the school wrote it) and their answer so far."""
    return service.open_link(session, body, now=context.clock())


@link_router.post(
    "/consent-requests:answer-link", status_code=201, responses=problem_responses(409)
)
def answer_consent_request_link(
    body: LinkAnswer, session: SessionDep, context: ConsentContextDep
) -> LinkAnswerReceipt:
    """Record the carer's answers, all or none, exactly as the office records consent (method
    electronic, evidenced by the link); a wording version that is not the current one is
    refused."""
    return service.answer_link(session, body, now=context.clock())
