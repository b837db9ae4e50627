"""media: count scan attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:10:00.000000

A picture whose scan kills or exhausts its worker must not be claimed again and again: each claim
counts an attempt, and an item past the limit is marked failed instead of being re-claimed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('media_item', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('scan_attempts', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade() -> None:
    with op.batch_alter_table('media_item', schema=None) as batch_op:
        batch_op.drop_column('scan_attempts')
