"""What the class consent sheet reads: the class and the pupils on its roll."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_consent.models import Pupil, SchoolClass


def get_class(session: Session, school_id: str, class_id: uuid.UUID) -> SchoolClass | None:
    return session.execute(
        select(SchoolClass).where(SchoolClass.school_id == school_id, SchoolClass.id == class_id)
    ).scalar_one_or_none()


def class_members(session: Session, school_id: str, class_id: uuid.UUID) -> Sequence[Pupil]:
    """The class's pupils on roll, by family name (leavers are not photographed)."""
    return (
        session.execute(
            select(Pupil)
            .where(
                Pupil.school_id == school_id,
                Pupil.class_id == class_id,
                Pupil.archived_at.is_(None),
            )
            .order_by(Pupil.family_name, Pupil.given_name, Pupil.id)
        )
        .scalars()
        .all()
    )
