"""Every SQL statement about uploaded media and the pupils tagged in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from hallpass_kit.pagination import Position, older_than
from hallpass_media.models import MediaItem, MediaPupil, ScanStatus


def add(session: Session, item: MediaItem, pupils: Iterable[MediaPupil]) -> None:
    """The item first: its tags refer to it."""
    session.add(item)
    session.flush()
    session.add_all(pupils)
    session.flush()


def find(session: Session, school: str, media_id: uuid.UUID) -> MediaItem | None:
    """The school's item; another school's is as good as missing."""
    item = session.get(MediaItem, media_id)
    if item is None or item.school_id != school:
        return None
    return item


def find_many(session: Session, school: str, media_ids: Sequence[uuid.UUID]) -> list[MediaItem]:
    """Those of ``media_ids`` that are the school's, in no particular order."""
    return list(
        session.scalars(
            select(MediaItem).where(
                MediaItem.school_id == school, MediaItem.id.in_(list(media_ids))
            )
        )
    )


def tags(session: Session, media_ids: Sequence[uuid.UUID]) -> list[MediaPupil]:
    """The pupils tagged in these items, by pupil id."""
    return list(
        session.scalars(
            select(MediaPupil)
            .where(MediaPupil.media_id.in_(list(media_ids)))
            .order_by(MediaPupil.pupil_id)
        )
    )


def hashed(session: Session, school: str) -> Sequence[Row[uuid.UUID, int | None]]:
    """Id and perceptual hash of every scanned picture of the school."""
    return session.execute(
        select(MediaItem.id, MediaItem.phash).where(
            MediaItem.school_id == school, MediaItem.phash.is_not(None)
        )
    ).all()


def page(
    session: Session,
    school: str,
    *,
    before: Position | None,
    limit: int,
    scan_status: ScanStatus | None,
) -> list[MediaItem]:
    """Up to ``limit`` items, newest first, older than the ``before`` position."""
    query = select(MediaItem).where(MediaItem.school_id == school)
    if scan_status is not None:
        query = query.where(MediaItem.scan_status == scan_status)
    if before is not None:
        query = query.where(older_than(MediaItem.uploaded_at, MediaItem.id, before))
    return list(
        session.scalars(
            query.order_by(MediaItem.uploaded_at.desc(), MediaItem.id.desc()).limit(limit)
        )
    )
