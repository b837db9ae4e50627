"""Kit tables that live in every service's own database: audit chain, outbox, idempotency."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from hallpass_kit.db import UTCDateTime


@dataclass(frozen=True)
class KitTables:
    audit_entry: Table
    outbox_event: Table
    consumed_event: Table
    idempotency_record: Table
    webhook_subscription: Table
    webhook_subscriber: Table
    webhook_delivery: Table


def define_kit_tables(metadata: MetaData) -> KitTables:
    """Declare the kit's tables on a service's metadata so its migrations own them."""
    audit_entry = Table(
        "audit_entry",
        metadata,
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        Column("recorded_at", UTCDateTime(), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("school", String(64), nullable=True, index=True),
        Column("action", String(100), nullable=False),
        Column("target", String(200), nullable=True),
        Column("outcome", String(40), nullable=False),
        Column("details", Text(), nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False, unique=True),
        # HMAC of ``hash`` under the service's audit key: an entry without it was not appended
        # by the service (see checkpoints.py). Empty on entries written before seals existed.
        Column("seal", String(64), nullable=True),
        # The chain starts at 1; an insert trigger (audit.contiguous_triggers) keeps it gapless.
        CheckConstraint("seq >= 1", name="seq_from_one"),
    )
    outbox_event = Table(
        "outbox_event",
        metadata,
        Column("id", Uuid(), primary_key=True),
        Column("school", String(64), nullable=False),
        Column("type", String(100), nullable=False),
        Column("payload", JSON(), nullable=False),
        Column("occurred_at", UTCDateTime(), nullable=False),
        Column("dispatched_at", UTCDateTime(), nullable=True, index=True),
        Column("attempts", Integer(), nullable=False, default=0),
        Column("next_attempt_at", UTCDateTime(), nullable=False),
        Column("last_error", Text(), nullable=True),
        # The job engine's claim (jobs.py): a dispatcher that dies mid-delivery leaves a lease
        # that lapses; an event that fails every attempt is set aside as a dead letter.
        Column("claimed_by", String(100), nullable=True),
        Column("claimed_until", UTCDateTime(), nullable=True),
        Column("dead_at", UTCDateTime(), nullable=True),
    )
    consumed_event = Table(
        "consumed_event",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("event_id", Uuid(), nullable=False),
        Column("consumed_at", UTCDateTime(), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id"),
    )
    idempotency_record = Table(
        "idempotency_record",
        metadata,
        Column("school", String(64), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer(), nullable=False),
        Column("response", JSON(), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, index=True),
        PrimaryKeyConstraint("school", "actor", "key"),
    )
    return KitTables(
        audit_entry,
        outbox_event,
        consumed_event,
        idempotency_record,
        *_define_webhook_tables(metadata),
    )


def _define_webhook_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    # A school's own subscribers (its CMS), made through the admin API. Deployment-wide ones
    # (media hearing consent.changed) come from settings and have no row here.
    webhook_subscription = Table(
        "webhook_subscription",
        metadata,
        Column("id", Uuid(), primary_key=True),
        Column("school", String(64), nullable=False),
        Column("name", String(100), nullable=False),
        Column("url", String(2000), nullable=False),
        Column("events", JSON(), nullable=False),
        Column("secret", String(200), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("created_by", String(200), nullable=False),
        UniqueConstraint("school", "name"),
    )
    # How each subscriber is faring, by subscriber key (``settings:<name>`` or
    # ``subscription:<id>``): what an operator reads before replaying dead letters.
    webhook_subscriber = Table(
        "webhook_subscriber",
        metadata,
        Column("subscriber", String(140), primary_key=True),
        Column("consecutive_failures", Integer(), nullable=False),
        Column("last_delivered_at", UTCDateTime(), nullable=True),
        Column("last_failed_at", UTCDateTime(), nullable=True),
        Column("last_error", Text(), nullable=True),
    )
    # One row per event per subscriber. The body is kept whole so a dead letter can be replayed
    # after its outbox event has been purged.
    webhook_delivery = Table(
        "webhook_delivery",
        metadata,
        Column("id", Uuid(), primary_key=True),
        Column("event_id", Uuid(), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("school", String(64), nullable=False),
        Column("subscriber", String(140), nullable=False),
        Column("body", JSON(), nullable=False),
        Column("status", String(20), nullable=False),
        Column("attempts", Integer(), nullable=False),
        Column("next_attempt_at", UTCDateTime(), nullable=False),
        Column("last_error", Text(), nullable=True),
        # The job engine's claim (jobs.py): a sender that dies mid-delivery leaves a lease that
        # lapses, and the delivery is taken again.
        Column("claimed_by", String(100), nullable=True),
        Column("claimed_until", UTCDateTime(), nullable=True),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("finished_at", UTCDateTime(), nullable=True),
        # The outbox is delivered at least once: a second fan-out of one event adds nothing.
        UniqueConstraint("event_id", "subscriber"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "school", "status"),
    )
    return webhook_subscription, webhook_subscriber, webhook_delivery
