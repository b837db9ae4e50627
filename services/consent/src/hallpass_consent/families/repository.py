from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from hallpass_consent.models import Guardian, GuardianLink, Pupil, SchoolClass


def existing_ids(
    session: Session,
    school_id: str,
    model: type[Pupil | Guardian | SchoolClass],
    ids: Collection[uuid.UUID],
) -> set[uuid.UUID]:
    if not ids:
        return set()
    rows = session.execute(
        select(model.id).where(model.school_id == school_id, model.id.in_(list(ids)))
    ).scalars()
    return set(rows)


def matching_pupils(
    session: Session,
    school_id: str,
    *,
    pupil_ids: Collection[uuid.UUID],
    guardian_ids: Collection[uuid.UUID],
    class_ids: Collection[uuid.UUID],
    year_groups: Collection[int],
) -> Sequence[Pupil]:
    """Pupils named outright or through their carers (leavers included), and the pupils on roll
    in the named classes and year groups."""
    named: list[ColumnElement[bool]] = []
    if pupil_ids:
        named.append(Pupil.id.in_(list(pupil_ids)))
    if guardian_ids:
        named.append(
            Pupil.id.in_(
                select(GuardianLink.pupil_id).where(
                    GuardianLink.school_id == school_id,
                    GuardianLink.guardian_id.in_(list(guardian_ids)),
                )
            )
        )
    grouped: list[ColumnElement[bool]] = []
    if class_ids:
        grouped.append(Pupil.class_id.in_(list(class_ids)))
    if year_groups:
        grouped.append(Pupil.year_group.in_(list(year_groups)))
    conditions = [*named]
    if grouped:
        conditions.append(Pupil.archived_at.is_(None) & or_(*grouped))
    if not conditions:
        return []
    query = (
        select(Pupil)
        .where(Pupil.school_id == school_id, or_(*conditions))
        .order_by(Pupil.family_name, Pupil.given_name, Pupil.id)
    )
    return session.execute(query).scalars().all()


def carers_of(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID]
) -> Sequence[tuple[GuardianLink, Guardian]]:
    if not pupil_ids:
        return []
    rows = session.execute(
        select(GuardianLink, Guardian)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(
            GuardianLink.school_id == school_id,
            Guardian.school_id == school_id,
            GuardianLink.pupil_id.in_(list(pupil_ids)),
        )
        .order_by(Guardian.family_name, Guardian.given_name, Guardian.id)
    ).all()
    return [(link, guardian) for link, guardian in rows]
