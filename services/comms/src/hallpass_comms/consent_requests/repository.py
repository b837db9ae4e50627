"""Every SQL statement of consent request mail."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.models import ConsentRequestMail


def already_mailed(
    session: Session, school_id: str, request_id: uuid.UUID, round_: int
) -> set[uuid.UUID]:
    rows = session.execute(
        select(ConsentRequestMail.guardian_id).where(
            ConsentRequestMail.school_id == school_id,
            ConsentRequestMail.request_id == request_id,
            ConsentRequestMail.round == round_,
        )
    ).scalars()
    return set(rows)


def add_mail(session: Session, mail: ConsentRequestMail) -> None:
    session.add(mail)
    session.flush()
