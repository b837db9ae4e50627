"""Families for messaging: the carers of pupils, classes and year groups (read by comms)."""

from __future__ import annotations

from fastapi import APIRouter

from hallpass_consent.common import GUARDIAN_READERS
from hallpass_consent.families import service
from hallpass_consent.families.schemas import FamiliesQuery, Family
from hallpass_kit.app import ReadSessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["families"], responses=problem_responses(403))


@router.post("/families:resolve", responses=problem_responses(422))
def resolve_families(
    body: FamiliesQuery,
    session: ReadSessionDep,
    principal: Principal = require_roles(*GUARDIAN_READERS),
) -> list[Family]:
    """The pupils named by id, through a carer's id, or on roll in a class or year group, each
    with all their carers: email and parental responsibility included. Unknown ids are refused
    (422) and nothing is returned."""
    return service.resolve(session, principal, body)
