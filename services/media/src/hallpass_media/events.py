"""Events the media service announces, and the consent events it reads.

Each announced event has one Pydantic payload (``extra="forbid"``), published in the service's
OpenAPI ``webhooks`` section; a school's CMS subscribes to ``publication.takedown_required``.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from hallpass_media.models import Channel


class PublicationPublished(BaseModel):
    """Pictures went out on a channel after passing the check (M6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publication_id: uuid.UUID
    channel: Channel


class PublicationTakedownRequired(BaseModel):
    """A live publication shows a pupil whose consent for its channel ended (M7): take it down,
    then confirm with ``POST /v1/publications/{id}:confirm-takedown``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publication_id: uuid.UUID
    channel: Channel
    target_url: str | None = Field(default=None, max_length=2000)
    post_id: str | None = Field(default=None, max_length=200)
    pupil_id: uuid.UUID
    state: str | None = Field(default=None, max_length=40)
    consent_event_id: uuid.UUID


class PublicationTakenDown(BaseModel):
    """The publisher confirmed the copies are down (M7)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publication_id: uuid.UUID
    channel: Channel


EVENTS: dict[str, type[BaseModel]] = {
    "publication.published": PublicationPublished,
    "publication.takedown_required": PublicationTakedownRequired,
    "publication.taken_down": PublicationTakenDown,
}


class ConsentChangedNotice(BaseModel):
    """What media reads of the consent service's ``consent.changed`` (its webhooks section).

    A tolerant reader: fields consent adds later are ignored, the ones read here are checked
    against ``openapi/consent.json`` by a contract test.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    pupil_id: uuid.UUID
    purpose: str
    allowed: bool
    state: str
