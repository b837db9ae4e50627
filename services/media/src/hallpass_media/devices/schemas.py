from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict

from hallpass_kit.fields import ShortText


class DeviceRegistration(BaseModel):
    """A school camera, phone or tablet (M4)."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    serial: ShortText


class DeviceView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    name: str
    serial: str
    active: bool
    registered_by: str
    registered_at: dt.datetime
    retired_at: dt.datetime | None
