from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from hallpass_consent.consents.policy import RecordView
from hallpass_consent.models import (
    ConsentRecord,
    ExpiryNotice,
    Guardian,
    GuardianLink,
    Pupil,
    Purpose,
    Restriction,
)


def roll_status(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID], at: dt.datetime
) -> dict[uuid.UUID, tuple[bool, bool]]:
    """pupil id → (on roll at ``at``, restricted at ``at``), for pupils of this school only.

    Both are read as they stood at ``at``, so a question about the past is answered from the
    past: a restriction lifted since still counts for an instant when it was in force (C12).
    """
    in_force_then = and_(
        Restriction.pupil_id == Pupil.id,
        Restriction.set_at <= at,
        or_(Restriction.lifted_at.is_(None), Restriction.lifted_at > at),
    )
    rows = session.execute(
        select(Pupil.id, Pupil.archived_at, Restriction.id)
        .outerjoin(Restriction, in_force_then)
        .where(Pupil.school_id == school_id, Pupil.id.in_(list(pupil_ids)))
    ).all()
    status: dict[uuid.UUID, tuple[bool, bool]] = {}
    for pupil_id, archived, restriction in rows:
        on_roll = archived is None or archived > at
        restricted = restriction is not None or status.get(pupil_id, (True, False))[1]
        status[pupil_id] = (on_roll, restricted)
    return status


def responsible_guardians(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, frozenset[uuid.UUID]]:
    found: defaultdict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    rows = session.execute(
        select(GuardianLink.pupil_id, GuardianLink.guardian_id).where(
            GuardianLink.school_id == school_id,
            GuardianLink.pupil_id.in_(list(pupil_ids)),
            GuardianLink.parental_responsibility.is_(True),
        )
    ).all()
    for pupil_id, guardian_id in rows:
        found[pupil_id].add(guardian_id)
    return {pupil_id: frozenset(ids) for pupil_id, ids in found.items()}


def record_views(
    session: Session,
    school_id: str,
    purpose_ids: Collection[uuid.UUID],
    pupil_ids: Collection[uuid.UUID],
    at: dt.datetime,
) -> dict[tuple[uuid.UUID, uuid.UUID], list[RecordView]]:
    """(pupil, purpose) → the records made by ``at``."""
    c = ConsentRecord
    rows = session.execute(
        select(
            c.id,
            c.pupil_id,
            c.purpose_id,
            c.given_by,
            c.guardian_id,
            c.decision,
            c.recorded_at,
            c.valid_from,
            c.valid_until,
        ).where(
            c.school_id == school_id,
            c.purpose_id.in_(list(purpose_ids)),
            c.pupil_id.in_(list(pupil_ids)),
            c.recorded_at <= at,
        )
    ).all()
    grouped: defaultdict[tuple[uuid.UUID, uuid.UUID], list[RecordView]] = defaultdict(list)
    for row in rows:
        grouped[(row.pupil_id, row.purpose_id)].append(
            RecordView(
                row.id,
                row.given_by,
                row.guardian_id,
                row.decision,
                row.recorded_at,
                row.valid_from,
                row.valid_until,
            )
        )
    return grouped


def consent_purposes(session: Session, school_id: str) -> Sequence[Purpose]:
    return (
        session.execute(
            select(Purpose).where(Purpose.school_id == school_id).order_by(Purpose.position)
        )
        .scalars()
        .all()
    )


def get_record(session: Session, school_id: str, record_id: uuid.UUID) -> ConsentRecord | None:
    return session.execute(
        select(ConsentRecord).where(
            ConsentRecord.school_id == school_id, ConsentRecord.id == record_id
        )
    ).scalar_one_or_none()


def history(session: Session, school_id: str, pupil_id: uuid.UUID) -> Sequence[ConsentRecord]:
    return (
        session.execute(
            select(ConsentRecord)
            .where(ConsentRecord.school_id == school_id, ConsentRecord.pupil_id == pupil_id)
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id)
        )
        .scalars()
        .all()
    )


def later_records_of_party(session: Session, record: ConsentRecord) -> Sequence[ConsentRecord]:
    c = ConsentRecord
    party = (
        c.guardian_id == record.guardian_id
        if record.guardian_id is not None
        else c.guardian_id.is_(None)
    )
    return (
        session.execute(
            select(c)
            .where(
                c.school_id == record.school_id,
                c.pupil_id == record.pupil_id,
                c.purpose_id == record.purpose_id,
                c.given_by == record.given_by,
                party,
                c.recorded_at > record.recorded_at,
            )
            .order_by(c.recorded_at)
        )
        .scalars()
        .all()
    )


def grants_ending_between(
    session: Session, school_id: str | None, start: dt.datetime, end: dt.datetime
) -> Sequence[tuple[ConsentRecord, Purpose, Guardian | None]]:
    c = ConsentRecord
    query = (
        select(c, Purpose, Guardian)
        .join(Purpose, Purpose.id == c.purpose_id)
        .join(Pupil, Pupil.id == c.pupil_id)
        .outerjoin(Guardian, Guardian.id == c.guardian_id)
        .where(
            c.decision == "granted",
            c.valid_until > start,
            c.valid_until <= end,
            Pupil.archived_at.is_(None),  # leavers are not asked again
        )
        .order_by(c.valid_until)
    )
    if school_id is not None:
        query = query.where(c.school_id == school_id)
    return [(r, p, g) for r, p, g in session.execute(query).all()]


def unnoticed_lapsed_grants(
    session: Session, now: dt.datetime, limit: int
) -> Sequence[ConsentRecord]:
    c = ConsentRecord
    return (
        session.execute(
            select(c)
            .outerjoin(ExpiryNotice, ExpiryNotice.record_id == c.id)
            .where(c.decision == "granted", c.valid_until <= now, ExpiryNotice.record_id.is_(None))
            .order_by(c.valid_until)
            .limit(limit)
        )
        .scalars()
        .all()
    )
