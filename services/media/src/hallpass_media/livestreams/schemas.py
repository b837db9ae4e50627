from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class LivestreamCheck(BaseModel):
    """Give the pupils, or a class (every pupil on roll in it), or both."""

    model_config = ConfigDict(extra="forbid")

    pupil_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    class_id: uuid.UUID | None = None


class OnCamera(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    allowed: bool
    reason: str = Field(
        description="Why not: no_record, refused, withdrawn, expired… or just `restricted` (C12)."
    )


class LivestreamVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    pupils: list[OnCamera]
    off_camera: list[uuid.UUID] = Field(description="Pupils who must stay off camera.")
