"""comms: webhook subscriptions, subscriber state and deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 09:00:00.000000

Events leave the service as signed webhooks: a school's own subscribers (its CMS) are kept here,
each event gets one delivery row per matching subscriber (retried, then dead-lettered, replayable),
and each subscriber's run of failures is kept for the operator.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hallpass_kit.db


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_delivery',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('school', sa.String(length=64), nullable=False),
    sa.Column('subscriber', sa.String(length=140), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_until', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
    sa.UniqueConstraint('event_id', 'subscriber', name=op.f('uq_webhook_delivery_event_id_subscriber'))
    )
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_delivery_status'), ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_delivery_school'), ['school', 'status'], unique=False)

    op.create_table('webhook_subscriber',
    sa.Column('subscriber', sa.String(length=140), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('last_delivered_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_failed_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('subscriber', name=op.f('pk_webhook_subscriber'))
    )
    op.create_table('webhook_subscription',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('school', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('created_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscription')),
    sa.UniqueConstraint('school', 'name', name=op.f('uq_webhook_subscription_school_name'))
    )


def downgrade() -> None:
    op.drop_table('webhook_subscription')
    op.drop_table('webhook_subscriber')
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_school'))
        batch_op.drop_index(batch_op.f('ix_webhook_delivery_status'))

    op.drop_table('webhook_delivery')
