"""Every SQL statement of consent requests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hallpass_consent.models import (
    ConsentRecord,
    ConsentRequest,
    ConsentRequestCarer,
    ConsentRequestLink,
    ConsentRequestPupil,
    Guardian,
    GuardianLink,
    Pupil,
    Purpose,
    PurposeWording,
    SchoolClass,
)
from hallpass_kit.pagination import Position, older_than


def add(session: Session, *rows: object) -> None:
    session.add_all(rows)
    session.flush()


def get_request(session: Session, school_id: str, request_id: uuid.UUID) -> ConsentRequest | None:
    return session.execute(
        select(ConsentRequest).where(
            ConsentRequest.school_id == school_id, ConsentRequest.id == request_id
        )
    ).scalar_one_or_none()


def lock_request(session: Session, school_id: str, request_id: uuid.UUID) -> ConsentRequest | None:
    """The request, locked for a change of its round or status (two reminders never share one)."""
    return session.execute(
        select(ConsentRequest)
        .where(ConsentRequest.school_id == school_id, ConsentRequest.id == request_id)
        .with_for_update()
    ).scalar_one_or_none()


def page_requests(
    session: Session, school_id: str, *, after: Position | None, limit: int
) -> Sequence[ConsentRequest]:
    query = select(ConsentRequest).where(ConsentRequest.school_id == school_id)
    if after is not None:
        query = query.where(older_than(ConsentRequest.created_at, ConsentRequest.id, after))
    return (
        session.execute(
            query.order_by(ConsentRequest.created_at.desc(), ConsentRequest.id.desc()).limit(limit)
        )
        .scalars()
        .all()
    )


def classes_by_id(
    session: Session, school_id: str, class_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, SchoolClass]:
    if not class_ids:
        return {}
    rows = session.execute(
        select(SchoolClass).where(
            SchoolClass.school_id == school_id, SchoolClass.id.in_(list(class_ids))
        )
    ).scalars()
    return {c.id: c for c in rows}


def pupils_in_scope(
    session: Session,
    school_id: str,
    *,
    class_ids: Collection[uuid.UUID],
    year_groups: Collection[int],
    whole_school: bool,
) -> Sequence[Pupil]:
    """Pupils on roll in any of the classes or year groups (or all of them)."""
    query = select(Pupil).where(Pupil.school_id == school_id, Pupil.archived_at.is_(None))
    if not whole_school:
        query = query.where(
            or_(Pupil.class_id.in_(list(class_ids)), Pupil.year_group.in_(list(year_groups)))
        )
    return session.execute(query.order_by(Pupil.id)).scalars().all()


def responsible_carers_with_address(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID]
) -> Sequence[tuple[uuid.UUID, Guardian]]:
    """(pupil id, carer) for every carer with parental responsibility and an email address."""
    if not pupil_ids:
        return []
    rows = session.execute(
        select(GuardianLink.pupil_id, Guardian)
        .join(Guardian, Guardian.id == GuardianLink.guardian_id)
        .where(
            GuardianLink.school_id == school_id,
            GuardianLink.pupil_id.in_(list(pupil_ids)),
            GuardianLink.parental_responsibility.is_(True),
            Guardian.email.is_not(None),
            Guardian.email != "",
        )
    ).all()
    return [(pupil_id, guardian) for pupil_id, guardian in rows]


def request_pupils(
    session: Session, request_ids: Collection[uuid.UUID]
) -> Sequence[tuple[uuid.UUID, Pupil, uuid.UUID | None]]:
    """(request id, pupil, class id when sent) of the requests."""
    if not request_ids:
        return []
    rows = session.execute(
        select(ConsentRequestPupil.request_id, Pupil, ConsentRequestPupil.class_id)
        .join(Pupil, Pupil.id == ConsentRequestPupil.pupil_id)
        .where(ConsentRequestPupil.request_id.in_(list(request_ids)))
        .order_by(Pupil.family_name, Pupil.given_name, Pupil.id)
    ).all()
    return [(r, p, c) for r, p, c in rows]


def answered_pairs(
    session: Session,
    school_id: str,
    request_id: uuid.UUID,
    purpose_ids: Collection[uuid.UUID],
    since: dt.datetime,
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(pupil id, purpose id) with a record of any kind made at or after ``since``, for the
    request's pupils."""
    if not purpose_ids:
        return set()
    rows = session.execute(
        select(ConsentRecord.pupil_id, ConsentRecord.purpose_id)
        .join(
            ConsentRequestPupil,
            (ConsentRequestPupil.pupil_id == ConsentRecord.pupil_id)
            & (ConsentRequestPupil.request_id == request_id),
        )
        .where(
            ConsentRecord.school_id == school_id,
            ConsentRecord.purpose_id.in_(list(purpose_ids)),
            ConsentRecord.recorded_at >= since,
        )
        .distinct()
    ).all()
    return {(pupil_id, purpose_id) for pupil_id, purpose_id in rows}


