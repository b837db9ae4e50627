"""The consent service's own tables. No other service reads them."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hallpass_kit.db import UTCDateTime, enum_column, new_metadata
from hallpass_kit.tables import define_kit_tables


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {dt.datetime: UTCDateTime(), list[Any]: JSON, dict[str, Any]: JSON}


kit_tables = define_kit_tables(Base.metadata)


class Basis(StrEnum):
    """How silence is read: opt-in (no record means no) or objection-based (public task)."""

    opt_in = "opt_in"
    objection = "objection"


class Decision(StrEnum):
    granted = "granted"
    refused = "refused"
    withdrawn = "withdrawn"


class Method(StrEnum):
    paper = "paper"
    electronic = "electronic"
    app = "app"
    email = "email"
    # A carer's answer taken by the office on a telephone call; the evidence reference says
    # where the call note is kept (C10).
    phone = "phone"


class GivenBy(StrEnum):
    guardian = "guardian"
    pupil = "pupil"


class ConsentExpiry(StrEnum):
    academic_year_end = "academic_year_end"
    never = "never"


class RestrictionKind(StrEnum):
    court_order = "court_order"
    looked_after = "looked_after"
    adopted = "adopted"
    not_locatable = "not_locatable"
    other = "other"


class School(Base):
    __tablename__ = "school"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    consent_expiry: Mapped[ConsentExpiry] = mapped_column(
        enum_column(ConsentExpiry, "consent_expiry"), default=ConsentExpiry.academic_year_end
    )
    academic_year_end_month: Mapped[int] = mapped_column(Integer, default=8)
    academic_year_end_day: Mapped[int] = mapped_column(Integer, default=31)
    roster_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class SchoolClass(Base):
    __tablename__ = "school_class"
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    year_group: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]


class Pupil(Base):
    __tablename__ = "pupil"
    __table_args__ = (UniqueConstraint("school_id", "mis_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    mis_id: Mapped[str] = mapped_column(String(64))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    preferred_name: Mapped[str | None] = mapped_column(String(100))
    year_group: Mapped[int] = mapped_column(Integer)
    class_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("school_class.id"), index=True)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    # Leavers are archived, never deleted: their consent history is evidence.
    archived_at: Mapped[dt.datetime | None]


class Guardian(Base):
    __tablename__ = "guardian"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


# A carer signing in with a verified address is found by it in every school, whatever case the
# office typed it in (carers/repository.py compares lower-cased on both sides).
Index("ix_guardian_email_lower", func.lower(Guardian.email))


class GuardianLink(Base):
    __tablename__ = "guardian_link"

    pupil_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pupil.id"), primary_key=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("guardian.id"), primary_key=True, index=True
    )
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    relationship: Mapped[str] = mapped_column(String(40))
    parental_responsibility: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime]


class Purpose(Base):
    __tablename__ = "purpose"
    __table_args__ = (UniqueConstraint("school_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    # The title in Welsh, shown with the Welsh words (null: the school has not given one).
    title_cy: Mapped[str | None] = mapped_column(String(200))
    basis: Mapped[Basis] = mapped_column(enum_column(Basis, "basis"))
    requires_consent: Mapped[bool] = mapped_column(Boolean)
    publishable: Mapped[bool] = mapped_column(Boolean)
    names_pupil: Mapped[bool] = mapped_column(Boolean)
    needs_pupil_agreement: Mapped[bool] = mapped_column(Boolean)
    current_version: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)


class PurposeWording(Base):
    """The exact words parents were shown, kept for every version (C10)."""

    __tablename__ = "purpose_wording"
    __table_args__ = (UniqueConstraint("purpose_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    purpose_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purpose.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    # The same words in Welsh (Welsh Language Standards): a version is one meaning in both
    # languages, and a record keeps which language its carer was shown.
    text_cy: Mapped[str | None] = mapped_column(Text)
    text_cy_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]


class ConsentRecord(Base):
    """One decision by one carer (or the pupil) about one purpose. Never updated (C10)."""

    __tablename__ = "consent_record"
    __table_args__ = (
        Index("ix_consent_record_lookup", "school_id", "purpose_id", "pupil_id", "recorded_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"))
    pupil_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pupil.id"), index=True)
    purpose_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purpose.id"))
    decision: Mapped[Decision] = mapped_column(enum_column(Decision, "decision"))
    given_by: Mapped[GivenBy] = mapped_column(enum_column(GivenBy, "given_by"))
    guardian_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("guardian.id"), index=True)
    method: Mapped[Method] = mapped_column(enum_column(Method, "method"))
    evidence_ref: Mapped[str | None] = mapped_column(String(200))
    wording_version: Mapped[int] = mapped_column(Integer)
    # "en" or "cy": the language of the wording the carer was shown (C10).
    wording_language: Mapped[str] = mapped_column(String(8), server_default="en")
    valid_from: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime | None] = mapped_column(index=True)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime]
    withdraws_record_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consent_record.id"))


class Restriction(Base):
    """A safeguarding restriction (C12). Only the DSL sees ``reason``."""

    __tablename__ = "restriction"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"))
    pupil_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pupil.id"), index=True)
    kind: Mapped[RestrictionKind] = mapped_column(enum_column(RestrictionKind, "restriction_kind"))
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[dt.datetime]
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[dt.datetime | None]


class ExpiryNotice(Base):
    """Marks grants whose expiry has already been announced as ``consent.changed``."""

    __tablename__ = "expiry_notice"

    record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_record.id"), primary_key=True)
    noticed_at: Mapped[dt.datetime]


class CarerAccountHow(StrEnum):
    """How a signed-in account came to be a carer's: the school's address for them, verified by
    their identity provider, or a one-time code the school gave them."""

    verified_email = "verified_email"
    invitation = "invitation"


class CarerAccount(Base):
    """A person's own account (issuer + subject) that is this carer in one school.

    An office's unlink is kept (``unlinked_at``), not deleted: the address alone never links that
    account to that carer again; only a new invitation does.
    """

    __tablename__ = "carer_account"
    __table_args__ = (UniqueConstraint("issuer", "subject", "guardian_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The issuer's name in the identity file ("hallpass-dev" for the dev issuer).
    issuer: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(255))
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guardian.id"), index=True)
    how: Mapped[CarerAccountHow] = mapped_column(enum_column(CarerAccountHow, "carer_account_how"))
    # The address the account had when it was linked: what the office recognises it by.
    email: Mapped[str | None] = mapped_column(String(320))
    linked_at: Mapped[dt.datetime]
    linked_by: Mapped[str] = mapped_column(String(200))
    unlinked_at: Mapped[dt.datetime | None]
    unlinked_by: Mapped[str | None] = mapped_column(String(200))


class CarerInvitation(Base):
    """A one-time code the school gave a carer to link their own account. Only its hash is kept."""

    __tablename__ = "carer_invitation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guardian.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    # A newer code for the same carer replaces this one.
    revoked_at: Mapped[dt.datetime | None]
    redeemed_at: Mapped[dt.datetime | None]
    redeemed_by_issuer: Mapped[str | None] = mapped_column(String(100))
    redeemed_by_subject: Mapped[str | None] = mapped_column(String(255))


class ConsentEvidence(Base):
    """A scan of the signed paper form (or a photo of it), kept with the record it proves (C10).

    The record itself is never updated; the scan points at it. Kept in the database so a record
    and its proof are backed up, restored and erased together.
    """

    __tablename__ = "consent_evidence"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    record_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_record.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[dt.datetime]


class ConsentRequestStatus(StrEnum):
    open = "open"
    closed = "closed"


class ConsentRequest(Base):
    """The school asking the carers of a class, a year or the whole school for chosen purposes."""

    __tablename__ = "consent_request"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    purpose_codes: Mapped[list[Any]] = mapped_column(JSON)
    # Who was asked, as chosen: {"class_ids": [...], "year_groups": [...], "whole_school": bool}.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[ConsentRequestStatus] = mapped_column(
        enum_column(ConsentRequestStatus, "consent_request_status")
    )
    # Mail rounds: 1 is the first email, each reminder adds one.
    rounds: Mapped[int] = mapped_column(Integer)
    closes_at: Mapped[dt.datetime | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[dt.datetime | None]


class ConsentRequestPupil(Base):
    """A pupil the request is about, with their class when it was sent (progress per class)."""

    __tablename__ = "consent_request_pupil"

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consent_request.id"), primary_key=True
    )
    pupil_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pupil.id"), primary_key=True)
    class_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("school_class.id"))


class ConsentRequestCarer(Base):
    """A carer asked: the address written to and when; their links are below."""

    __tablename__ = "consent_request_carer"
    __table_args__ = (UniqueConstraint("request_id", "guardian_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_request.id"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"))
    guardian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("guardian.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    last_round_mailed: Mapped[int] = mapped_column(Integer)
    mailed_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]


class ConsentRequestLink(Base):
    """One personal link mailed to a carer. Only the hash of its secret is kept; each round's
    email carries a fresh link and earlier ones keep working until the request closes."""

    __tablename__ = "consent_request_link"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    carer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_request_carer.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    round: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]


class ImportStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class PupilImport(Base):
    """An MIS export being imported in the background, with how far it has got (all rows land or
    none do; the progress is what the office's progress bar shows)."""

    __tablename__ = "pupil_import"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    status: Mapped[ImportStatus] = mapped_column(enum_column(ImportStatus, "import_status"))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    stage: Mapped[str] = mapped_column(String(20))
    done: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    # The file until the import finishes; emptied then, the summary or problems stay.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    problems: Mapped[list[Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
