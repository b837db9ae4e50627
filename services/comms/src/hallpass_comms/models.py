"""The comms service's own tables. No other service reads them.

A message is what a member of staff wrote; a delivery is one envelope of it (one family, one member
of staff or one outside organisation), with its own status, Message-ID and attempts. Splitting them
keeps a class send from ever putting two families' addresses in one envelope (E9) and lets each
envelope be retried, held or approved on its own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hallpass_kit.db import UTCDateTime, enum_column, new_metadata
from hallpass_kit.tables import define_kit_tables


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


kit_tables = define_kit_tables(Base.metadata)


class CcPolicy(StrEnum):
    """Who leadership copies are sent to (E1)."""

    head = "head"
    deputy = "deputy"
    both = "both"
    # One of them; the other when the first is the sender or has no address.
    head_else_deputy = "head_else_deputy"
    deputy_else_head = "deputy_else_head"


class SensitiveDelivery(StrEnum):
    """How a sensitive message reaches a carer (E5): never its text in an email."""

    # The email carries a notice and a link to the authenticated, expiring secure view.
    secure_link = "secure_link"


class Sensitivity(StrEnum):
    normal = "normal"
    sensitive = "sensitive"


class MessageKind(StrEnum):
    staff_message = "staff_message"
    pastoral_reply = "pastoral_reply"
    renewal_reminder = "renewal_reminder"
    report_notice = "report_notice"
    concern_notice = "concern_notice"  # tells the DSL a concern is waiting, never its words
    consent_request = "consent_request"  # a carer's personal link to answer the school's request


class Approval(StrEnum):
    not_needed = "not_needed"
    pending = "pending"
    approved = "approved"


class RecipientKind(StrEnum):
    family = "family"  # the carers of one pupil (or of siblings) at this school
    staff = "staff"  # an address on one of the school's own domains
    external = "external"  # anyone else: an outside organisation (E4)


class DeliveryStatus(StrEnum):
    pending_approval = "pending_approval"  # waits for the head or deputy (E4)
    scheduled = "scheduled"  # held until due_at, the next school-day morning (E8)
    queued = "queued"  # due; the dispatcher will claim it
    sending = "sending"  # claimed by a dispatcher until claimed_until
    sent = "sent"
    failed = "failed"  # permanent failure (SMTP 5xx) or attempts exhausted
    bounced = "bounced"  # accepted, then reported undeliverable by a DSN (RFC 3464)


class ConcernStatus(StrEnum):
    open = "open"
    answered = "answered"
    closed = "closed"


class MailSettings(Base):
    """One school's mail rules, set by the head or an admin."""

    __tablename__ = "mail_settings"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    domains: Mapped[list[Any]] = mapped_column(JSON)  # lower-case, e.g. ["oakfield.sch.uk"]
    head_address: Mapped[str | None] = mapped_column(String(320))
    deputy_address: Mapped[str | None] = mapped_column(String(320))
    dsl_address: Mapped[str | None] = mapped_column(String(320))  # E10 reports, E7 notices
    # The school's own account that system mail (renewal reminders, report notices) comes from.
    office_address: Mapped[str | None] = mapped_column(String(320))
    cc_policy: Mapped[CcPolicy] = mapped_column(enum_column(CcPolicy, "cc_policy"))
    timezone: Mapped[str] = mapped_column(String(64))
    school_day_start: Mapped[dt.time] = mapped_column(Time)
    school_day_end: Mapped[dt.time] = mapped_column(Time)
    morning_send_time: Mapped[dt.time] = mapped_column(Time)  # when held mail goes out (E8)
    school_days: Mapped[list[Any]] = mapped_column(JSON)  # ISO weekdays, 1 = Monday
    # [{"start": "2026-09-03", "end": "2026-10-23"}, ...]; empty means every school day is term.
    term_dates: Mapped[list[Any]] = mapped_column(JSON)
    external_needs_approval: Mapped[bool] = mapped_column(Boolean)
    sensitive_delivery: Mapped[SensitiveDelivery] = mapped_column(
        enum_column(SensitiveDelivery, "sensitive_delivery")
    )
    secure_view_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class Message(Base):
    """What a member of staff (or the system, for reminders) wrote, once."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_school_created", "school_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[MessageKind] = mapped_column(enum_column(MessageKind, "message_kind"))
    sender_sub: Mapped[str] = mapped_column(String(200))
    sender_address: Mapped[str] = mapped_column(String(320))  # from the token, never the body (E2)
    subject: Mapped[str] = mapped_column(String(200))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)  # already sanitised by the allow-list
    sensitivity: Mapped[Sensitivity] = mapped_column(enum_column(Sensitivity, "sensitivity"))
    urgent: Mapped[bool] = mapped_column(Boolean)
    approval: Mapped[Approval] = mapped_column(enum_column(Approval, "approval"))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[dt.datetime | None]
    # Set when E8 held it: the school-day morning it goes out.
    scheduled_for: Mapped[dt.datetime | None]
    concern_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("pastoral_concern.id"))
    created_at: Mapped[dt.datetime]


class Delivery(Base):
    """One envelope of a message: one family, one member of staff or one outside address."""

    __tablename__ = "delivery"
    __table_args__ = (
        # The dispatcher's claim query: due rows in status order.
        Index("ix_delivery_status_due", "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"), index=True)
    school_id: Mapped[str] = mapped_column(String(64), index=True)
    recipient_kind: Mapped[RecipientKind] = mapped_column(
        enum_column(RecipientKind, "recipient_kind")
    )
    # Carers of this envelope (family deliveries) and the pupils whose family it is (E3 history).
    guardian_ids: Mapped[list[Any]] = mapped_column(JSON)
    pupil_ids: Mapped[list[Any]] = mapped_column(JSON)
    to_addresses: Mapped[list[Any]] = mapped_column(JSON)
    cc_addresses: Mapped[list[Any]] = mapped_column(JSON)  # leadership, added by the server (E1)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
    due_at: Mapped[dt.datetime]  # not before; also the next attempt after a transient failure
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[dt.datetime | None]  # a crashed dispatcher's claim lapses here
    # Set when the envelope is given up (refused for good, or out of attempts): a dead letter.
    dead_at: Mapped[dt.datetime | None]
    # Stable per message and recipient: a resend after a crash carries the same id.
    message_id_header: Mapped[str] = mapped_column(String(255), unique=True)
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]


class FamilyMessage(Base):
    """Index of which messages concern which pupil's family (E3: kept and found per family)."""

    __tablename__ = "family_message"
    __table_args__ = (Index("ix_family_message_pupil", "school_id", "pupil_id"),)

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"), primary_key=True)
    pupil_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    school_id: Mapped[str] = mapped_column(String(64))


