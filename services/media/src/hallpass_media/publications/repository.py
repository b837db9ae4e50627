"""Every SQL statement about publications, their clean copies and the pupils they show."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_kit.pagination import Position, older_than
from hallpass_media.models import (
    Channel,
    Publication,
    PublicationPupil,
    PublicationRendition,
    PublicationStatus,
)


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
