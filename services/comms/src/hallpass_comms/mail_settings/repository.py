"""Every statement about a school's mail settings."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.models import MailSettings


def get(session: Session, school_id: str) -> MailSettings | None:
    return session.get(MailSettings, school_id)


def schools_with_settings(session: Session) -> Sequence[str]:
    return (
        session.execute(select(MailSettings.school_id).order_by(MailSettings.school_id))
        .scalars()
        .all()
    )


def add(session: Session, settings: MailSettings) -> None:
    session.add(settings)
