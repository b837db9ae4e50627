from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict


class PupilMedia(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_id: uuid.UUID
    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    event: str | None
    caption: str | None
    publications: list[uuid.UUID]


class PupilMediaList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    items: list[PupilMedia]
