"""M8: a carer may have the stored images of their own child, and only their own."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from hallpass_kit.app import WriteSessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import problem_responses
from hallpass_media.common import SUBJECT_ACCESS_STAFF
from hallpass_media.context import MediaContextDep
from hallpass_media.subject_access import service
from hallpass_media.subject_access.schemas import PupilMediaList

router = APIRouter(
    prefix="/v1", tags=["subject access"], responses=problem_responses(403, 404, 503)
)


@router.get("/pupils/{pupil_id}/media")
def pupil_media(
    pupil_id: uuid.UUID,
    session: WriteSessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*SUBJECT_ACCESS_STAFF, Role.parent),
) -> PupilMediaList:
    """Every stored picture a pupil is tagged in, and where each was published (M8).

    A carer sees only their own child; any other pupil answers 404 (and is audited).
    """
    return service.pupil_media(session, media, principal, pupil_id)


@router.get(
    "/pupils/{pupil_id}/media:export",
    response_class=StreamingResponse,
    responses={200: {"description": "A zip of the pictures", "content": {"application/zip": {}}}},
)
def export_pupil_media(
    pupil_id: uuid.UUID,
    session: WriteSessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*SUBJECT_ACCESS_STAFF, Role.parent),
) -> StreamingResponse:
    """A zip of every stored picture of the pupil, as clean copies (pixels only: no GPS or other
    metadata), streamed; audited (M8)."""
    return StreamingResponse(
        service.export(session, media, principal, pupil_id),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="pupil-{pupil_id}-media.zip"',
            "Cache-Control": "private, no-store",
        },
    )
