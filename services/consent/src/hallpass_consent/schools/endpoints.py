from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from hallpass_consent.common import EVERYONE, SCHOOL_ADMINS
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.schools import service
from hallpass_consent.schools.schemas import (
    NewWording,
    PurposeChange,
    PurposeHistory,
    PurposeView,
    SchoolSettings,
    SchoolView,
)
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE

router = APIRouter(prefix="/v1", tags=["school"], responses=problem_responses(403, 404, 422))

PurposeCode = Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z0-9_]{1,63}$"), STORABLE]


@router.get("/school")
def get_school(session: SessionDep, principal: Principal = require_roles(*EVERYONE)) -> SchoolView:
    """The caller's school and its settings."""
    return service.get_school(session, principal)


@router.put("/school", responses=problem_responses(409))
def put_school(
    body: SchoolSettings,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*SCHOOL_ADMINS),
) -> SchoolView:
    """Set up the caller's school (seeding its purposes) or change its settings."""
    return service.put_school(session, principal, body, now=context.clock())


@router.get("/purposes", tags=["purposes"])
def list_purposes(
    session: SessionDep, principal: Principal = require_roles(*EVERYONE)
) -> list[PurposeView]:
    """The purposes consent is asked for (C1), each with the current words parents see."""
    return service.list_purposes(session, principal)


@router.get("/purposes/{code}", tags=["purposes"])
def get_purpose(
    code: PurposeCode, session: SessionDep, principal: Principal = require_roles(*EVERYONE)
) -> PurposeHistory:
    """One purpose with every version of its wording (C10)."""
    return service.purpose_history(session, principal, code)


@router.post(
    "/purposes/{code}/wordings",
    tags=["purposes"],
    status_code=201,
    responses=problem_responses(409),
)
def add_wording(
    code: PurposeCode,
    body: NewWording,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*SCHOOL_ADMINS),
) -> PurposeHistory:
    """Publish new wording for a purpose as a new version."""
    return service.add_wording(session, principal, code, body, now=context.clock())


@router.patch("/purposes/{code}", tags=["purposes"])
def change_purpose(
    code: PurposeCode,
    body: PurposeChange,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*SCHOOL_ADMINS),
) -> PurposeHistory:
    """Choose opt-in or objection-based for a purpose (the school's call, within C3/C4/C8)."""
    return service.change_purpose(session, principal, code, body, now=context.clock())
