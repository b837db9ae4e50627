"""Every statement about background imports."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hallpass_consent.models import ImportStatus, PupilImport


def add(session: Session, pupil_import: PupilImport) -> None:
    session.add(pupil_import)
    session.flush()


def get(session: Session, school_id: str, import_id: uuid.UUID) -> PupilImport | None:
    return session.scalars(
        select(PupilImport).where(PupilImport.id == import_id, PupilImport.school_id == school_id)
    ).one_or_none()


def by_id(session: Session, import_id: uuid.UUID) -> PupilImport | None:
    return session.get(PupilImport, import_id)


def change_if(
    session: Session, import_id: uuid.UUID, status: ImportStatus, values: Mapping[str, Any]
) -> bool:
    """Write ``values`` if the import is still in ``status``; False when it is not any more."""
    result = session.execute(
        update(PupilImport)
        .where(PupilImport.id == import_id, PupilImport.status == status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
