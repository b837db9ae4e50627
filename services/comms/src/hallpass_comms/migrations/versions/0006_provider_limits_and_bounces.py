"""comms: provider sending limits, send forecasts and bounces

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:47:43.488331

Every delivery worker counts one mailbox's sends in mail_send_slot and paces it through its
mail_pace row; message_forecast keeps when a send's last envelope was expected to leave;
mail_bounce keeps each recipient line of a delivery status notification matched to an envelope.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hallpass_kit.db


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('mail_pace',
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('pace', sa.Float(), nullable=False),
    sa.Column('paced_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('base_per_minute', sa.Integer(), nullable=True),
    sa.Column('held_until', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('throttles', sa.Integer(), nullable=False),
    sa.Column('updated_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('mailbox', name=op.f('pk_mail_pace'))
    )
    op.create_table('mail_send_slot',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('reserved_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_send_slot'))
    )
    with op.batch_alter_table('mail_send_slot', schema=None) as batch_op:
        batch_op.create_index('ix_mail_send_slot_mailbox_at', ['mailbox', 'reserved_at'], unique=False)

    op.create_table('message_forecast',
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('expected_last_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('computed_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_forecast_message_id_message')),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_message_forecast'))
    )
    op.create_table('mail_bounce',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('report_id', sa.String(length=255), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('diagnostic', sa.Text(), nullable=True),
    sa.Column('received_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], name=op.f('fk_mail_bounce_delivery_id_delivery')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_bounce')),
    sa.UniqueConstraint('report_id', 'recipient', name=op.f('uq_mail_bounce_report_id_recipient'))
    )
    with op.batch_alter_table('mail_bounce', schema=None) as batch_op:
        batch_op.create_index('ix_mail_bounce_delivery', ['delivery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mail_bounce', schema=None) as batch_op:
        batch_op.drop_index('ix_mail_bounce_delivery')

    op.drop_table('mail_bounce')
    op.drop_table('message_forecast')
    with op.batch_alter_table('mail_send_slot', schema=None) as batch_op:
        batch_op.drop_index('ix_mail_send_slot_mailbox_at')

    op.drop_table('mail_send_slot')
    op.drop_table('mail_pace')
