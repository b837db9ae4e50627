"""M7: when consent is withdrawn, refused, expired or restricted, live publications come down.

The handler runs in the consent service's dispatcher thread (in all-in-one mode) or behind a
webhook receiver; it opens its own media transaction, and records the event as consumed in it so
a redelivery changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import select

from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Event, mark_consumed
from hallpass_media.common import audit, channels_for_purpose, emit_event
from hallpass_media.models import Publication, PublicationPupil, PublicationStatus, kit_tables

CONSUMER = "media-takedown"
ACTOR = "service:media-takedown"


def flag_for_takedown(database: Database, event: Event) -> int:
    """Flag every live publication the change affects; returns how many were flagged."""
    payload = event.payload
    with database.session() as session:
        if not mark_consumed(
            session, kit_tables.consumed_event, consumer=CONSUMER, event_id=event.id
        ):
            return 0
        if payload.get("allowed") is not False:
            return 0
        channels = channels_for_purpose(str(payload.get("purpose")))
        try:
            pupil_id = uuid.UUID(str(payload.get("pupil_id")))
        except ValueError:
            return 0
        if not channels:
            return 0
        publications = session.scalars(
            select(Publication)
            .join(PublicationPupil, PublicationPupil.publication_id == Publication.id)
            .where(
                Publication.school_id == event.school,
                Publication.status == PublicationStatus.live,
                Publication.channel.in_(channels),
                PublicationPupil.pupil_id == pupil_id,
            )
            .order_by(Publication.published_at)
        ).all()
        now = utcnow()
        state = str(payload.get("state")) if payload.get("state") else None
        for publication in publications:
            publication.status = PublicationStatus.takedown_required
            publication.takedown_required_at = now
            publication.takedown_pupil_id = pupil_id
            publication.takedown_state = state
            session.flush()
            emit_event(
                session,
                event.school,
                "publication.takedown_required",
                {
                    "publication_id": str(publication.id),
                    "channel": publication.channel.value,
                    "target_url": publication.target_url,
                    "post_id": publication.post_id,
                    "pupil_id": str(pupil_id),
                    "state": state,
                    "consent_event_id": str(event.id),
                },
            )
            audit.append(
                session,
                actor=ACTOR,
                school=event.school,
                action="publication.takedown_required",
                target=str(publication.id),
                details={
                    "pupil_id": str(pupil_id),
                    "state": state,
                    "consent_event_id": str(event.id),
                },
            )
        return len(publications)


def takedown_handler(database: Database) -> Callable[[Event], None]:
    def handle(event: Event) -> None:
        flag_for_takedown(database, event)

    return handle
