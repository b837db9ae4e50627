"""comms: a report of an offensive message can be marked handled

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:06:12.071244

The DSL or head marks a report of an offensive message handled (E10): who, when, what was done.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hallpass_kit.db

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('offensive_report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('offensive_report', schema=None) as batch_op:
        batch_op.drop_column('resolution')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('resolved_by')

