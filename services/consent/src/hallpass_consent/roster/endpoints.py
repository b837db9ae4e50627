"""The roster of pupil names that name detection (media) matches against."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from hallpass_consent.common import PUPIL_READERS
from hallpass_consent.models import Pupil
from hallpass_consent.schools.repository import get_school
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE

router = APIRouter(prefix="/v1", tags=["roster"], responses=problem_responses(403))


class RosterPupil(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None
    on_roll: bool


class Roster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    pupils: list[RosterPupil]


@router.get(
    "/roster",
    response_model=Roster,
    responses={304: {"description": "Unchanged since the ETag you hold"}},
)
def roster(
    response: Response,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header(max_length=200), STORABLE] = None,
    principal: Principal = require_roles(*PUPIL_READERS),
) -> object:
    """Every pupil's names, leavers included (their names still must not be published).

    Versioned: send the ETag back in If-None-Match and an unchanged roster answers 304.
    """
    school = get_school(session, principal.school)
    version = school.roster_version if school else 0
    etag = f'W/"roster-{principal.school}-{version}"'
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    rows = session.execute(
        select(
            Pupil.id, Pupil.given_name, Pupil.family_name, Pupil.preferred_name, Pupil.archived_at
        )
        .where(Pupil.school_id == principal.school)
        .order_by(Pupil.id)
    ).all()
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    return Roster(
        version=version,
        pupils=[
            RosterPupil(
                id=r.id,
                given_name=r.given_name,
                family_name=r.family_name,
                preferred_name=r.preferred_name,
                on_roll=r.archived_at is None,
            )
            for r in rows
        ],
    )
