"""Every statement about reports of offensive mail."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hallpass_comms.models import OffensiveReport


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
