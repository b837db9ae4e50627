from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from hallpass_consent.models import Decision


class ChildConsent(BaseModel):
    """One purpose as a carer sees it: what they said, and what the school will do."""

    model_config = ConfigDict(extra="forbid")

    purpose: str
    title: str
    title_cy: str | None = Field(description="The title in Welsh; null when the school has none.")
    wording_version: int
    your_decision: Decision | None
    your_record_id: uuid.UUID | None
    allowed: bool
    # "held_by_school" stands in for a safeguarding restriction: carers are not told of it here.
    state: str
    valid_until: dt.datetime | None


class Child(BaseModel):
    """One of the carer's children, in the school that holds their record."""

    model_config = ConfigDict(extra="forbid")

    school: str
    pupil_id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None
    year_group: int
    parental_responsibility: bool
    consents: list[ChildConsent]
