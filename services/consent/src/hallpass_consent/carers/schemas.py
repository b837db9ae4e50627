from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from hallpass_consent.models import CarerAccountHow
from hallpass_kit.fields import STORABLE


class CarerLinkView(BaseModel):
    """One carer record the signed-in account is, in one school."""

    model_config = ConfigDict(extra="forbid")

    school: str
    guardian_id: uuid.UUID


class MyLinks(BaseModel):
    """The carer records the signed-in account is: what other services act on."""

    model_config = ConfigDict(extra="forbid")

    links: list[CarerLinkView]
    # Every school the carer has a record in (one per request is acted for).
    schools: list[str]


# Long enough for a code with any separators a person might type; the code itself is 16.
InvitationCodeText = Annotated[str, StringConstraints(min_length=1, max_length=64), STORABLE]


class InvitationRedemption(BaseModel):
    """The one-time code the school gave the carer (case, dashes and spaces do not matter)."""

    model_config = ConfigDict(extra="forbid")

    code: InvitationCodeText


class InvitationIssued(BaseModel):
    """A new code: shown this once, never stored or shown again."""

    model_config = ConfigDict(extra="forbid")

    code: str
    expires_at: dt.datetime


class CarerAccountView(BaseModel):
    """An account linked to a carer record, as the office sees it.

    The provider's subject is left out: it is an opaque identifier, useless to recognise anyone
    by and one more personal identifier to leak; the issuer and the address at link time say
    whose account it is.
    """

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    issuer: str
    how: CarerAccountHow
    email: str | None
    linked_at: dt.datetime
    linked_by: str
