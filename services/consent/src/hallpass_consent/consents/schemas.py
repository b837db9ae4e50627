from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from hallpass_consent.common import DateTimeText
from hallpass_consent.consents.policy import Reason
from hallpass_consent.models import Decision, GivenBy, Method
from hallpass_consent.settings import MAX_DECISION_BATCH_CEILING
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE, JsonInteger

PurposeCode = Annotated[
    str, StringConstraints(max_length=64, pattern=r"^[a-z][a-z0-9_]{1,63}$"), STORABLE
]
EvidenceRef = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE), STORABLE, TRIM
]
# Bounded by the database column (a 32-bit integer).
WordingVersion = Annotated[int, Field(ge=1, le=2_147_483_647), JsonInteger]
When = Annotated[AwareDatetime, DateTimeText]
# The language of the words a carer was shown: English, or Welsh where the version has Welsh.
WordingLanguage = Literal["en", "cy"]
_LANGUAGE = (
    "The language of the words the carer was shown: en, or cy where this version has Welsh "
    "words (wording_cy); cy without them is refused."
)


class ConsentCreate(BaseModel):
    """A decision recorded by school staff, e.g. from a signed paper form (C10)."""

    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    purpose: PurposeCode
    decision: Literal["granted", "refused"]
    guardian_id: uuid.UUID | None = Field(
        default=None, description="The carer who gave it; required unless given_by is pupil."
    )
    given_by: GivenBy = GivenBy.guardian
    method: Method
    evidence_ref: EvidenceRef | None = Field(
        default=None, description="Where the evidence is: form number, scan id, email reference."
    )
    wording_version: WordingVersion | None = Field(
        default=None, description="The wording the carer was shown; default: the current one."
    )
    wording_language: WordingLanguage = Field(default="en", description=_LANGUAGE)
    valid_from: When | None = None
    valid_until: When | None = Field(
        default=None, description="Default: the school's consent expiry (end of academic year)."
    )


class ParentConsent(BaseModel):
    """A carer's own answer, given in the parent app."""

    model_config = ConfigDict(extra="forbid")

    purpose: PurposeCode
    decision: Literal["granted", "refused"]
    wording_version: WordingVersion | None = Field(
        default=None,
        description="The version the carer was shown; if the school has published newer words "
        "since, the answer is refused (409 stale_wording) so the carer reads them first.",
    )
    wording_language: WordingLanguage = Field(default="en", description=_LANGUAGE)


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method
    evidence_ref: EvidenceRef | None = None


class ConsentRecordView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    pupil_id: uuid.UUID
    purpose: str
    decision: Decision
    given_by: GivenBy
    guardian_id: uuid.UUID | None
    method: Method
    evidence_ref: str | None
    wording_version: int
    wording_language: WordingLanguage
    wording: str = Field(description="The exact words shown, in wording_language.")
    wording_sha256: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    recorded_by: str
    recorded_at: dt.datetime
    withdraws_record_id: uuid.UUID | None
    scans: int = Field(description="How many scans of the signed form are kept with the record.")


class EffectiveConsent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    title: str
    allowed: bool
    reason: Reason
    record_id: uuid.UUID | None
    valid_until: dt.datetime | None


class PupilConsents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    restricted: bool
    effective: list[EffectiveConsent]
    history: list[ConsentRecordView]


class ReceiptParty(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str


class ReceiptPurpose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    title: str
    wording_version: int
    wording_language: WordingLanguage
    wording: str = Field(description="The exact words the carer was shown, in wording_language.")
    wording_sha256: str


class ReceiptWithdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    how: str
    withdrawn_at: dt.datetime | None
    withdrawal_record_id: uuid.UUID | None


class ConsentReceipt(BaseModel):
    """A consent receipt after ISO/IEC TS 27560 and the Kantara consent receipt."""

    model_config = ConfigDict(extra="forbid")

    receipt_version: Literal["hallpass-receipt-1"] = "hallpass-receipt-1"
    receipt_id: uuid.UUID
    issued_at: dt.datetime
    controller: ReceiptParty
    subject: ReceiptParty
    given_by: ReceiptParty
    legal_basis: str
    purpose: ReceiptPurpose
    decision: Decision
    method: Method
    evidence_ref: str | None
    recorded_at: dt.datetime
    recorded_by: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    withdrawal: ReceiptWithdrawal


class Renewal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    purpose: str
    record_id: uuid.UUID
    guardian_id: uuid.UUID | None
    guardian_email: str | None
    valid_until: dt.datetime


class DecisionRequest(BaseModel):
    """Many pupils, one purpose: may they appear? Answers are never cached (C5)."""

    model_config = ConfigDict(extra="forbid")

    purpose: PurposeCode
    # The schema's ceiling is the largest batch a deployment may allow (the setting's upper
    # bound); the school's own limit is checked by the service. A longer array is refused
    # before a single id is read.
    pupil_ids: list[uuid.UUID] = Field(
        min_length=1,
        max_length=MAX_DECISION_BATCH_CEILING,
        description="At most 1,000 pupils per call (HALLPASS_CONSENT_MAX_DECISION_BATCH).",
    )
    at: When | None = Field(
        default=None,
        description="The instant asked about; now by "
        "default. A past instant answers from the history.",
    )


class PupilDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    allowed: bool
    reason: Reason
    record_id: uuid.UUID | None = Field(description="The record that justifies the answer.")


class DecisionResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    at: dt.datetime
    decisions: list[PupilDecision]


class ScanView(BaseModel):
    """A scan of the signed form kept with a record (its content is downloaded on its own)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    record_id: uuid.UUID
    file_name: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: dt.datetime


class RecordWithScans(BaseModel):
    """A record made from a paper form, with the scans stored alongside it."""

    model_config = ConfigDict(extra="forbid")

    record: ConsentRecordView
    scans: list[ScanView]
