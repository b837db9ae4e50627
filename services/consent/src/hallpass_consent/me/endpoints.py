"""Parent self-service (A2): a carer sees and changes only their own children.

Mounted behind ``identified`` only (app.py): a carer with children in two schools needs no school
chosen up front; each route acts for the school that holds the child asked about.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from hallpass_consent.carers.auth import LinkedCarer
from hallpass_consent.consents.schemas import (
    ConsentReceipt,
    ConsentRecordView,
    ParentConsent,
)
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.me import service
from hallpass_consent.me.schemas import Child
from hallpass_consent.models import Decision
from hallpass_kit.app import SessionDep
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.idempotency import IdempotencyDep

router = APIRouter(prefix="/v1/me", tags=["me"], responses=problem_responses(403, 404, 422))

PurposeCode = Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z0-9_]{1,63}$"), STORABLE]
Carer = LinkedCarer


@router.get("/children")
def my_children(
    session: SessionDep, context: ConsentContextDep, principal: Principal = Carer
) -> list[Child]:
    """Your children in every school you have a record in (each names its school) and, per
    purpose, your answer and what applies now. Naming a school in X-Hallpass-School lists that
    school's only."""
    return service.my_children(session, principal, now=context.clock())


@router.get("/children/{pupil_id}")
def my_child(
    pupil_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = Carer,
) -> Child:
    """One of your children. Any other pupil id answers 404."""
    return service.my_child(session, principal, pupil_id, now=context.clock())


@router.get("/children/{pupil_id}/consents")
def my_child_history(
    pupil_id: uuid.UUID, session: SessionDep, principal: Principal = Carer
) -> list[ConsentRecordView]:
    """Every consent record about your child, newest first."""
    return service.my_child_history(session, principal, pupil_id)


@router.post(
    "/children/{pupil_id}/consents",
    status_code=201,
    response_model=ConsentRecordView,
    responses=problem_responses(409),
)
def answer_for_my_child(
    pupil_id: uuid.UUID,
    body: ParentConsent,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = Carer,
) -> object:
    """Give or refuse consent for your child for one purpose."""
    return service.answer_for_child(
        session,
        principal,
        idempotency,
        pupil_id,
        body.purpose,
        Decision(body.decision),
        body.wording_version,
        now=context.clock(),
        action="refused:me.answer",
        wording_language=body.wording_language,
    )


@router.post(
    "/children/{pupil_id}/consents/{purpose}:withdraw",
    status_code=201,
    response_model=ConsentRecordView,
    responses=problem_responses(409),
)
def withdraw_for_my_child(
    pupil_id: uuid.UUID,
    purpose: PurposeCode,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = Carer,
) -> object:
    """Withdraw consent in one call (C5): it applies to every decision from this moment."""
    return service.answer_for_child(
        session,
        principal,
        idempotency,
        pupil_id,
        purpose,
        Decision.withdrawn,
        None,
        now=context.clock(),
        action="refused:me.withdraw",
    )


@router.get("/consents/{record_id}/receipt")
def my_receipt(
    record_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = Carer,
) -> ConsentReceipt:
    """The receipt for a consent record about one of your children."""
    return service.my_receipt(session, principal, record_id, now=context.clock())
