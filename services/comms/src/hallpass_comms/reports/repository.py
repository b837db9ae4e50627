from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hallpass_comms.models import OffensiveReport


def reports_this_year(session: Session, school_id: str, prefix: str) -> int:
    count = session.execute(
        select(func.count())
        .select_from(OffensiveReport)
        .where(OffensiveReport.school_id == school_id, OffensiveReport.reference.like(f"{prefix}%"))
    ).scalar_one()
    return int(count)
