"""The migration builds exactly the tables the models describe (models and 0001 kept in step)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hallpass_comms.models import Base
from hallpass_kit.db import Database


def test_the_migrated_schema_matches_the_models(comms_db: Database) -> None:
    with comms_db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert differences == []
