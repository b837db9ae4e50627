"""What a consent request looks like on the wire: the office's side and the carer's link side."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from hallpass_consent.common import DateTimeText
from hallpass_consent.consents.schemas import PurposeCode, WordingVersion
from hallpass_consent.models import ConsentRequestStatus, Decision
from hallpass_consent.pupils.schemas import YearGroup
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE

Title = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE), STORABLE, TRIM
]
Note = Annotated[str, StringConstraints(min_length=1, max_length=4000), STORABLE, TRIM]
# secrets.token_urlsafe(32) gives 43 characters; anything far off that shape is no link of ours.
LinkToken = Annotated[
    str, StringConstraints(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$"), STORABLE
]
Language = Literal["en", "cy"]


class RequestScope(BaseModel):
    """Who is asked: classes, year groups, the whole school, or a mix (at least one)."""

    model_config = ConfigDict(extra="forbid")

    class_ids: list[uuid.UUID] = Field(default_factory=list, max_length=200)
    year_groups: list[YearGroup] = Field(default_factory=list, max_length=20)
    whole_school: bool = False


class ConsentRequestCreate(BaseModel):
    """The office asks carers for chosen purposes by email with a personal link."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    note: Note | None = None
    purposes: list[PurposeCode] = Field(min_length=1, max_length=20)
    scope: RequestScope
    closes_at: Annotated[AwareDatetime, DateTimeText] | None = Field(
        default=None, description="After this the links stop working, as if closed."
    )


class PupilToChase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    given_name: str
    family_name: str


class ClassProgress(BaseModel):
    """Answered / not yet for one class (``class_id`` null: pupils in no class)."""

    model_config = ConfigDict(extra="forbid")

    class_id: uuid.UUID | None
    class_name: str | None
    total: int
    answered: int
    not_yet: list[PupilToChase]


class ConsentRequestSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    title: str
    status: ConsentRequestStatus
    purposes: list[str]
    created_at: dt.datetime
    created_by: str
    closes_at: dt.datetime | None
    closed_at: dt.datetime | None
    rounds: int
    total: int
    answered: int


class ConsentRequestView(ConsentRequestSummary):
    """A request with its progress per class: who has answered every purpose asked since it was
    sent (any decision, any method: a paper form counts too)."""

    note: str | None
    scope: RequestScope
    carers_asked: int
    carers_mailed: int
    last_round_mailed: int
    classes: list[ClassProgress]
    pupils_without_address: list[PupilToChase] = Field(
        description="No carer with parental responsibility has an email address: chase on paper."
    )


class LinkChild(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    given_name: str


class CarerLinkIssued(BaseModel):
    """One carer's personal link for this round; the token is shown once, only its hash is kept."""

    model_config = ConfigDict(extra="forbid")

    guardian_id: uuid.UUID
    email: str
    children: list[LinkChild]
    purposes: list[str] = Field(description="The purposes' titles.")
    token: str


class RoundLinks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: uuid.UUID
    round: int
    school_name: str
    title: str
    note: str | None
    closes_at: dt.datetime | None
    carers: list[CarerLinkIssued]


class LinkOpen(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: LinkToken


class PurposeQuestion(BaseModel):
    """One purpose as the carer is asked it: the current wording in English and, when the school
    wrote it, Welsh; and this carer's latest answer for this child, if any."""

    model_config = ConfigDict(extra="forbid")

    purpose: str
    title: str
    title_cy: str | None
    wording_version: int
    wording: str
    wording_cy: str | None
    current_decision: Decision | None


class ChildQuestions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    given_name: str
    purposes: list[PurposeQuestion]


class LinkRequestView(BaseModel):
    """What a personal link opens: the request, the carer's children in it, the questions."""

    model_config = ConfigDict(extra="forbid")

    request_id: uuid.UUID
    school_name: str
    title: str
    note: str | None
    closes_at: dt.datetime | None
    guardian_given_name: str
    children: list[ChildQuestions]


class LinkAnswerItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    purpose: PurposeCode
    decision: Literal["granted", "refused"]
    wording_version: WordingVersion
    wording_language: Language | None = Field(
        default=None,
        description="The language this purpose's words were shown in, when not the page's "
        "(a Welsh page shows English words the school has not given in Welsh).",
    )


class LinkAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: LinkToken
    language: Language = "en"
    answers: list[LinkAnswerItem] = Field(min_length=1, max_length=200)


class RecordedAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_id: uuid.UUID
    pupil_id: uuid.UUID
    given_name: str
    purpose: str
    title: str
    title_cy: str | None
    decision: Decision
    wording_version: int
    wording_language: str


class LinkAnswerReceipt(BaseModel):
    """What was recorded, to show the carer on the thank-you page."""

    model_config = ConfigDict(extra="forbid")

    request_id: uuid.UUID
    recorded: list[RecordedAnswer]
