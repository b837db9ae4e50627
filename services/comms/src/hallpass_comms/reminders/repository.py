"""Every statement about renewal reminders already written."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.models import RenewalReminder


def already_reminded(session: Session, school_id: str) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(guardian id, consent record id) pairs this school has reminded about."""
    rows = session.execute(
        select(RenewalReminder.guardian_id, RenewalReminder.record_id).where(
            RenewalReminder.school_id == school_id
        )
    ).all()
    return {(r.guardian_id, r.record_id) for r in rows}


def add_reminders(session: Session, reminders: Iterable[RenewalReminder]) -> None:
    session.add_all(reminders)
    session.flush()
