"""Every SQL statement about publications, their clean copies and the pupils they show."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from hallpass_kit.pagination import Position, older_than
from hallpass_media.models import (
    Channel,
    MediaItem,
    MediaPupil,
    Owner,
    Publication,
    PublicationPupil,
    PublicationRendition,
    PublicationStatus,
    ScanStatus,
    SchoolMediaSettings,
)


@dataclass(frozen=True, slots=True)
class StoredPicture:
    """What a check reads of a stored picture: the columns it needs as plain values (a check
    runs on every publish, and ORM objects cost more to load and let go than the query)."""

    id: uuid.UUID
    original_filename: str
    storage_key: str
    owner: Owner
    permission: str | None
    scan_status: ScanStatus
    scan_result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TagRow:
    media_id: uuid.UUID
    pupil_id: uuid.UUID
    face_x: int | None
    face_y: int | None
    face_width: int | None
    face_height: int | None


# A check's three reads, built once: every publish check runs them, and building a statement and
# running it through the ORM cost more than the query. They run on a session or on a bare
# connection alike (``Reads``).
Reads = Session | Connection

_CHOICES = select(
    SchoolMediaSettings.forbid_first_names, SchoolMediaSettings.blur_untagged_faces
).where(SchoolMediaSettings.school_id == bindparam("school"))
_PICTURES = select(
    MediaItem.id,
    MediaItem.original_filename,
    MediaItem.storage_key,
    MediaItem.owner,
    MediaItem.permission,
    MediaItem.scan_status,
    MediaItem.scan_result,
).where(
    MediaItem.school_id == bindparam("school"),
    MediaItem.id.in_(bindparam("media_ids", expanding=True)),
)
_TAGS = (
    select(
        MediaPupil.media_id,
        MediaPupil.pupil_id,
        MediaPupil.face_x,
        MediaPupil.face_y,
        MediaPupil.face_width,
        MediaPupil.face_height,
    )
    .where(MediaPupil.media_id.in_(bindparam("media_ids", expanding=True)))
    .order_by(MediaPupil.pupil_id)
)


def school_choices(reads: Reads, school: str) -> tuple[bool, bool] | None:
    """The school's (forbid first names, blur untagged faces), or None if it never chose."""
    row = reads.execute(_CHOICES, {"school": school}).first()
    return None if row is None else (bool(row[0]), bool(row[1]))


def stored_pictures(
    reads: Reads, school: str, media_ids: Sequence[uuid.UUID]
) -> list[StoredPicture]:
    """Those of ``media_ids`` that are the school's, in no particular order."""
    if not media_ids:
        return []
    rows = reads.execute(_PICTURES, {"school": school, "media_ids": list(media_ids)})
    return [StoredPicture(*row) for row in rows]


def tags(reads: Reads, media_ids: Sequence[uuid.UUID]) -> list[TagRow]:
    """The pupils tagged in these pictures, by pupil id."""
    if not media_ids:
        return []
    rows = reads.execute(_TAGS, {"media_ids": list(media_ids)})
    return [TagRow(*row) for row in rows]


def add(
    session: Session,
    publication: Publication,
    renditions: Iterable[PublicationRendition],
    pupils: Iterable[PublicationPupil],
) -> None:
    """The publication first: its copies and pupils refer to it."""
    session.add(publication)
    session.flush()
    session.add_all(renditions)
    session.add_all(pupils)
    session.flush()


def find(session: Session, school: str, publication_id: uuid.UUID) -> Publication | None:
    """The school's publication; another school's is as good as missing."""
    publication = session.get(Publication, publication_id)
    if publication is None or publication.school_id != school:
        return None
    return publication


def renditions(session: Session, publication_id: uuid.UUID) -> Sequence[PublicationRendition]:
    return session.scalars(
        select(PublicationRendition)
        .where(PublicationRendition.publication_id == publication_id)
        .order_by(PublicationRendition.position)
    ).all()


def rendition(
    session: Session, publication_id: uuid.UUID, media_id: uuid.UUID
) -> PublicationRendition | None:
    return session.get(PublicationRendition, (publication_id, media_id))


def pupil_ids(session: Session, publication_id: uuid.UUID) -> Sequence[uuid.UUID]:
    return session.scalars(
        select(PublicationPupil.pupil_id)
        .where(PublicationPupil.publication_id == publication_id)
        .order_by(PublicationPupil.pupil_id)
    ).all()


def page(
    session: Session,
    school: str,
    *,
    status: PublicationStatus | None,
    before: Position | None,
    limit: int,
) -> list[Publication]:
    """Up to ``limit`` publications, newest first, older than the ``before`` position."""
    query = select(Publication).where(Publication.school_id == school)
    if status is not None:
        query = query.where(Publication.status == status)
    if before is not None:
        query = query.where(older_than(Publication.published_at, Publication.id, before))
    return list(
        session.scalars(
            query.order_by(Publication.published_at.desc(), Publication.id.desc()).limit(limit)
        )
    )


def live_showing(
    session: Session, school: str, pupil_id: uuid.UUID, channels: Sequence[Channel]
) -> Sequence[Publication]:
    """Live publications on these channels that show the pupil, oldest first."""
    return session.scalars(
        select(Publication)
        .join(PublicationPupil, PublicationPupil.publication_id == Publication.id)
        .where(
            Publication.school_id == school,
            Publication.status == PublicationStatus.live,
            Publication.channel.in_(channels),
            PublicationPupil.pupil_id == pupil_id,
        )
        .order_by(Publication.published_at)
    ).all()


def save(session: Session) -> None:
    session.flush()
