from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from hallpass_comms.messages.schemas import BounceView
from hallpass_comms.models import DeliveryStatus, MessageKind, Sensitivity


class FamilyHistoryEntry(BaseModel):
    """One message to a pupil's family, as the reader may see it (E3)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    kind: MessageKind
    sender_address: str
    subject: str
    body_text: str | None = Field(
        description="Null for a sensitive message unless your role reads those (carers open "
        "theirs through the secure view, E5)."
    )
    sensitivity: Sensitivity
    urgent: bool
    created_at: dt.datetime
    scheduled_for: dt.datetime | None
    delivery_statuses: list[DeliveryStatus] = Field(
        description="The status of each envelope to this family."
    )
    expected_last_at: dt.datetime | None = Field(
        default=None,
        description="When the message's last envelope was expected to leave under the mail "
        "provider's sending limits; null when no limit applied.",
    )
    bounces: list[BounceView] = Field(
        default=[],
        description="Delivery status notifications about this family's envelopes: failed "
        "(the envelope is bounced) or delayed (still being tried by the receiving side).",
    )
