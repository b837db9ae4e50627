"""consent: purpose wording in Welsh, scans of signed forms, consent requests with personal links, background imports

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:42:48.007582

Each purpose version gains its Welsh words and each record the language its carer was shown.
Scans of signed forms are kept beside the records they prove. A consent request keeps the pupils
it is about (with their class, for progress), the carers asked and only the hashes of their
personal links. An import of the MIS export can run in the background with its progress kept.
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
    op.create_table('consent_request',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('purpose_codes', sa.JSON(), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('open', 'closed', name='consent_request_status', native_enum=False, length=32), nullable=False),
    sa.Column('rounds', sa.Integer(), nullable=False),
    sa.Column('closes_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_by', sa.String(length=200), nullable=True),
    sa.Column('closed_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_consent_request_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_request'))
    )
    with op.batch_alter_table('consent_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_request_school_id'), ['school_id'], unique=False)

    op.create_table('pupil_import',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', name='import_status', native_enum=False, length=32), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('problems', sa.JSON(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_pupil_import_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pupil_import'))
    )
    with op.batch_alter_table('pupil_import', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pupil_import_school_id'), ['school_id'], unique=False)

    op.create_table('consent_request_carer',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('guardian_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('last_round_mailed', sa.Integer(), nullable=False),
    sa.Column('mailed_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], name=op.f('fk_consent_request_carer_guardian_id_guardian')),
    sa.ForeignKeyConstraint(['request_id'], ['consent_request.id'], name=op.f('fk_consent_request_carer_request_id_consent_request')),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_consent_request_carer_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_request_carer')),
    sa.UniqueConstraint('request_id', 'guardian_id', name=op.f('uq_consent_request_carer_request_id_guardian_id'))
    )
    with op.batch_alter_table('consent_request_carer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_request_carer_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_request_carer_request_id'), ['request_id'], unique=False)

    op.create_table('consent_request_link',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('carer_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('issued_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['carer_id'], ['consent_request_carer.id'], name=op.f('fk_consent_request_link_carer_id_consent_request_carer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_request_link')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_consent_request_link_token_hash'))
    )
    with op.batch_alter_table('consent_request_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_request_link_carer_id'), ['carer_id'], unique=False)

    op.create_table('consent_request_pupil',
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('pupil_id', sa.Uuid(), nullable=False),
    sa.Column('class_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['class_id'], ['school_class.id'], name=op.f('fk_consent_request_pupil_class_id_school_class')),
    sa.ForeignKeyConstraint(['pupil_id'], ['pupil.id'], name=op.f('fk_consent_request_pupil_pupil_id_pupil')),
    sa.ForeignKeyConstraint(['request_id'], ['consent_request.id'], name=op.f('fk_consent_request_pupil_request_id_consent_request')),
    sa.PrimaryKeyConstraint('request_id', 'pupil_id', name=op.f('pk_consent_request_pupil'))
    )
    op.create_table('consent_evidence',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('school_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.Uuid(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=200), nullable=False),
    sa.Column('uploaded_at', hallpass_kit.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['consent_record.id'], name=op.f('fk_consent_evidence_record_id_consent_record')),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_consent_evidence_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_evidence'))
    )
    with op.batch_alter_table('consent_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_evidence_record_id'), ['record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_evidence_school_id'), ['school_id'], unique=False)

    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wording_language', sa.String(length=8), server_default='en', nullable=False))

    with op.batch_alter_table('purpose_wording', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_cy', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('text_cy_sha256', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('purpose_wording', schema=None) as batch_op:
        batch_op.drop_column('text_cy_sha256')
        batch_op.drop_column('text_cy')

    with op.batch_alter_table('consent_record', schema=None) as batch_op:
        batch_op.drop_column('wording_language')

    with op.batch_alter_table('consent_evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_evidence_school_id'))
        batch_op.drop_index(batch_op.f('ix_consent_evidence_record_id'))

    op.drop_table('consent_evidence')
    op.drop_table('consent_request_pupil')
    with op.batch_alter_table('consent_request_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_request_link_carer_id'))

    op.drop_table('consent_request_link')
    with op.batch_alter_table('consent_request_carer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_request_carer_request_id'))
        batch_op.drop_index(batch_op.f('ix_consent_request_carer_guardian_id'))

    op.drop_table('consent_request_carer')
    with op.batch_alter_table('pupil_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pupil_import_school_id'))

    op.drop_table('pupil_import')
    with op.batch_alter_table('consent_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_request_school_id'))

    op.drop_table('consent_request')
