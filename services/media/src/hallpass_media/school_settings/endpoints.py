from __future__ import annotations

from fastapi import APIRouter

from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_media.common import SETTINGS_ADMINS, STAFF
from hallpass_media.context import MediaContextDep
from hallpass_media.school_settings import service
from hallpass_media.school_settings.service import MediaSchoolSettings

router = APIRouter(prefix="/v1", tags=["settings"], responses=problem_responses(403))


@router.get("/settings")
def get_settings(
    session: SessionDep, principal: Principal = require_roles(*STAFF)
) -> MediaSchoolSettings:
    """The school's media choices (defaults until the head or an admin changes them)."""
    return service.current(session, principal.school)


@router.put("/settings")
def put_settings(
    body: MediaSchoolSettings,
    session: SessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*SETTINGS_ADMINS),
) -> MediaSchoolSettings:
    """Change the school's media choices; audited."""
    return service.change(session, principal, body, media.clock())
