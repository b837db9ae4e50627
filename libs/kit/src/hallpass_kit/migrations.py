"""Runs a service's Alembic migrations against its database (start-up, CLI and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hallpass_kit.db import Database


def alembic_config(script_location: Path, database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database.url.render_as_string(hide_password=False))
    return config


def upgrade(script_location: Path, database: Database, revision: str = "head") -> None:
    config = alembic_config(script_location, database)
    with database.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
