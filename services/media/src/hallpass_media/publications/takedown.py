"""M7: when consent is withdrawn, refused, expired or restricted, live publications come down.

The handler runs in the consent service's dispatcher thread (in all-in-one mode) or behind a
webhook receiver; it opens its own media transaction, and records the event as consumed in it so
a redelivery changes nothing. The consent event is read through ``ConsentChangedNotice``; one
media cannot read is consumed and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pydantic import ValidationError

from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Event, mark_consumed
from hallpass_media.events import ConsentChangedNotice
from hallpass_media.models import kit_tables
from hallpass_media.publications import service

CONSUMER = "media-takedown"
ACTOR = service.TAKEDOWN_ACTOR


def flag_for_takedown(database: Database, event: Event, now: dt.datetime) -> int:
    """Flag every live publication the change affects; returns how many were flagged."""
    with database.session() as session:
        if not mark_consumed(
            session, kit_tables.consumed_event, consumer=CONSUMER, event_id=event.id
        ):
            return 0
        try:
            notice = ConsentChangedNotice.model_validate(event.payload)
        except ValidationError:
            return 0
        return service.flag_for_takedown(session, event.school, notice, event.id, now)


def takedown_handler(
    database: Database, clock: Callable[[], dt.datetime] = utcnow
) -> Callable[[Event], None]:
    def handle(event: Event) -> None:
        flag_for_takedown(database, event, clock())

    return handle
