from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hallpass_comms.common import Address
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE

Description = Annotated[
    str, StringConstraints(min_length=1, max_length=5000, pattern=VISIBLE), STORABLE, TRIM
]


class ReportCreate(BaseModel):
    """An offensive message: one sent through Hallpass, or one received from an address."""

    model_config = ConfigDict(extra="forbid")

    message_id: uuid.UUID | None = Field(default=None, description="A message sent through here.")
    received_from: Address | None = Field(
        default=None, description="Or the address an offensive message came from."
    )
    description: Description


class ReportReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    reference: str = Field(description='Quote it to the DSL, e.g. "R-2026-000123".')
    created_at: dt.datetime


class ReportView(BaseModel):
    """A report as the designated staff read it (E10)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    reference: str
    reported_by: str = Field(description="Who reported it (their account).")
    message_id: uuid.UUID | None = Field(description="The message reported, if sent through here.")
    received_from: str | None = Field(description="Or the address it came from.")
    description: str
    notice_message_id: uuid.UUID | None = Field(
        description="The notice sent to the DSL at once (its delivery can be followed)."
    )
    created_at: dt.datetime
    resolved_by: str | None = Field(description="Who marked it handled; null while open.")
    resolved_at: dt.datetime | None
    resolution: str | None = Field(description="What was done, in the handler's words.")


class ReportResolve(BaseModel):
    """Marking a report handled: what was done (kept with the report and in the audit)."""

    model_config = ConfigDict(extra="forbid")

    resolution: Description
