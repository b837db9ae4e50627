from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hallpass_comms.models import FamilyMessage, Message, MessageForecast, MessageKind
from hallpass_kit.pagination import Position, older_than


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def family_messages(
    session: Session,
    school_id: str,
    pupil_id: uuid.UUID,
    *,
    after: Position | None,
    limit: int,
    search: str | None,
    kinds: Collection[MessageKind],
) -> Sequence[Message]:
    """Messages about this pupil's family, newest first, after the keyset ``after``."""
    query = (
        select(Message)
        .join(FamilyMessage, FamilyMessage.message_id == Message.id)
        .where(
            FamilyMessage.school_id == school_id,
            FamilyMessage.pupil_id == pupil_id,
            Message.school_id == school_id,
            Message.kind.in_(list(kinds)),
        )
    )
    if search:
        pattern = _like(search)
        query = query.where(
            or_(
                Message.subject.ilike(pattern, escape="\\"),
                Message.body_text.ilike(pattern, escape="\\"),
            )
        )
    if after is not None:
        query = query.where(older_than(Message.created_at, Message.id, after))
    query = query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
    return session.execute(query).scalars().all()


def forecasts(session: Session, message_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dt.datetime]:
    """When each message's last envelope was expected to leave, where limits applied."""
    if not message_ids:
        return {}
    rows = session.execute(
        select(MessageForecast.message_id, MessageForecast.expected_last_at).where(
            MessageForecast.message_id.in_(list(message_ids))
        )
    )
    return {row[0]: row[1] for row in rows}
