"""Every statement about reports of offensive mail."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hallpass_comms.models import OffensiveReport
from hallpass_kit.pagination import Position, older_than


def reports_this_year(session: Session, school_id: str, prefix: str) -> int:
    count = session.execute(
        select(func.count())
        .select_from(OffensiveReport)
        .where(OffensiveReport.school_id == school_id, OffensiveReport.reference.like(f"{prefix}%"))
    ).scalar_one()
    return int(count)


def add_if_reference_free(session: Session, report: OffensiveReport) -> bool:
    """Store the report; False (and nothing stored) when another took its reference first."""
    try:
        # A savepoint: losing the race for a number must not undo the rest of the request.
        with session.begin_nested():
            session.add(report)
            session.flush()
    except IntegrityError:
        return False
    return True


def page_reports(
    session: Session, school_id: str, *, after: Position | None, limit: int
) -> Sequence[OffensiveReport]:
    query = select(OffensiveReport).where(OffensiveReport.school_id == school_id)
    if after is not None:
        query = query.where(older_than(OffensiveReport.created_at, OffensiveReport.id, after))
    query = query.order_by(OffensiveReport.created_at.desc(), OffensiveReport.id.desc())
    return session.execute(query.limit(limit)).scalars().all()


def get_report(
    session: Session, school_id: str, report_id: uuid.UUID, *, for_update: bool = False
) -> OffensiveReport | None:
    query = select(OffensiveReport).where(
        OffensiveReport.school_id == school_id, OffensiveReport.id == report_id
    )
    # Two people marking the same report at once: the second waits, then sees it handled.
    return session.scalars(query.with_for_update() if for_update else query).one_or_none()
