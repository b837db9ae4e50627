"""Every pupil's names for the roster, leavers included."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_consent.models import Pupil
from hallpass_consent.roster.schemas import RosterPupil


def roster_pupils(session: Session, school_id: str) -> list[RosterPupil]:
    rows = session.execute(
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
