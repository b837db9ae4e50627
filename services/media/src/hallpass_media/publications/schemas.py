from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from hallpass_kit.fields import STORABLE
from hallpass_media.media.schemas import FaceBox
from hallpass_media.models import Channel, PublicationStatus


class Span(BaseModel):
    """Where in the text (or the file name's words) a name was found: [start, end)."""

    model_config = ConfigDict(extra="forbid")

    start: int
    end: int


class CheckProblem(BaseModel):
    """One reason a picture or text may not go out as it is."""

    model_config = ConfigDict(extra="forbid")

    code: str
    rule: str | None
    where: str = Field(
        description="caption, post_body, alt_text, filename, metadata.…, image_text, faces, …"
    )
    detail: str
    blocking: bool = Field(description="False: informational (e.g. GPS, which publishing strips).")
    span: Span | None = None
    box: FaceBox | None = Field(default=None, description="Where in the picture (text or face).")
    pupil_id: uuid.UUID | None = Field(
        default=None, description="The pupil concerned (a reference)."
    )
    pupil_name: str | None = Field(
        default=None, description="The pupil's name, for school staff only (never for the CMS)."
    )


class ImageVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_id: uuid.UUID | None = Field(
        description="The stored media (or the one an upload matched)."
    )
    file_name: str | None = Field(default=None, description="For an uploaded file: its name.")
    allowed: bool
    faces: int | None = None
    faces_to_blur: int = 0
    problems: list[CheckProblem]


class CheckVerdict(BaseModel):
    """The answer to "may this go out on this channel?" (200 even when it may not)."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    purpose: str
    allowed: bool = Field(description="True only when no image and no text has a blocking problem.")
    text_problems: list[CheckProblem]
    images: list[ImageVerdict]


class PublicationText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caption: Annotated[str, Field(max_length=5000), STORABLE] | None = None
    post_body: Annotated[str, Field(max_length=20_000), STORABLE] | None = None
    alt_text: Annotated[str, Field(max_length=5000), STORABLE] | None = None


class CheckRequest(PublicationText):
    """Stored media by id, and the text that would go with them."""

    channel: Channel
    media_ids: list[uuid.UUID] = Field(default_factory=list, max_length=20)
    blur_faces: StrictBool | None = Field(
        default=None,
        description="Blur every face that is not a consented, tagged pupil's (M3); "
        "unset: the school's setting.",
    )


class PublishRequest(PublicationText):
    channel: Channel
    media_ids: list[uuid.UUID] = Field(min_length=1, max_length=20)
    target_url: Annotated[str, Field(max_length=2000), STORABLE] | None = Field(
        default=None, description="Where it is published."
    )
    post_id: Annotated[str, Field(max_length=200), STORABLE] | None = Field(
        default=None, description="The post's id on the platform."
    )
    blur_faces: StrictBool | None = Field(
        default=None,
        description="Blur every face that is not a consented, tagged pupil's (M3); "
        "unset: the school's setting.",
    )


class RenditionView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_id: uuid.UUID
    file_name: str
    mime: str
    size_bytes: int
    blurred_faces: int
    download: str = Field(description="Path of the clean copy, relative to this service.")


class TakedownView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required_at: dt.datetime
    pupil_id: uuid.UUID | None
    state: str | None = Field(
        description="The consent state that caused it (withdrawn, refused, …)."
    )


class PublicationView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    channel: Channel
    purpose: str
    status: PublicationStatus
    target_url: str | None
    post_id: str | None
    caption: str | None
    post_body: str | None
    alt_text: str | None
    approved_by: str
    published_at: dt.datetime
    pupil_ids: list[uuid.UUID]
    renditions: list[RenditionView]
    takedown: TakedownView | None
    taken_down_at: dt.datetime | None
    taken_down_by: str | None
