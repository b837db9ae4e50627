"""Events the consent service announces, one Pydantic payload per event type.

They are written to the outbox with the change that caused them and leave the service as signed
webhooks (or in-process in all-in-one mode). The schema of each is published in the service's
OpenAPI ``webhooks`` section, which is the contract other services and schools build against.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from hallpass_consent.consents.policy import Reason


class ChangeCause(StrEnum):
    """What made a pupil's standing for a purpose change."""

    consent_recorded = "consent_recorded"
    guardian_link = "guardian_link"
    restriction = "restriction"
    restriction_lifted = "restriction_lifted"
    pupils_imported = "pupils_imported"
    purpose_basis_changed = "purpose_basis_changed"
    expired = "expired"


class ConsentChanged(BaseModel):
    """A pupil's standing for one purpose changed (C1, C5, C12): media takes down what it must.

    A restriction is announced as ``state: restricted`` and never with its reason (C12).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pupil_id: uuid.UUID
    purpose: str = Field(min_length=1, max_length=64)
    allowed: bool
    state: Reason
    record_id: uuid.UUID | None = None
    cause: ChangeCause


class ConsentRequestMailDue(BaseModel):
    """A consent request's email round is due: comms asks consent for that round's personal
    links (``POST /v1/consent-requests/{id}/rounds/{round}:links``) and mails each carer once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: uuid.UUID
    school_id: str = Field(min_length=1, max_length=64)
    round: int = Field(ge=1)


# Event type -> payload model: what the outbox carries and what the webhooks section documents.
EVENTS: dict[str, type[BaseModel]] = {
    "consent.changed": ConsentChanged,
    "consent_request.mail_due": ConsentRequestMailDue,
}
