"""consent: the job engine's claim and dead-letter columns

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 10:00:00.000000

The outbox is one queue of the kit's job engine (hallpass_kit.jobs): a dispatcher claims events
with a token and a lease, so any number of replicas deliver each event once, and an event that
fails every attempt is set aside as a dead letter.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hallpass_kit.db

revision: str = '0004'
down_revision: str | None = '0003'
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


def downgrade() -> None:
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_column('dead_at')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')
