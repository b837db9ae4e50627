"""Every pupil's names for the roster, leavers included, and the school's roster version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from hallpass_consent.models import Pupil, School
from hallpass_consent.roster.schemas import RosterPupil


def roster_version(connection: Connection, school_id: str) -> int:
    """The school's roster version (0 for a school not set up yet)."""
    version = connection.execute(
        select(School.roster_version).where(School.id == school_id)
    ).scalar_one_or_none()
    return version or 0


def roster_pupils(connection: Connection, school_id: str) -> list[RosterPupil]:
    rows = connection.execute(
        select(
            Pupil.id, Pupil.given_name, Pupil.family_name, Pupil.preferred_name, Pupil.archived_at
        )
        .where(Pupil.school_id == school_id)
        .order_by(Pupil.id)
    ).all()
    return [
        RosterPupil(
            id=r.id,
            given_name=r.given_name,
            family_name=r.family_name,
            preferred_name=r.preferred_name,
            on_roll=r.archived_at is None,
        )
        for r in rows
    ]
