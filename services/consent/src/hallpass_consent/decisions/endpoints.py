from __future__ import annotations

from fastapi import APIRouter

from hallpass_consent.common import DECIDERS
from hallpass_consent.consents import service
from hallpass_consent.consents.schemas import DecisionRequest, DecisionResponse
from hallpass_consent.context import ConsentContextDep
from hallpass_kit.app import ReadSessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.metrics import count_decisions

router = APIRouter(prefix="/v1", tags=["decisions"], responses=problem_responses(403, 422))


@router.post("/decisions")
def decide(
    body: DecisionRequest,
    session: ReadSessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*DECIDERS),
) -> DecisionResponse:
    """May these pupils appear for this purpose? One verdict per pupil, with the record behind it.

    Fails closed: an unknown purpose or pupil answers 422 and decides nothing; absence of a
    record is "no" for opt-in purposes (C2); a restriction is always "no" (C12).
    """
    decided = service.decisions(
        session,
        principal,
        body,
        max_batch=context.settings.max_decision_batch,
        now=context.clock(),
    )
    count_decisions(decision.reason for decision in decided.decisions)
    return decided