class PastoralConcern(Base):
    """A carer's concern in the pastoral inbox (E7): read only by the DSL and pastoral staff."""

    __tablename__ = "pastoral_concern"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(String(64), index=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(index=True)
    pupil_id: Mapped[uuid.UUID | None]
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[ConcernStatus] = mapped_column(enum_column(ConcernStatus, "concern_status"))
    created_at: Mapped[dt.datetime]


class OffensiveReport(Base):
    """A report of an offensive message (E10), passed to the DSL with its reference."""

    __tablename__ = "offensive_report"
    # References count per school and year, so two schools both have an R-2026-000001.
    __table_args__ = (UniqueConstraint("school_id", "reference"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    school_id: Mapped[str] = mapped_column(String(64), index=True)
    reference: Mapped[str] = mapped_column(String(32))
    reported_by: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("message.id"))
    received_from: Mapped[str | None] = mapped_column(String(320))  # sender of what was received
    description: Mapped[str] = mapped_column(Text)
    notice_message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("message.id"))
    created_at: Mapped[dt.datetime]
    # Handled by the designated staff: who, when and what was done (a report is never deleted).
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[dt.datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)


class RenewalReminder(Base):
    """One reminder per carer per expiring consent: the job runs daily and must not nag."""

    __tablename__ = "renewal_reminder"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    record_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the consent grant that lapses
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"))
    created_at: Mapped[dt.datetime]


class ConsentRequestMail(Base):
    """One email per carer per round of a consent request: a redelivered event never mails twice."""

    __tablename__ = "consent_request_mail"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    guardian_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"))
    created_at: Mapped[dt.datetime]


class MailPace(Base):
    """One sending mailbox's pace, shared by every delivery worker (docs/mail-delivery.md).

    The row is locked while a worker reserves a slot, so two workers never both take the last
    one. ``mailbox`` is the lower-cased From address, or ``*`` for the transport as a whole.
    After the provider throttles, ``pace`` (1 = full speed) is halved from ``paced_at`` and
    recovers by itself; nothing is sent from the mailbox before ``held_until``.
    """

    __tablename__ = "mail_pace"

    mailbox: Mapped[str] = mapped_column(String(320), primary_key=True)
    pace: Mapped[float] = mapped_column(Float, default=1.0)
    paced_at: Mapped[dt.datetime | None]
    # With no per-minute limit configured: the rate (per minute) seen when the provider
    # throttled, which the lowered pace is a share of.
    base_per_minute: Mapped[int | None] = mapped_column(Integer)
    held_until: Mapped[dt.datetime | None]
    throttles: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime]


class MailSendSlot(Base):
    """One envelope handed to the provider from a mailbox: the rolling windows count these."""

    __tablename__ = "mail_send_slot"
    __table_args__ = (Index("ix_mail_send_slot_mailbox_at", "mailbox", "reserved_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    mailbox: Mapped[str] = mapped_column(String(320))
    reserved_at: Mapped[dt.datetime]
    recipients: Mapped[int] = mapped_column(Integer)
    delivery_id: Mapped[uuid.UUID]


class MessageForecast(Base):
    """When a message's last envelope is expected to leave, as told to its sender at send time."""

    __tablename__ = "message_forecast"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"), primary_key=True)
    expected_last_at: Mapped[dt.datetime]
    computed_at: Mapped[dt.datetime]


class MailBounce(Base):
    """One recipient's line of a delivery status notification (RFC 3464) matched to an envelope.

    Failed lines turn the envelope ``bounced``; delayed ones are kept as news, not failures.
    """

    __tablename__ = "mail_bounce"
    __table_args__ = (
        UniqueConstraint("report_id", "recipient"),
        Index("ix_mail_bounce_delivery", "delivery_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("delivery.id"))
    school_id: Mapped[str] = mapped_column(String(64))
    # The report's own Message-ID, so a report read twice is recorded once.
    report_id: Mapped[str] = mapped_column(String(255))
    recipient: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(16))  # failed, delayed (RFC 3464 2.3.3)
    status: Mapped[str] = mapped_column(String(16))  # e.g. 5.1.1
    diagnostic: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime]
