"""The class consent sheet (C7) as the API returns it."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict

from hallpass_consent.consents.policy import Reason


class SheetCell(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    allowed: bool
    reason: Reason


class SheetRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    name: str
    restricted: bool
    cells: list[SheetCell]


class SheetPurpose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    title: str


class ConsentSheet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_id: uuid.UUID
    class_name: str
    school_name: str
    at: dt.datetime
    purposes: list[SheetPurpose]
    rows: list[SheetRow]
