from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.models import ConcernStatus, PastoralConcern
from hallpass_kit.pagination import Position, older_than


def get_concern(session: Session, school_id: str, concern_id: uuid.UUID) -> PastoralConcern | None:
    return session.execute(
        select(PastoralConcern).where(
            PastoralConcern.school_id == school_id, PastoralConcern.id == concern_id
        )
    ).scalar_one_or_none()


def page_concerns(
    session: Session,
    school_id: str,
    *,
    status: ConcernStatus | None,
    after: Position | None,
    limit: int,
) -> Sequence[PastoralConcern]:
    query = select(PastoralConcern).where(PastoralConcern.school_id == school_id)
    if status is not None:
        query = query.where(PastoralConcern.status == status)
    if after is not None:
        query = query.where(older_than(PastoralConcern.created_at, PastoralConcern.id, after))
    query = query.order_by(PastoralConcern.created_at.desc(), PastoralConcern.id.desc())
    return session.execute(query.limit(limit)).scalars().all()


def add_concern(session: Session, concern: PastoralConcern) -> None:
    session.add(concern)
    session.flush()
