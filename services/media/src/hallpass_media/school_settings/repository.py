"""Every SQL statement about a school's media choices."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hallpass_media.models import SchoolMediaSettings


def find(session: Session, school: str) -> SchoolMediaSettings | None:
    return session.get(SchoolMediaSettings, school)


def add(session: Session, row: SchoolMediaSettings) -> None:
    session.add(row)


def save(session: Session) -> None:
    session.flush()
