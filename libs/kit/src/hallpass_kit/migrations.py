"""Runs a service's Alembic migrations against its database (start-up, CLI and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, create_engine, text

from hallpass_kit.db import Database


def alembic_config(script_location: Path, database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database.url.render_as_string(hide_password=False))
    return config


# Any constant will do: PostgreSQL's advisory locks are per database, one database per service.
_MIGRATION_LOCK = 7_242_115_001


def upgrade(script_location: Path, database: Database, revision: str = "head") -> None:
    config = alembic_config(script_location, database)
    with database.engine.connect() as connection:
        if database.dialect == "postgresql":
            # Replicas and migrate jobs may start together: one migrates, the others wait and
            # then find nothing left to do, instead of racing to create the same tables.
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if database.dialect == "postgresql":
                connection.rollback()
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()


def run_environment(target_metadata: MetaData) -> None:
    """The body of every service's Alembic ``env.py``: migrate over the connection ``upgrade``
    hands in, or over one of its own from the configured URL (the alembic command line)."""
    from alembic import context

    def run_with(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as own:
        run_with(own)
        own.commit()
