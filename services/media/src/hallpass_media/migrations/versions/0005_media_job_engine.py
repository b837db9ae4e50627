"""media: the job engine's claim and dead-letter columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 10:00:00.000000

The outbox and the scans are queues of the kit's job engine (hallpass_kit.jobs): a claim carries
a token and a lease, so any number of replicas take each job once and a crashed worker's job is
taken again when its lease lapses; a job that fails every attempt is set aside as a dead letter.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hallpass_kit.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column('claimed_until', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column('dead_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table('media_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scan_claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column(
                'scan_claimed_until', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column('scan_due_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column('scan_dead_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('media_item', schema=None) as batch_op:
        batch_op.drop_column('scan_dead_at')
        batch_op.drop_column('scan_due_at')
        batch_op.drop_column('scan_claimed_until')
        batch_op.drop_column('scan_claimed_by')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_column('dead_at')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')
