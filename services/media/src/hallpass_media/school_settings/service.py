"""A school's own media choices: first names forbidden too, blur untagged faces by default."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.db import utcnow
from hallpass_media.common import record_audit
from hallpass_media.models import SchoolMediaSettings


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
    row = session.get(SchoolMediaSettings, school)
    if row is None:
        return DEFAULTS
    return MediaSchoolSettings(
        forbid_first_names=row.forbid_first_names, blur_untagged_faces=row.blur_untagged_faces
    )


def change(
    session: Session, principal: Principal, body: MediaSchoolSettings
) -> MediaSchoolSettings:
    row = session.get(SchoolMediaSettings, principal.school)
    if row is None:
        row = SchoolMediaSettings(school_id=principal.school)
        session.add(row)
    row.forbid_first_names = body.forbid_first_names
    row.blur_untagged_faces = body.blur_untagged_faces
    row.updated_by = principal.actor
    row.updated_at = utcnow()
    session.flush()
    record_audit(session, principal, "settings.changed", principal.school, body.model_dump())
    return body
