from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from hallpass_comms.common import Address, DateText, Domain
from hallpass_comms.models import CcPolicy, SensitiveDelivery
from hallpass_kit.fields import STORABLE, JsonInteger

Weekday = Annotated[int, Field(ge=1, le=7, description="ISO weekday, 1 = Monday"), JsonInteger]

# A wall-clock time of the school day, read on the school's own clock (its time zone setting).
TimeOfDay = Annotated[
    str,
    StringConstraints(max_length=5, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
    STORABLE,
    Field(description="HH:MM on the school's clock, e.g. 08:30."),
]
Day = Annotated[dt.date, DateText]


class TermDates(BaseModel):
    """One term, first and last day included."""

    model_config = ConfigDict(extra="forbid")

    start: Day
    end: Day


class MailSettingsBody(BaseModel):
    """A school's mail rules. Every address must be on one of the school's domains."""

    model_config = ConfigDict(extra="forbid")

    domains: Annotated[list[Domain], Field(min_length=1, max_length=10)] = Field(
        description="The school's own mail domains; staff send only from these (E2)."
    )
    head_address: Address | None = None
    deputy_address: Address | None = None
    dsl_address: Address = Field(description="Receives offensive-message reports (E10).")
    office_address: Address = Field(
        description="Renewal reminders and report notices come from this account."
    )
    cc_policy: CcPolicy = Field(
        default=CcPolicy.both, description="Who every staff email copies (E1)."
    )
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64), STORABLE] = (
        "Europe/London"
    )
    school_day_start: TimeOfDay = "08:30"
    school_day_end: TimeOfDay = "16:00"
    morning_send_time: TimeOfDay = Field(
        default="08:00",
        description="When mail held outside school hours goes out on the next school day (E8).",
    )
    school_days: Annotated[list[Weekday], Field(min_length=1, max_length=7)] = [1, 2, 3, 4, 5]
    term_dates: Annotated[list[TermDates], Field(max_length=30)] = Field(
        default=[], description="In order; empty means every school weekday is a school day."
    )
    external_needs_approval: StrictBool = Field(
        default=True, description="Mail to outside organisations waits for the head or deputy (E4)."
    )
    sensitive_delivery: SensitiveDelivery = SensitiveDelivery.secure_link
    secure_view_days: Annotated[int, Field(ge=1, le=90), JsonInteger] = Field(
        default=14, description="How long a carer's secure link to a sensitive message works (E5)."
    )


class MailSettingsView(MailSettingsBody):
    updated_at: dt.datetime
    updated_by: str
