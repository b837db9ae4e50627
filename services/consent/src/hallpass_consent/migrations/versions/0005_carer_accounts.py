"""consent: carers' own accounts, linked to their records by verified email or invitation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 10:00:00.000000

Parents sign in with their own accounts (an issuer of the identity file and its subject). Each
link says which carer record the account is in one school and how it came to be; an invitation
keeps only the hash of its one-time code. Guardians are found by lower-cased address in every
school, so that lookup gets an expression index (SQLite and PostgreSQL both have them).
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
    op.create_table('carer_account',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('issuer', sa.String(length=100), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('guardian_id', sa.Uuid(), nullable=False),
    sa.Column('how', sa.Enum('verified_email', 'invitation', name='carer_account_how', native_enum=False, length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('linked_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('linked_by', sa.String(length=200), nullable=False),
    sa.Column('unlinked_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('unlinked_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], name=op.f('fk_carer_account_guardian_id_guardian')),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_carer_account_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carer_account')),
    sa.UniqueConstraint('issuer', 'subject', 'guardian_id', name=op.f('uq_carer_account_issuer_subject_guardian_id')),
    )
    with op.batch_alter_table('carer_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carer_account_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_carer_account_school_id'), ['school_id'], unique=False)

    op.create_table('carer_invitation',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('guardian_id', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('redeemed_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('redeemed_by_issuer', sa.String(length=100), nullable=True),
    sa.Column('redeemed_by_subject', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], name=op.f('fk_carer_invitation_guardian_id_guardian')),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_carer_invitation_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carer_invitation')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_carer_invitation_code_hash')),
    )
    with op.batch_alter_table('carer_invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carer_invitation_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_carer_invitation_school_id'), ['school_id'], unique=False)

    op.create_index('ix_guardian_email_lower', 'guardian', [sa.text('lower(email)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_guardian_email_lower', table_name='guardian')
    with op.batch_alter_table('carer_invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_carer_invitation_school_id'))
        batch_op.drop_index(batch_op.f('ix_carer_invitation_guardian_id'))

    op.drop_table('carer_invitation')
    with op.batch_alter_table('carer_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_carer_account_school_id'))
        batch_op.drop_index(batch_op.f('ix_carer_account_guardian_id'))

    op.drop_table('carer_account')
