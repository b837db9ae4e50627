from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from hallpass_consent.pupils.schemas import YearGroup

MAX_IDS = 1000


class FamiliesQuery(BaseModel):
    """Which families to resolve: any mix of carers, pupils, classes and year groups."""

    model_config = ConfigDict(extra="forbid")

    guardian_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_IDS)] = []
    pupil_ids: Annotated[list[uuid.UUID], Field(max_length=MAX_IDS)] = []
    class_ids: Annotated[list[uuid.UUID], Field(max_length=100)] = []
    year_groups: Annotated[list[YearGroup], Field(max_length=16)] = []


class FamilyCarer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guardian_id: uuid.UUID
    given_name: str
    family_name: str
    email: str | None
    relationship: str
    parental_responsibility: bool


class Family(BaseModel):
    """One pupil and every carer linked to them."""

    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    pupil_given_name: str
    pupil_family_name: str
    class_id: uuid.UUID | None
    year_group: int
    on_roll: bool
    carers: list[FamilyCarer]
