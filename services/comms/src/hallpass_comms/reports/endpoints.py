"""Reports of offensive messages (E10): anyone reports (``POST /v1/reports``), and the designated
staff told of each report (the DSL, and the head who answers for the school) read them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from hallpass_comms.common import REPORT_READERS, REPORTERS
from hallpass_comms.context import CommsContextDep
from hallpass_comms.reports import service
from hallpass_comms.reports.schemas import (
    ReportCreate,
    ReportReceipt,
    ReportResolve,
    ReportView,
)
from hallpass_kit.app import SessionDep, WriteSessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.pagination import Page

router = APIRouter(prefix="/v1", tags=["reports"], responses=problem_responses(403))


@router.post("/reports", status_code=201, responses=problem_responses(404, 409, 422))
def file_report(
    body: ReportCreate,
    session: SessionDep,
    context: CommsContextDep,
    principal: Principal = require_roles(*REPORTERS),
) -> ReportReceipt:
    """Report an offensive message, one sent through Hallpass or one received from an address.
    The DSL is emailed at once with the reference, which the answer gives you too."""
    return service.file_report(session, context.consent, principal, body, context.clock())


@router.get("/reports", responses=problem_responses(400))
def list_reports(
    session: WriteSessionDep,
    cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require_roles(*REPORT_READERS),
) -> Page[ReportView]:
    """Reports, newest first (the DSL and the head; every reading audited)."""
    return service.list_reports(session, principal, cursor=cursor, limit=limit)


@router.get("/reports/{report_id:uuid}", responses=problem_responses(404))
def read_report(
    report_id: uuid.UUID,
    session: WriteSessionDep,
    principal: Principal = require_roles(*REPORT_READERS),
) -> ReportView:
    """One report with what the reporter said (the DSL and the head; audited)."""
    return service.read_report(session, principal, report_id)


@router.post("/reports/{report_id}:resolve", responses=problem_responses(404, 409, 422))
def resolve_report(
    report_id: uuid.UUID,
    body: ReportResolve,
    session: SessionDep,
    context: CommsContextDep,
    principal: Principal = require_roles(*REPORT_READERS),
) -> ReportView:
    """Mark a report handled, saying what was done (the DSL and the head; once; audited)."""
    return service.resolve_report(session, principal, report_id, body, context.clock())
