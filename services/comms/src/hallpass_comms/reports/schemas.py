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
