from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from hallpass_comms.common import BodyText, ConcernSubject, Subject
from hallpass_comms.messages.schemas import Html
from hallpass_comms.models import ConcernStatus, Sensitivity


class ConcernCreate(BaseModel):
    """A carer's concern for the pastoral team (E7)."""

    model_config = ConfigDict(extra="forbid")

    subject: ConcernSubject
    body: BodyText
    pupil_id: uuid.UUID | None = Field(default=None, description="Which of your children, if any.")


class ConcernView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    guardian_id: uuid.UUID
    pupil_id: uuid.UUID | None
    subject: str
    body: str
    status: ConcernStatus
    created_at: dt.datetime


class ConcernReceipt(BaseModel):
    """What the carer is told: it arrived; nothing of who will read it."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    status: ConcernStatus
    created_at: dt.datetime


class ReplyCreate(BaseModel):
    """An official reply to the carer, from your school account, copied per policy (E1)."""

    model_config = ConfigDict(extra="forbid")

    subject: Subject | None = Field(default=None, description='Default: "Re: " and theirs.')
    body_text: BodyText
    body_html: Html | None = None
    sensitivity: Sensitivity = Field(
        default=Sensitivity.sensitive,
        description="Pastoral replies default to sensitive: the email carries a link (E5).",
    )
    urgent: StrictBool = False
