from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from hallpass_comms.models import ConcernStatus, PastoralConcern


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
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[PastoralConcern]:
    query = select(PastoralConcern).where(PastoralConcern.school_id == school_id)
    if status is not None:
        query = query.where(PastoralConcern.status == status)
    if after is not None:
        created, concern_id = after
        query = query.where(
            or_(
                PastoralConcern.created_at < created,
                and_(PastoralConcern.created_at == created, PastoralConcern.id < concern_id),
            )
        )
    query = query.order_by(PastoralConcern.created_at.desc(), PastoralConcern.id.desc())
    return session.execute(query.limit(limit)).scalars().all()
