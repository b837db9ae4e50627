"""Small typed builders for the comms tests that render mail without a database."""

from __future__ import annotations

import datetime as dt
import uuid

from hallpass_comms.delivery import new_message_id_header
from hallpass_comms.models import (
    Approval,
    Delivery,
    DeliveryStatus,
    Message,
    MessageKind,
    RecipientKind,
    Sensitivity,
)

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)


def a_message(**overrides: object) -> Message:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "school_id": "oakfield",
        "kind": MessageKind.staff_message,
        "sender_sub": "teacher@oakfield",
        "sender_address": "teacher@oakfield.sch.uk",
        "subject": "Year 4 trip to the museum",
        "body_text": "Dear families, the coach leaves at 9:15.",
        "body_html": None,
        "sensitivity": Sensitivity.normal,
        "urgent": False,
        "approval": Approval.not_needed,
        "created_at": NOW,
    }
    values.update(overrides)
    return Message(**values)


def a_delivery(message: Message, **overrides: object) -> Delivery:
    delivery_id = uuid.uuid4()
    values: dict[str, object] = {
        "id": delivery_id,
        "message_id": message.id,
        "school_id": message.school_id,
        "recipient_kind": RecipientKind.family,
        "guardian_ids": [],
        "pupil_ids": [],
        "to_addresses": ["carer.one@parents.example.org"],
        "cc_addresses": ["head@oakfield.sch.uk"],
        "status": DeliveryStatus.queued,
        "due_at": NOW,
        "attempts": 0,
        "message_id_header": new_message_id_header(delivery_id, "oakfield.sch.uk"),
        "created_at": NOW,
    }
    values.update(overrides)
    return Delivery(**values)
