"""A school's own media choices: first names forbidden too, blur untagged faces by default."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_media.common import record_audit
from hallpass_media.models import SchoolMediaSettings
from hallpass_media.school_settings import repository


class MediaSchoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    forbid_first_names: StrictBool = Field(
        default=False,
        description="Also refuse a pupil's first name on its own (M1 covers full names always).",
    )
    blur_untagged_faces: StrictBool = Field(
        default=False,
        description="Publish by blurring every face that is not a tagged pupil's, instead of "
        "refusing a picture with more faces than tagged pupils (M3).",
    )


DEFAULTS = MediaSchoolSettings()


def current(session: Session, school: str) -> MediaSchoolSettings:
    row = repository.find(session, school)
    if row is None:
        return DEFAULTS
    return MediaSchoolSettings(
        forbid_first_names=row.forbid_first_names, blur_untagged_faces=row.blur_untagged_faces
    )


def change(
    session: Session, principal: Principal, body: MediaSchoolSettings, now: dt.datetime
) -> MediaSchoolSettings:
    row = repository.find(session, principal.school)
    if row is None:
        row = SchoolMediaSettings(school_id=principal.school)
        repository.add(session, row)
    row.forbid_first_names = body.forbid_first_names
    row.blur_untagged_faces = body.blur_untagged_faces
    row.updated_by = principal.actor
    row.updated_at = now
    repository.save(session)
    record_audit(session, principal, "settings.changed", principal.school, body.model_dump())
    return body
