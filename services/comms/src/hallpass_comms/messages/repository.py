"""Every statement about messages, their envelopes and the family index."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.orm import Session

from hallpass_comms.models import Approval, Delivery, FamilyMessage, Message


def get_message(session: Session, school_id: str, message_id: uuid.UUID) -> Message | None:
    return session.execute(
        select(Message).where(Message.school_id == school_id, Message.id == message_id)
    ).scalar_one_or_none()


# No screen lists more than this many messages waiting for approval at once.
PENDING_LIMIT = 200


def pending_messages(session: Session, school_id: str) -> Sequence[Message]:
    """The school's messages held for the head or deputy (E4), oldest first."""
    return (
        session.execute(
            select(Message)
            .where(Message.school_id == school_id, Message.approval == Approval.pending)
            .order_by(Message.created_at, Message.id)
            .limit(PENDING_LIMIT)
        )
        .scalars()
        .all()
    )


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


def add_message(session: Session, message: Message) -> None:
    session.add(message)
    session.flush()


def insert_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    # One bulk insert: a year-group send is a thousand envelopes, and the sender waits for the 202.
    session.execute(insert(Delivery), list(rows))


def index_for_families(
    session: Session, school_id: str, message_id: uuid.UUID, pupil_ids: Sequence[uuid.UUID]
) -> None:
    """File the message in the history of each pupil's family (E3)."""
    if pupil_ids:
        session.execute(
            insert(FamilyMessage),
            [{"message_id": message_id, "pupil_id": p, "school_id": school_id} for p in pupil_ids],
        )
    session.flush()
