from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
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


def delivery_rows(session: Session, message_id: uuid.UUID) -> Sequence[Row[tuple[Any, ...]]]:
    """A message's envelopes as plain rows, for showing (no ORM objects to build)."""
    d = Delivery
    return session.execute(
        select(
            d.id,
            d.recipient_kind,
            d.to_addresses,
            d.cc_addresses,
            d.status,
            d.due_at,
            d.attempts,
            d.sent_at,
            d.last_error,
        )
        .where(d.message_id == message_id)
        .order_by(d.created_at, d.id)
    ).all()
