from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hallpass_consent.models import Basis, ConsentExpiry
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE, ShortText

# Only days that exist (29 February included): the schema, not just the handler, refuses 11-31.
MonthDay = Annotated[
    str,
    StringConstraints(
        max_length=5,
        pattern=r"^((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)$",
    ),
    STORABLE,
]


class SchoolSettings(BaseModel):
    """A school's own settings; creating a school also seeds its purpose catalogue."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    consent_expiry: ConsentExpiry = Field(
        default=ConsentExpiry.academic_year_end,
        description="When a grant lapses unless the form says otherwise: at the end of the "
        "academic year (asked again each year) or never (until withdrawn).",
    )
    academic_year_ends: MonthDay = Field(default="08-31", description="MM-DD, school time zone")


class SchoolView(SchoolSettings):
    id: str
    roster_version: int


class PurposeView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    title: str
    title_cy: str | None = Field(description="The title in Welsh; null when the school has none.")
    basis: Basis
    requires_consent: bool
    publishable: bool
    names_pupil: bool
    needs_pupil_agreement: bool
    wording_version: int
    wording: str
    wording_sha256: str
    wording_cy: str | None = Field(
        description="The same words in Welsh, when the school has given them for this version."
    )
    wording_cy_sha256: str | None


class WordingVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    text: str
    sha256: str
    text_cy: str | None
    sha256_cy: str | None
    created_by: str
    created_at: dt.datetime


class PurposeHistory(PurposeView):
    versions: list[WordingVersion]


WordingText = Annotated[
    str, StringConstraints(min_length=20, max_length=5000, pattern=VISIBLE), STORABLE, TRIM
]


class NewWording(BaseModel):
    """New words for a purpose; later consents cite the new version, earlier ones keep theirs.

    A version is one meaning in English and, when given, Welsh. Adding or correcting the Welsh
    is a new version too: the words a carer was shown never change under their record (C10).
    """

    model_config = ConfigDict(extra="forbid")

    text: WordingText
    text_cy: WordingText | None = Field(
        default=None,
        description="The same words in Welsh; without them the version is English only.",
    )


class PurposeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    basis: Basis = Field(
        description="opt_in: silence means no. objection: silence means yes until a carer "
        "objects (UK GDPR public task; not allowed for livestream, naming or pupil work)."
    )
