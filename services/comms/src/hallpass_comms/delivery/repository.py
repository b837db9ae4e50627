"""Every SQL statement of the delivery worker, and the delivery table as a job queue.

Claims, leases, retries and dead letters are the kit's job engine (hallpass_kit.jobs); this
module says which rows are envelopes still to send and how their status follows each step.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hallpass_comms.models import Base, Delivery, DeliveryStatus, Message
from hallpass_kit.jobs import Backoff, JobColumns, Queue, SettledHook

# Queued and scheduled envelopes wait for their due_at; one being sent is held by its claim's
# lease, and is taken again once that lapses (a worker that died mid-send).
WAITING = (DeliveryStatus.queued, DeliveryStatus.scheduled, DeliveryStatus.sending)


def _sending(_now: dt.datetime) -> Mapping[str, Any]:
    return {"status": DeliveryStatus.sending}


def _queued(_now: dt.datetime) -> Mapping[str, Any]:
    return {"status": DeliveryStatus.queued}


def _failed(_now: dt.datetime) -> Mapping[str, Any]:
    return {"status": DeliveryStatus.failed}


def delivery_queue(
    *,
    max_attempts: int,
    lease: dt.timedelta,
    max_backoff: dt.timedelta,
    on_settled: SettledHook,
) -> Queue:
    table = Base.metadata.tables[Delivery.__tablename__]
    return Queue(
        service="comms",
        kind="mail",
        table=table,
        waiting=table.c.status.in_(WAITING),
        columns=JobColumns(next_attempt_at="due_at"),
        # Oldest first within a due time: envelopes put back to wait for a provider's slot all
        # come due at the same moment, and the send that was made first goes first (the 202's
        # forecast counts on it).
        order_by=(table.c.due_at, table.c.created_at),
        max_attempts=max_attempts,
        lease=lease,
        backoff=Backoff(first=dt.timedelta(seconds=1), cap=max_backoff),
        claim_values=_sending,
        waiting_values=_queued,
        dead_values=_failed,
        on_settled=on_settled,
    )


def deliveries_by_id(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, Delivery]:
    if not ids:
        return {}
    return {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}


def messages_by_id(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, Message]:
    if not ids:
        return {}
    return {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}


def waiting_recipients(
    session: Session,
    *,
    due_by: dt.datetime,
    exclude_message: uuid.UUID,
    sender: str | None = None,
) -> list[int]:
    """Recipients (To and Cc) of each envelope still waiting to be sent by ``due_by``, in the
    order the worker takes them; from one sending mailbox (lower-cased), or from all."""
    query = (
        select(Delivery.to_addresses, Delivery.cc_addresses)
        .where(
            Delivery.status.in_(WAITING),
            Delivery.due_at <= due_by,
            Delivery.message_id != exclude_message,
        )
        .order_by(Delivery.due_at, Delivery.created_at)
    )
    if sender is not None:
        query = query.join(Message, Message.id == Delivery.message_id).where(
            func.lower(Message.sender_address) == sender
        )
    return [len(to) + len(cc) for to, cc in session.execute(query)]
