"""Sending messages, approving outside mail, reading a message back, the carers' secure view."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hallpass_comms.common import APPROVERS, GONE_RESPONSE, MESSAGE_READERS, SENDERS
from hallpass_comms.context import CommsContext, CommsContextDep
from hallpass_comms.delivery.limits import SendingLimits
from hallpass_comms.messages import service
from hallpass_comms.messages.schemas import (
    MessageCreate,
    MessagePreview,
    MessageReceipt,
    MessageView,
    SecureMessage,
)
from hallpass_kit.app import SessionDep, WriteSessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.clients import caller_token
from hallpass_kit.errors import problem_responses
from hallpass_kit.idempotency import IdempotencyDep, run_idempotent


def sending_limits(context: CommsContext) -> SendingLimits:
    """The limits the delivery worker keeps to, so a forecast and the sending agree."""
    worker = context.delivery_worker
    if worker is not None:
        return worker.pacer.limits
    return SendingLimits.from_settings(context.settings)


router = APIRouter(prefix="/v1", tags=["messages"], responses=problem_responses(403))


@router.post(
    "/messages",
    status_code=202,
    response_model=MessageReceipt,
    responses=problem_responses(404, 409, 422, 503),
)
def send_message(
    body: MessageCreate,
    session: SessionDep,
    context: CommsContextDep,
    idempotency: IdempotencyDep,
    request: Request,
    principal: Principal = require_roles(*SENDERS),
) -> Any:
    """Send a message to carers (by carer, pupil, class or year group), staff or outside
    organisations. From is your own school account (E2); the head and/or deputy are copied as
    the school's policy says (E1); each family gets its own envelope (E9); outside mail waits
    for approval (E4); sensitive mail travels as a link (E5); chain messages are refused (E6);
    non-urgent mail outside school hours is held for the next school-day morning and
    `scheduled_for` says when (E8). Accepted (202): the delivery worker sends it."""
    return run_idempotent(
        session,
        context.tables,
        principal,
        idempotency,
        lambda: service.send(
            session,
            context.consent,
            principal,
            body,
            context.clock(),
            caller_token=caller_token(request.headers.get("authorization")),
            limits=sending_limits(context),
        ),
        status_code=202,
    )


@router.post("/messages:preview", responses=problem_responses(404, 409, 422, 503))
def preview_message(
    body: MessageCreate,
    session: SessionDep,
    context: CommsContextDep,
    request: Request,
    principal: Principal = require_roles(*SENDERS),
) -> MessagePreview:
    """What sending this message now would do, under the same rules as `POST /v1/messages`,
    writing nothing: how many families get it (E9), who is copied (E1), whether it waits for
    the head or deputy (E4) and when it would go out (E8). Refusals are those of a send."""
    return service.preview(
        session,
        context.consent,
        principal,
        body,
        context.clock(),
        caller_token=caller_token(request.headers.get("authorization")),
        limits=sending_limits(context),
    )


@router.get("/approvals")
def list_approvals(
    session: SessionDep, principal: Principal = require_roles(*APPROVERS)
) -> list[MessageView]:
    """E4: this school's messages to outside organisations waiting for the head or deputy,
    oldest first (at most 200)."""
    return service.pending_approval(session, principal)


@router.get("/messages/{message_id:uuid}", responses=problem_responses(404))
def read_message(
    message_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*SENDERS, *MESSAGE_READERS),
) -> MessageView:
    """A message and each envelope's delivery status: for its sender, the head, the deputy and
    the DSL (anyone else gets 404, audited)."""
    return service.read(session, principal, message_id)


@router.post("/messages/{message_id}:approve", responses=problem_responses(404, 409))
def approve_message(
    message_id: uuid.UUID,
    session: SessionDep,
    context: CommsContextDep,
    principal: Principal = require_roles(*APPROVERS),
) -> MessageView:
    """E4: the head or deputy lets a message to an outside organisation go. It then follows
    school hours like any other (E8). Audited."""
    return service.approve(
        session, principal, message_id, context.clock(), limits=sending_limits(context)
    )


@router.get(
    "/messages/{message_id:uuid}/secure-view",
    response_model=SecureMessage,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        **problem_responses(404, 409),
        **GONE_RESPONSE,
    },
)
def secure_view(
    message_id: uuid.UUID,
    session: WriteSessionDep,
    context: CommsContextDep,
    request: Request,
    principal: Principal = require_roles(Role.parent),
) -> Any:
    """E5: the words of a sensitive message, for a carer it was sent to, for as many days as
    the school's settings say (then 410). Everyone else gets 404. Every view is audited.
    A browser (asking for `text/html` before JSON) gets the message as a page: the link in the
    carer's email."""
    message = service.secure_view(session, principal, message_id, context.clock())
    if _prefers_html(request.headers.get("accept")):
        return HTMLResponse(
            service.secure_view_page(message),
            # A carer's private message: kept by no cache, framed by no other site.
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                "frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff",
            },
        )
    return message


def _prefers_html(accept: str | None) -> bool:
    """Whether ``Accept`` ranks HTML above JSON (a browser following a link does; an API
    client's ``*/*`` or ``application/json`` does not)."""
    html_q = json_q = 0.0
    for part in (accept or "").split(",")[:50]:
        media_type, _, parameters = part.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.strip().lower()
        if media_type in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, quality)
        elif media_type in ("application/json", "application/problem+json"):
            json_q = max(json_q, quality)
    return html_q > 0 and html_q > json_q
