"""Every SQL statement of subject access (M8): the pictures a pupil is tagged in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from hallpass_media.models import MediaItem, MediaPupil, PublicationRendition


def media_of_pupil(session: Session, school: str, pupil_id: uuid.UUID) -> Sequence[MediaItem]:
    """Oldest first."""
    return session.scalars(
        select(MediaItem)
        .join(MediaPupil, MediaPupil.media_id == MediaItem.id)
        .where(MediaItem.school_id == school, MediaPupil.pupil_id == pupil_id)
        .order_by(MediaItem.uploaded_at, MediaItem.id)
    ).all()


def stored_keys_of_pupil(
    session: Session, school: str, pupil_id: uuid.UUID
) -> Sequence[Row[uuid.UUID, str]]:
    """Id and storage key of each picture the pupil is tagged in, oldest first."""
    return session.execute(
        select(MediaItem.id, MediaItem.storage_key)
        .join(MediaPupil, MediaPupil.media_id == MediaItem.id)
        .where(MediaItem.school_id == school, MediaPupil.pupil_id == pupil_id)
        .order_by(MediaItem.uploaded_at, MediaItem.id)
    ).all()


def renditions_of(
    session: Session, media_ids: Sequence[uuid.UUID]
) -> Sequence[PublicationRendition]:
    return session.scalars(
        select(PublicationRendition)
        .where(PublicationRendition.media_id.in_(list(media_ids)))
        .order_by(PublicationRendition.publication_id)
    ).all()
