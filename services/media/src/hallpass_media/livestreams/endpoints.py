"""C3: before a stream starts, who must stay off camera."""

from __future__ import annotations

from fastapi import APIRouter

from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_media.common import STAFF
from hallpass_media.context import MediaContextDep
from hallpass_media.livestreams import service
from hallpass_media.livestreams.schemas import LivestreamCheck, LivestreamVerdict

router = APIRouter(prefix="/v1", tags=["livestreams"], responses=problem_responses(403))


@router.post("/livestreams:check", responses=problem_responses(422, 503))
def check_livestream(
    body: LivestreamCheck,
    session: SessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*STAFF),
) -> LivestreamVerdict:
    """Who may appear in a livestream: it needs its own explicit permission (C3)."""
    return service.check(session, media, principal, body)
