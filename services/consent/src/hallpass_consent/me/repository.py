"""What a carer's own pages read: their children, and their own answers about each."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_consent.models import ConsentRecord, Decision, GuardianLink, Pupil


def children_of_guardian(
    session: Session, school_id: str, guardian_id: uuid.UUID
) -> Sequence[tuple[GuardianLink, Pupil]]:
    rows = session.execute(
        select(GuardianLink, Pupil)
        .join(Pupil, Pupil.id == GuardianLink.pupil_id)
        .where(GuardianLink.school_id == school_id, GuardianLink.guardian_id == guardian_id)
        .order_by(Pupil.given_name)
    ).all()
    return [(link, pupil) for link, pupil in rows]


def latest_answers(
    session: Session, school_id: str, pupil_id: uuid.UUID, guardian_id: uuid.UUID
) -> dict[uuid.UUID, tuple[Decision, uuid.UUID]]:
    """purpose id → (decision, record id) of this carer's latest record about this child."""
    c = ConsentRecord
    rows = session.execute(
        select(c.purpose_id, c.decision, c.id)
        .where(c.school_id == school_id, c.pupil_id == pupil_id, c.guardian_id == guardian_id)
        .order_by(c.recorded_at.desc(), c.id)
    ).all()
    latest: dict[uuid.UUID, tuple[Decision, uuid.UUID]] = {}
    for purpose_id, decision, record_id in rows:
        latest.setdefault(purpose_id, (decision, record_id))
    return latest
