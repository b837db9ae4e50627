"""The rules of a consent request, without I/O: when it is over, who has answered, who is due."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Collection, Iterable, Mapping

from hallpass_consent.models import ConsentRequestStatus


def is_closed(
    status: ConsentRequestStatus, closes_at: dt.datetime | None, now: dt.datetime
) -> bool:
    """Closed by the office, or its closing date has passed (the same thing to a carer)."""
    return status is ConsentRequestStatus.closed or (closes_at is not None and closes_at <= now)


def answered_pupils(
    pupil_ids: Iterable[uuid.UUID],
    purpose_ids: Collection[uuid.UUID],
    recorded: Collection[tuple[uuid.UUID, uuid.UUID]],
) -> set[uuid.UUID]:
    """Pupils with a record since the request for every purpose it asks about. Any decision by
    any method counts: a paper form brought to the office answers the request as well."""
    return {
        pupil_id
        for pupil_id in pupil_ids
        if all((pupil_id, purpose_id) in recorded for purpose_id in purpose_ids)
    }


def carers_due(
    round_: int,
    children: Mapping[uuid.UUID, Collection[uuid.UUID]],
    answered: Collection[uuid.UUID],
) -> set[uuid.UUID]:
    """Carers (id → their children in the request) to mail in this round: everyone the first
    time; afterwards only carers with a child not answered yet (a reminder to the others
    would nag about something done)."""
    return {
        guardian_id
        for guardian_id, pupil_ids in children.items()
        if pupil_ids and (round_ == 1 or any(p not in answered for p in pupil_ids))
    }


def token_hash(token: str) -> str:
    """What is kept of a personal link: its SHA-256. A stolen database holds no working link."""
    return hashlib.sha256(token.encode()).hexdigest()


def evidence_ref(request_id: uuid.UUID, email: str, limit: int = 200) -> str:
    """Where the answer came from (C10), within the record's column."""
    ref = f"consent request {request_id}, personal link emailed to {email}"
    return ref if len(ref) <= limit else ref[: limit - 1] + "…"
