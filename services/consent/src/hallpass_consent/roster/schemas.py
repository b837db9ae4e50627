"""The roster as name detection (media) reads it."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict


class RosterPupil(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None
    on_roll: bool


class Roster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    pupils: list[RosterPupil]