def purposes_by_code(
    session: Session, school_id: str, codes: Collection[str]
) -> dict[str, tuple[Purpose, PurposeWording]]:
    """The purposes named, each with its current wording."""
    if not codes:
        return {}
    rows = session.execute(
        select(Purpose, PurposeWording)
        .join(
            PurposeWording,
            (PurposeWording.purpose_id == Purpose.id)
            & (PurposeWording.version == Purpose.current_version),
        )
        .where(Purpose.school_id == school_id, Purpose.code.in_(list(codes)))
    ).all()
    return {p.code: (p, w) for p, w in rows}


def class_names(session: Session, school_id: str) -> dict[uuid.UUID, str]:
    rows = session.execute(
        select(SchoolClass.id, SchoolClass.name).where(SchoolClass.school_id == school_id)
    ).all()
    return {row[0]: row[1] for row in rows}


def carers_of(
    session: Session, request_ids: Collection[uuid.UUID]
) -> Sequence[ConsentRequestCarer]:
    if not request_ids:
        return []
    return (
        session.execute(
            select(ConsentRequestCarer)
            .where(ConsentRequestCarer.request_id.in_(list(request_ids)))
            .order_by(ConsentRequestCarer.email, ConsentRequestCarer.id)
        )
        .scalars()
        .all()
    )


def children_of_carers(
    session: Session, request_id: uuid.UUID, guardian_ids: Collection[uuid.UUID]
) -> Sequence[tuple[uuid.UUID, Pupil]]:
    """(carer id, child) for the request's pupils each carer has parental responsibility for."""
    if not guardian_ids:
        return []
    rows = session.execute(
        select(GuardianLink.guardian_id, Pupil)
        .join(Pupil, Pupil.id == GuardianLink.pupil_id)
        .join(
            ConsentRequestPupil,
            (ConsentRequestPupil.pupil_id == Pupil.id)
            & (ConsentRequestPupil.request_id == request_id),
        )
        .where(
            GuardianLink.guardian_id.in_(list(guardian_ids)),
            GuardianLink.parental_responsibility.is_(True),
            Pupil.archived_at.is_(None),
        )
        .order_by(Pupil.given_name, Pupil.id)
    ).all()
    return [(g, p) for g, p in rows]


def link_by_hash(
    session: Session, token_hash: str
) -> tuple[ConsentRequestLink, ConsentRequestCarer, ConsentRequest] | None:
    row = session.execute(
        select(ConsentRequestLink, ConsentRequestCarer, ConsentRequest)
        .join(ConsentRequestCarer, ConsentRequestCarer.id == ConsentRequestLink.carer_id)
        .join(ConsentRequest, ConsentRequest.id == ConsentRequestCarer.request_id)
        .where(ConsentRequestLink.token_hash == token_hash)
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


def latest_decisions(
    session: Session,
    school_id: str,
    guardian_id: uuid.UUID,
    pupil_ids: Collection[uuid.UUID],
    purpose_ids: Collection[uuid.UUID],
) -> dict[tuple[uuid.UUID, uuid.UUID], ConsentRecord]:
    """This carer's latest record per (pupil, purpose)."""
    if not pupil_ids or not purpose_ids:
        return {}
    rows = session.execute(
        select(ConsentRecord)
        .where(
            ConsentRecord.school_id == school_id,
            ConsentRecord.guardian_id == guardian_id,
            ConsentRecord.pupil_id.in_(list(pupil_ids)),
            ConsentRecord.purpose_id.in_(list(purpose_ids)),
        )
        .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
    ).scalars()
    latest: dict[tuple[uuid.UUID, uuid.UUID], ConsentRecord] = {}
    for record in rows:
        latest[(record.pupil_id, record.purpose_id)] = record
    return latest


def mark_used(session: Session, link_id: uuid.UUID, carer_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(ConsentRequestLink).where(ConsentRequestLink.id == link_id).values(last_used_at=now)
    )
    session.execute(
        update(ConsentRequestCarer)
        .where(ConsentRequestCarer.id == carer_id)
        .values(answered_at=now)
    )


def mark_opened(session: Session, link_id: uuid.UUID, now: dt.datetime) -> None:
    session.execute(
        update(ConsentRequestLink).where(ConsentRequestLink.id == link_id).values(last_used_at=now)
    )


def guardian(session: Session, school_id: str, guardian_id: uuid.UUID) -> Guardian | None:
    return session.execute(
        select(Guardian).where(Guardian.school_id == school_id, Guardian.id == guardian_id)
    ).scalar_one_or_none()
