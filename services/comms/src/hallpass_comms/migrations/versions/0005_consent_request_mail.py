"""comms: one consent request email per carer per round

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:42:50.659378

The consent service announces each round of a consent request; this table makes sure each carer
gets one email per round however often the announcement is delivered.
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
    op.create_table('consent_request_mail',
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('guardian_id', sa.Uuid(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_consent_request_mail_message_id_message')),
    sa.PrimaryKeyConstraint('school_id', 'request_id', 'guardian_id', 'round', name=op.f('pk_consent_request_mail'))
    )


def downgrade() -> None:
    op.drop_table('consent_request_mail')
