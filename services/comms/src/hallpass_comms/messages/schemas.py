from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from hallpass_comms.common import Address, BodyText, Subject
from hallpass_comms.models import Approval, DeliveryStatus, MessageKind, RecipientKind, Sensitivity
from hallpass_kit.fields import STORABLE, JsonInteger

YearGroup = Annotated[
    int, Field(ge=-1, le=14, description="-1 nursery, 0 reception, 1 to 13"), JsonInteger
]
Html = Annotated[str, StringConstraints(max_length=200_000), STORABLE]


class Recipients(BaseModel):
    """Who the message is for; any mix. Carers are found through the school's records."""

    model_config = ConfigDict(extra="forbid")

    guardian_ids: Annotated[list[uuid.UUID], Field(max_length=1000)] = Field(
        default=[], description="Carers, each written to alone about their children."
    )
    pupil_ids: Annotated[list[uuid.UUID], Field(max_length=1000)] = Field(
        default=[], description="Pupils: every carer with parental responsibility is written to."
    )
    class_ids: Annotated[list[uuid.UUID], Field(max_length=100)] = Field(
        default=[], description="Classes: the families of the pupils on roll in them."
    )
    year_groups: Annotated[list[YearGroup], Field(max_length=16)] = Field(
        default=[], description="Year groups: the families of the pupils on roll in them."
    )
    addresses: Annotated[list[Address], Field(max_length=50)] = Field(
        default=[],
        description="Staff (on the school's domains) or outside organisations (anything else: "
        "held for the head or deputy when the school says so, E4).",
    )


class MessageCreate(BaseModel):
    """A message from the caller's own school account (E2); there is no From to choose."""

    model_config = ConfigDict(extra="forbid")

    recipients: Recipients
    subject: Subject
    body_text: BodyText
    body_html: Html | None = Field(
        default=None, description="Optional; cleaned to an allow-list of tags before storing."
    )
    sensitivity: Sensitivity = Field(
        default=Sensitivity.normal,
        description="sensitive: the email carries a notice and a link, never the words (E5).",
    )
    urgent: StrictBool = Field(
        default=False, description="Urgent mail goes at once, even outside school hours (E8)."
    )


class BounceView(BaseModel):
    """One recipient's line of a delivery status notification (RFC 3464) about an envelope."""

    model_config = ConfigDict(extra="forbid")

    recipient: str
    action: str = Field(description="failed: not delivered; delayed: still being tried.")
    status: str = Field(description="The enhanced status code, e.g. 5.1.1 (no such mailbox).")
    diagnostic: str | None = Field(description="The receiving server's own words, if given.")
    received_at: dt.datetime


class DeliveryView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    recipient_kind: RecipientKind
    to: list[str]
    cc: list[str]
    status: DeliveryStatus
    due_at: dt.datetime
    attempts: int
    sent_at: dt.datetime | None
    last_error: str | None
    bounces: list[BounceView] = Field(
        default=[], description="Delivery status notifications read about this envelope."
    )


class MessageView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    kind: MessageKind
    sender_address: str
    subject: str
    body_text: str
    body_html: str | None
    sensitivity: Sensitivity
    urgent: bool
    approval: Approval
    approved_by: str | None
    scheduled_for: dt.datetime | None = Field(
        description="When held mail goes out (E8); null when it goes at once."
    )
    expected_last_at: dt.datetime | None = Field(
        default=None,
        description="When the last envelope is expected to leave, under the mail provider's "
        "sending limits and behind the mail already waiting in the sender's mailbox (as "
        "forecast at send or approval); null when no limit applies.",
    )
    created_at: dt.datetime
    cc: list[str] = Field(description="Leadership copied on every envelope (E1).")
    deliveries: list[DeliveryView]


class MessageReceipt(MessageView):
    unreachable_pupil_ids: list[uuid.UUID] = Field(
        description="Pupils asked for whose carers have no address on record."
    )


class MessagePreview(BaseModel):
    """What sending a message now would do; nothing is written."""

    model_config = ConfigDict(extra="forbid")

    sender_address: str = Field(description="Your own school account (E2).")
    families: int = Field(description="Family envelopes: one per family (E9).")
    pupils: int = Field(description="Pupils whose families are written to.")
    staff_addresses: int
    outside_addresses: int
    cc: list[str] = Field(description="Leadership copied on every envelope (E1).")
    approval: Approval = Field(description="pending: held for the head or deputy (E4).")
    scheduled_for: dt.datetime | None = Field(
        description="When it would go out if held for the next school-day morning (E8); null "
        "when it would go at once (or waits for approval first)."
    )
    expected_last_at: dt.datetime | None = Field(
        default=None,
        description="When the last envelope would be expected to leave under the mail "
        "provider's sending limits, behind the mail already waiting in your mailbox; null when "
        "no limit applies (or it waits for approval first).",
    )
    unreachable_pupil_ids: list[uuid.UUID] = Field(
        description="Pupils asked for whose carers have no address on record."
    )


class SecureMessage(BaseModel):
    """A sensitive message, read by its carer over the authenticated API (E5)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    sender_address: str
    subject: str
    body_text: str
    body_html: str | None
    sent_at: dt.datetime
    expires_at: dt.datetime
