from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from hallpass_consent.models import Guardian, GuardianLink, Pupil, Restriction, SchoolClass


def get_pupil(session: Session, school_id: str, pupil_id: uuid.UUID) -> Pupil | None:
    return session.execute(
        select(Pupil).where(Pupil.school_id == school_id, Pupil.id == pupil_id)
    ).scalar_one_or_none()


def pupils_by_mis_id(
    session: Session, school_id: str, mis_ids: Collection[str]
) -> dict[str, Pupil]:
    if not mis_ids:
        return {}
    rows = session.execute(
        select(Pupil).where(Pupil.school_id == school_id, Pupil.mis_id.in_(list(mis_ids)))
    ).scalars()
    return {p.mis_id: p for p in rows}


def page_pupils(
    session: Session,
    school_id: str,
    *,
    after: tuple[str, str, uuid.UUID] | None,
    limit: int,
    class_id: uuid.UUID | None,
    include_archived: bool,
) -> Sequence[Pupil]:
    query = select(Pupil).where(Pupil.school_id == school_id)
    if class_id is not None:
        query = query.where(Pupil.class_id == class_id)
    if not include_archived:
        query = query.where(Pupil.archived_at.is_(None))
    if after is not None:
        query = query.where(tuple_(Pupil.family_name, Pupil.given_name, Pupil.id) > after)
    return (
        session.execute(query.order_by(Pupil.family_name, Pupil.given_name, Pupil.id).limit(limit))
        .scalars()
        .all()
    )


def restricted_pupil_ids(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID] | None = None
) -> set[uuid.UUID]:
    query = select(Restriction.pupil_id).where(
        Restriction.school_id == school_id, Restriction.lifted_at.is_(None)
    )
    if pupil_ids is not None:
        query = query.where(Restriction.pupil_id.in_(list(pupil_ids)))
    return set(session.execute(query).scalars())


def active_restriction(session: Session, school_id: str, pupil_id: uuid.UUID) -> Restriction | None:
    return session.execute(
        select(Restriction).where(
            Restriction.school_id == school_id,
            Restriction.pupil_id == pupil_id,
            Restriction.lifted_at.is_(None),
        )
    ).scalar_one_or_none()


def get_class(session: Session, school_id: str, class_id: uuid.UUID) -> SchoolClass | None:
    return session.execute(
        select(SchoolClass).where(SchoolClass.school_id == school_id, SchoolClass.id == class_id)
    ).scalar_one_or_none()


def classes(session: Session, school_id: str) -> Sequence[SchoolClass]:
    return (
        session.execute(
            select(SchoolClass)
            .where(SchoolClass.school_id == school_id)
            .order_by(SchoolClass.year_group, SchoolClass.name)
        )
        .scalars()
        .all()
    )


def class_by_name(session: Session, school_id: str, name: str) -> SchoolClass | None:
    return session.execute(
        select(SchoolClass).where(SchoolClass.school_id == school_id, SchoolClass.name == name)
    ).scalar_one_or_none()


def get_guardian(session: Session, school_id: str, guardian_id: uuid.UUID) -> Guardian | None:
    return session.execute(
        select(Guardian).where(Guardian.school_id == school_id, Guardian.id == guardian_id)
    ).scalar_one_or_none()


def guardians_by_email(
    session: Session, school_id: str, emails: Collection[str]
) -> dict[str, Guardian]:
    if not emails:
        return {}
    rows = session.execute(
        select(Guardian).where(
            Guardian.school_id == school_id,
            func.lower(Guardian.email).in_([e.lower() for e in emails]),
        )
    ).scalars()
    return {g.email.lower(): g for g in rows if g.email}


def links_of_guardian(session: Session, guardian_id: uuid.UUID) -> Sequence[GuardianLink]:
    return (
        session.execute(
            select(GuardianLink)
            .where(GuardianLink.guardian_id == guardian_id)
            .order_by(GuardianLink.created_at)
        )
        .scalars()
        .all()
    )


def link(session: Session, pupil_id: uuid.UUID, guardian_id: uuid.UUID) -> GuardianLink | None:
    return session.get(GuardianLink, (pupil_id, guardian_id))


def guardians_of_pupils(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID]
) -> Sequence[tuple[GuardianLink, Guardian]]:
    rows = session.execute(
        select(GuardianLink, Guardian)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(GuardianLink.school_id == school_id, GuardianLink.pupil_id.in_(list(pupil_ids)))
        .order_by(GuardianLink.created_at)
    ).all()
    return [(link_, guardian) for link_, guardian in rows]


def add(
    session: Session,
    row: SchoolClass | Pupil | Guardian | GuardianLink | Restriction,
    *,
    flush: bool = True,
) -> None:
    """Insert a new row; flushed by default, so it has its id and later statements see it."""
    session.add(row)
    if flush:
        session.flush()


def save(session: Session) -> None:
    """Write the changes made to rows already loaded (an UPDATE for each changed row)."""
    session.flush()
