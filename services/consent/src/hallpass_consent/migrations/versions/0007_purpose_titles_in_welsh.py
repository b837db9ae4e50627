"""consent: purpose titles in Welsh

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:52:56.194479

A carer reading in Welsh sees each purpose's title in Welsh as well as its words. Schools already
set up get the catalogue's Welsh titles for the purposes they started with (the titles are fixed
per code; a school never renames them), so their Welsh pages change at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The catalogue's Welsh titles as they were when this migration was written (a migration never
# reads application code, which moves on).
WELSH_TITLES = {
    "website_photo": "Lluniau a fideo ar wefan yr ysgol",
    "social_media_photo": "Lluniau a fideo ar gyfryngau cymdeithasol swyddogol yr ysgol",
    "print_publication": "Cyhoeddiadau printiedig a'r prosbectws",
    "newspaper_named": "Papur newydd lleol, gydag enw fy mhlentyn",
    "livestream": "Digwyddiadau a ffrydir yn fyw",
    "video_recording_publish": "Cyhoeddi recordiadau o wersi a chynadleddau fideo",
    "pupil_work_publish": "Cyhoeddi gwaith fy mhlentyn",
    "external_agency": "Rhannu ag asiantaethau allanol",
    "internal_assessment": "Tystiolaeth asesu fewnol (dyddiaduron dysgu)",
}


def upgrade() -> None:
    with op.batch_alter_table('purpose', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title_cy', sa.String(length=200), nullable=True))

    purpose = sa.table('purpose', sa.column('code', sa.String), sa.column('title_cy', sa.String))
    for code, title in WELSH_TITLES.items():
        op.execute(purpose.update().where(purpose.c.code == code).values(title_cy=title))


def downgrade() -> None:
    with op.batch_alter_table('purpose', schema=None) as batch_op:
        batch_op.drop_column('title_cy')
