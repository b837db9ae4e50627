from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hallpass_consent.models import Pupil, Purpose, PurposeWording, School


def get_school(session: Session, school_id: str) -> School | None:
    return session.get(School, school_id)


def purposes(session: Session, school_id: str) -> Sequence[tuple[Purpose, PurposeWording]]:
    rows = session.execute(
        select(Purpose, PurposeWording)
        .join(
            PurposeWording,
            (PurposeWording.purpose_id == Purpose.id)
            & (PurposeWording.version == Purpose.current_version),
        )
        .where(Purpose.school_id == school_id)
        .order_by(Purpose.position)
    ).all()
    return [(p, w) for p, w in rows]


def purpose_by_code(session: Session, school_id: str, code: str) -> Purpose | None:
    return session.execute(
        select(Purpose).where(Purpose.school_id == school_id, Purpose.code == code)
    ).scalar_one_or_none()


def wordings(session: Session, purpose_id: object) -> Sequence[PurposeWording]:
    return (
        session.execute(
            select(PurposeWording)
            .where(PurposeWording.purpose_id == purpose_id)
            .order_by(PurposeWording.version)
        )
        .scalars()
        .all()
    )


def wording(session: Session, purpose_id: object, version: int) -> PurposeWording | None:
    return session.execute(
        select(PurposeWording).where(
            PurposeWording.purpose_id == purpose_id, PurposeWording.version == version
        )
    ).scalar_one_or_none()


def bump_roster_version(session: Session, school_id: str) -> None:
    session.execute(
        update(School)
        .where(School.id == school_id)
        .values(roster_version=School.roster_version + 1)
    )


def on_roll_pupil_ids(session: Session, school_id: str) -> list[uuid.UUID]:
    return list(
        session.execute(
            select(Pupil.id).where(Pupil.school_id == school_id, Pupil.archived_at.is_(None))
        ).scalars()
    )


def add(session: Session, row: School | Purpose | PurposeWording) -> None:
    """Insert a new row, flushed so it has its id and later statements see it."""
    session.add(row)
    session.flush()


def save(session: Session) -> None:
    """Write the changes made to rows already loaded (an UPDATE for each changed row)."""
    session.flush()
