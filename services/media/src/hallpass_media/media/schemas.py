from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hallpass_media.models import Owner, ScanStatus


class FaceBox(BaseModel):
    """Where a face is, in pixels of the original as uploaded (after EXIF orientation)."""

    model_config = ConfigDict(extra="forbid")

    x: int = Field(ge=0, le=100_000)
    y: int = Field(ge=0, le=100_000)
    width: int = Field(ge=1, le=100_000)
    height: int = Field(ge=1, le=100_000)


class TaggedPupil(BaseModel):
    """A pupil shown in the picture, and optionally where their face is."""

    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    face: FaceBox | None = None


class ScanView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ScanStatus
    scanned_at: dt.datetime | None
    faces: int | None = Field(description="Faces detected (counted and located, never recognised).")
    has_location: bool | None = Field(description="GPS data in the original (never published).")
    error: str | None = None


class MediaView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    original_filename: str
    mime: str
    width: int
    height: int
    size_bytes: int
    device_id: uuid.UUID | None
    pupils: list[TaggedPupil]
    caption: str | None
    alt_text: str | None
    taken_at: dt.datetime | None
    event: str | None
    owner: Owner
    source: str | None
    permission: str | None
    uploaded_by: str
    uploaded_at: dt.datetime
    scan: ScanView


class ScanDetail(BaseModel):
    """What the scan read, for the staff who decide about a picture."""

    model_config = ConfigDict(extra="forbid")

    status: ScanStatus
    result: dict[str, Any] | None
