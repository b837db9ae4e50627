from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from hallpass_consent.common import (
    GUARDIAN_READERS,
    PUPIL_READERS,
    PUPIL_RECORD_READERS,
    REGISTRARS,
)
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.pupils import service
from hallpass_consent.pupils.schemas import (
    ChildLink,
    ClassCreate,
    ClassView,
    GuardianCreate,
    GuardianView,
    ImportSummary,
    PupilChange,
    PupilCreate,
    PupilView,
    RestrictionSet,
    RestrictionView,
)
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import PayloadTooLarge, UnsupportedMediaType, problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.pagination import Page

router = APIRouter(prefix="/v1", tags=["pupils"], responses=problem_responses(403, 404, 422))


@router.post("/classes", status_code=201, tags=["classes"], responses=problem_responses(409))
def create_class(
    body: ClassCreate,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> ClassView:
    """Add a class (form group)."""
    return service.create_class(session, principal, body, now=context.clock())


@router.get("/classes", tags=["classes"])
def list_classes(
    session: SessionDep, principal: Principal = require_roles(*PUPIL_READERS)
) -> list[ClassView]:
    """The school's classes."""
    return service.list_classes(session, principal)


@router.post("/pupils", status_code=201, responses=problem_responses(409))
def create_pupil(
    body: PupilCreate,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> PupilView:
    """Add a pupil to the roll."""
    return service.create_pupil(session, principal, body, now=context.clock())


@router.get("/pupils", responses=problem_responses(400))
def list_pupils(
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    class_id: uuid.UUID | None = None,
    include_archived: bool = False,
    principal: Principal = require_roles(*PUPIL_READERS),
) -> Page[PupilView]:
    """Pupils by family name, a page at a time."""
    return service.list_pupils(
        session,
        principal,
        cursor=cursor,
        limit=limit,
        class_id=class_id,
        include_archived=include_archived,
    )


@router.get("/pupils/{pupil_id:uuid}")
def get_pupil(
    pupil_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*PUPIL_RECORD_READERS),
) -> PupilView:
    """One pupil. ``restricted`` says a safeguarding restriction applies, never why."""
    return service.get_pupil(session, principal, pupil_id)


@router.patch("/pupils/{pupil_id:uuid}")
def change_pupil(
    pupil_id: uuid.UUID,
    body: PupilChange,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> PupilView:
    """Correct a pupil's names, year group or class."""
    return service.change_pupil(session, principal, pupil_id, body, now=context.clock())


@router.post("/pupils/{pupil_id}:archive", responses=problem_responses(409))
def archive_pupil(
    pupil_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> PupilView:
    """Mark a leaver. Nothing is deleted: the consent history stays as evidence."""
    return service.archive_pupil(session, principal, pupil_id, now=context.clock())


@router.post(
    "/pupils:import",
    responses=problem_responses(409, 413, 415),
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_pupils(
    request: Request,
    session: SessionDep,
    context: ConsentContextDep,
    dry_run: bool = False,
    principal: Principal = require_roles(*REGISTRARS),
) -> ImportSummary:
    """Import pupils and carers from an MIS CSV export; all rows land or none do.

    Columns are documented in docs/import.md. Every bad row is reported (row, column, problem).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType("Send the file as text/csv.")
    limit = context.settings.max_import_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise PayloadTooLarge(f"The file is larger than {limit} bytes.")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise PayloadTooLarge(f"The file is larger than {limit} bytes.")

    return await run_in_threadpool(
        service.import_pupils,
        session,
        principal,
        bytes(data),
        dry_run=dry_run,
        max_rows=context.settings.max_import_rows,
        now=context.clock(),
    )


@router.post("/guardians", status_code=201, tags=["guardians"], responses=problem_responses(409))
def create_guardian(
    body: GuardianCreate,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> GuardianView:
    """Add a carer and link them to their children, with parental responsibility or not."""
    return service.create_guardian(session, principal, body, now=context.clock())


@router.get("/guardians/{guardian_id}", tags=["guardians"])
def get_guardian(
    guardian_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*GUARDIAN_READERS),
) -> GuardianView:
    """One carer and the children they are linked to."""
    return service.get_guardian(session, principal, guardian_id)


@router.post("/guardians/{guardian_id}/children", tags=["guardians"])
def link_child(
    guardian_id: uuid.UUID,
    body: ChildLink,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> GuardianView:
    """Link a carer to a child, or change the link's parental responsibility."""
    return service.link_child(session, principal, guardian_id, body, now=context.clock())


@router.get("/pupils/{pupil_id}/guardians", tags=["guardians"])
def guardians_of_pupil(
    pupil_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*GUARDIAN_READERS),
) -> list[GuardianView]:
    """A pupil's carers."""
    return service.guardians_of_pupil(session, principal, pupil_id)


@router.put("/pupils/{pupil_id}/restriction", tags=["safeguarding"])
def set_restriction(
    pupil_id: uuid.UUID,
    body: RestrictionSet,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(Role.dsl),
) -> RestrictionView:
    """Set a safeguarding restriction (DSL only). It overrides every consent (C12)."""
    return service.set_restriction(session, principal, pupil_id, body, now=context.clock())


@router.get("/pupils/{pupil_id}/restriction", tags=["safeguarding"])
def get_restriction(
    pupil_id: uuid.UUID, session: SessionDep, principal: Principal = require_roles(Role.dsl)
) -> RestrictionView:
    """The restriction and its reason: for the DSL's eyes only."""
    return service.get_restriction(session, principal, pupil_id)


@router.delete("/pupils/{pupil_id}/restriction", status_code=204, tags=["safeguarding"])
def lift_restriction(
    pupil_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(Role.dsl),
) -> Response:
    """Lift a safeguarding restriction (DSL only); consents apply again from now."""
    service.lift_restriction(session, principal, pupil_id, now=context.clock())
    return Response(status_code=204)
