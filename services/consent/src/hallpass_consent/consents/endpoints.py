from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from hallpass_consent.common import PUPIL_RECORD_READERS, RECORD_READERS, REGISTRARS
from hallpass_consent.consents import service
from hallpass_consent.consents.schemas import (
    ConsentCreate,
    ConsentReceipt,
    ConsentRecordView,
    PupilConsents,
    Renewal,
    Withdrawal,
)
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.models import kit_tables
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import problem_responses
from hallpass_kit.idempotency import IdempotencyDep, run_idempotent

router = APIRouter(prefix="/v1", tags=["consents"], responses=problem_responses(403, 404, 422))


@router.post(
    "/consents", status_code=201, response_model=ConsentRecordView, responses=problem_responses(409)
)
def record_consent(
    body: ConsentCreate,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Record a carer's decision from a form, email or call-back (C1, C10, C11)."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.record_consent(session, principal, body, now=context.clock()),
        status_code=201,
    )


@router.post(
    "/consents/{record_id}:withdraw",
    status_code=201,
    response_model=ConsentRecordView,
    responses=problem_responses(409),
)
def withdraw_consent(
    record_id: uuid.UUID,
    body: Withdrawal,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Withdraw a grant; every decision from now on reads the withdrawal (C5)."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.withdraw_record(session, principal, record_id, body, now=context.clock()),
        status_code=201,
    )


@router.get("/consents/{record_id:uuid}")
def get_consent(
    record_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*RECORD_READERS),
) -> ConsentRecordView:
    """One consent record as it was recorded (records are never changed)."""
    return service.get_record(session, principal, record_id)


@router.get("/consents/{record_id}/receipt")
def get_receipt(
    record_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*RECORD_READERS),
) -> ConsentReceipt:
    """The consent receipt for a record (ISO/IEC TS 27560 fields)."""
    return service.staff_receipt(session, principal, record_id, now=context.clock())


@router.get("/pupils/{pupil_id}/consents")
def pupil_consents(
    pupil_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*PUPIL_RECORD_READERS),
) -> PupilConsents:
    """A pupil's effective consent per purpose now, and the full history behind it."""
    return service.pupil_consents(session, principal, pupil_id, now=context.clock())


@router.get("/renewals")
def renewals(
    session: SessionDep,
    context: ConsentContextDep,
    within_days: Annotated[int, Query(ge=1, le=366)] = 30,
    principal: Principal = require_roles(*REGISTRARS, Role.service),
) -> list[Renewal]:
    """Grants that lapse within the given number of days and have not been renewed."""
    return service.renewals(session, principal, within_days, now=context.clock())
