"""consent: audit chain from seq 1 without gaps, entries sealed

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 09:00:00.000000

The database refuses an audit entry with seq below 1 (CHECK) or any entry but the next one: seq
the last seq + 1 and prev_hash the last entry's hash (insert trigger). Entries get a seal column:
the service's HMAC of their hash, so an entry appended straight into the database is told apart.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hallpass_kit.audit import append_only_triggers, contiguous_triggers, drop_contiguous_triggers


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal', sa.String(length=64), nullable=True))
        batch_op.create_check_constraint(op.f('ck_audit_entry_seq_from_one'), 'seq >= 1')
    if dialect == 'sqlite':
        # SQLite adds a CHECK by rebuilding the table, and the rebuild drops its triggers.
        for statement in append_only_triggers(dialect):
            op.execute(statement)
    for statement in contiguous_triggers(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_contiguous_triggers(dialect):
        op.execute(statement)
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_audit_entry_seq_from_one'), type_='check')
        batch_op.drop_column('seal')
    if dialect == 'sqlite':
        for statement in append_only_triggers(dialect):
            op.execute(statement)
