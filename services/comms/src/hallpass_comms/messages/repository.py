from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.models import Delivery, Message


def get_message(session: Session, school_id: str, message_id: uuid.UUID) -> Message | None:
    return session.execute(
        select(Message).where(Message.school_id == school_id, Message.id == message_id)
    ).scalar_one_or_none()


def deliveries_of(session: Session, message_ids: Sequence[uuid.UUID]) -> Sequence[Delivery]:
    if not message_ids:
        return []
    return (
        session.execute(
            select(Delivery)
            .where(Delivery.message_id.in_(list(message_ids)))
            .order_by(Delivery.created_at, Delivery.id)
        )
        .scalars()
        .all()
    )
