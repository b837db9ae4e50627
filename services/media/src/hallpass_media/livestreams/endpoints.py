"""C3: before a stream starts, who must stay off camera."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import Unprocessable, problem_responses
from hallpass_media.common import STAFF, record_audit
from hallpass_media.context import MediaDep

router = APIRouter(prefix="/v1", tags=["livestreams"], responses=problem_responses(403))


class LivestreamCheck(BaseModel):
    """Give the pupils, or a class (every pupil on roll in it), or both."""

    model_config = ConfigDict(extra="forbid")

    pupil_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    class_id: uuid.UUID | None = None


class OnCamera(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    allowed: bool
    reason: str = Field(
        description="Why not: no_record, refused, withdrawn, expired… or just `restricted` (C12)."
    )


class LivestreamVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    pupils: list[OnCamera]
    off_camera: list[uuid.UUID] = Field(description="Pupils who must stay off camera.")


@router.post("/livestreams:check", responses=problem_responses(422, 503))
def check_livestream(
    body: LivestreamCheck,
    session: SessionDep,
    media: MediaDep,
    principal: Principal = require_roles(*STAFF),
) -> LivestreamVerdict:
    """Who may appear in a livestream: it needs its own explicit permission (C3)."""
    if not body.pupil_ids and body.class_id is None:
        raise Unprocessable("Give pupil_ids or a class_id.", code="nobody_to_check")
    pupils = list(dict.fromkeys(body.pupil_ids))
    if body.class_id is not None:
        pupils.extend(
            p
            for p in media.consent.pupils_of_class(principal.school, body.class_id)
            if p not in pupils
        )
    decisions = media.consent.decisions(principal.school, "livestream", pupils)
    answers = [
        OnCamera(pupil_id=p, allowed=decisions[p].allowed, reason=decisions[p].reason)
        for p in pupils
    ]
    off = [a.pupil_id for a in answers if not a.allowed]
    record_audit(
        session,
        principal,
        "livestream.checked",
        str(body.class_id) if body.class_id else None,
        {"pupils": len(answers), "off_camera": len(off)},
    )
    return LivestreamVerdict(purpose="livestream", pupils=answers, off_camera=off)
