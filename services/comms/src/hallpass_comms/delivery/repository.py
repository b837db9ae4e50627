"""Every SQL statement of the delivery worker."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from hallpass_comms.models import Delivery, DeliveryStatus, Message


def claim_due(
    session: Session,
    *,
    claimant: str,
    now: dt.datetime,
    lease_until: dt.datetime,
    limit: int,
    skip_locked: bool,
) -> Sequence[Delivery]:
    """Take up to ``limit`` due envelopes for ``claimant``, counting one attempt on each.

    Due: queued or scheduled rows whose due_at has come, and rows whose claimant's lease ran out
    (a worker that died between claim and outcome). On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets
    several workers claim at once without ever taking the same row; on SQLite the session began
    with BEGIN IMMEDIATE, so claims are serialised by the write lock.
    """
    query = (
        select(Delivery)
        .where(
            or_(
                and_(
                    Delivery.status.in_((DeliveryStatus.queued, DeliveryStatus.scheduled)),
                    Delivery.due_at <= now,
                ),
                and_(Delivery.status == DeliveryStatus.sending, Delivery.claimed_until < now),
            )
        )
        .order_by(Delivery.due_at, Delivery.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    rows = session.scalars(query).all()
    for row in rows:
        row.status = DeliveryStatus.sending
        row.claimed_by = claimant
        row.claimed_until = lease_until
        row.attempts += 1
    session.flush()
    return rows


def messages_by_id(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    if not ids:
        return {}
    return {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}


def held_by(session: Session, delivery_id: uuid.UUID, claimant: str) -> Delivery | None:
    """The row, locked, if ``claimant`` still holds it; None when its lease was taken over."""
    query = select(Delivery).where(
        Delivery.id == delivery_id,
        Delivery.status == DeliveryStatus.sending,
        Delivery.claimed_by == claimant,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).first()


def extend_lease(
    session: Session, ids: Sequence[uuid.UUID], claimant: str, lease_until: dt.datetime
) -> None:
    session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.sending,
            Delivery.claimed_by == claimant,
        )
        .values(claimed_until=lease_until)
    )


def release(
    session: Session, ids: Sequence[uuid.UUID], claimant: str, due_at: dt.datetime | None
) -> None:
    """Give back claimed rows that were not tried: the attempt counted at claim is undone."""
    values: dict[str, object] = {
        "status": DeliveryStatus.queued,
        "claimed_by": None,
        "claimed_until": None,
        "attempts": Delivery.attempts - 1,
    }
    if due_at is not None:
        values["due_at"] = due_at
    session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.sending,
            Delivery.claimed_by == claimant,
        )
        .values(**values)
    )
