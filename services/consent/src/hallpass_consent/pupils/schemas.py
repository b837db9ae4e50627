from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool, StringConstraints

from hallpass_consent.common import Name
from hallpass_consent.models import RestrictionKind
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE, JsonInteger

MisId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=VISIBLE), STORABLE, TRIM
]
YearGroup = Annotated[
    int, Field(ge=-1, le=14, description="-1 nursery, 0 reception, 1 to 13"), JsonInteger
]
Phone = Annotated[str, StringConstraints(max_length=31, pattern=r"^\+?[0-9 ()-]{6,30}$"), STORABLE]
Relationship = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=VISIBLE), STORABLE, TRIM
]


class ClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    year_group: YearGroup


class ClassView(ClassCreate):
    id: uuid.UUID


class PupilCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mis_id: MisId = Field(description="The pupil's id in the school's MIS (UPN or admission no.)")
    given_name: Name
    family_name: Name
    preferred_name: Name | None = None
    year_group: YearGroup
    class_id: uuid.UUID | None = None


class PupilChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_name: Name | None = None
    family_name: Name | None = None
    preferred_name: Name | None = None
    year_group: YearGroup | None = None
    class_id: uuid.UUID | None = None


class PupilView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    mis_id: str
    given_name: str
    family_name: str
    preferred_name: str | None
    year_group: int
    class_id: uuid.UUID | None
    archived_at: dt.datetime | None
    restricted: bool = Field(
        description="A safeguarding restriction applies (C12); the reason is shown to the DSL only."
    )


class ChildLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    relationship: Relationship = "parent"
    parental_responsibility: StrictBool = True


class GuardianCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_name: Name
    family_name: Name
    email: EmailStr | None = None
    phone: Phone | None = None
    children: list[ChildLink] = Field(min_length=1, max_length=20)


class GuardianView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    children: list[ChildLink]


class RestrictionSet(BaseModel):
    """A safeguarding restriction: the pupil is never published, whatever the consents (C12)."""

    model_config = ConfigDict(extra="forbid")

    kind: RestrictionKind
    reason: Annotated[
        str, StringConstraints(min_length=3, max_length=2000, pattern=VISIBLE), STORABLE, TRIM
    ]


class RestrictionView(RestrictionSet):
    pupil_id: uuid.UUID
    set_by: str
    set_at: dt.datetime


class ImportSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: int
    created: int
    updated: int
    guardians_created: int
    links_created: int
    classes_created: int
    dry_run: bool
