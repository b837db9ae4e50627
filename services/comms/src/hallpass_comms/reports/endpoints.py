"""POST /v1/reports: report an offensive message to the DSL (E10)."""

from __future__ import annotations

from fastapi import APIRouter

from hallpass_comms.common import REPORTERS
from hallpass_comms.context import CommsContextDep
from hallpass_comms.reports import service
from hallpass_comms.reports.schemas import ReportCreate, ReportReceipt
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses

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
