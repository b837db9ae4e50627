"""Test databases for any service: migrated once per session, fresh for every test.

SQLite: a migrated template file, copied per test. PostgreSQL: a database of our own per test
worker (and checkout), migrated once, its tables emptied per test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from hallpass_kit.db import Database

POSTGRES_URL = os.environ.get("HALLPASS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

Upgrade = Callable[[Database], None]


def worker() -> str:
    # The checkout's path is part of the name so two checkouts can test on one server at once.
    checkout = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:6]
    # HALLPASS_TEST_WORKER separates test runs started side by side in one checkout.
    run = os.environ.get("HALLPASS_TEST_WORKER", "")
    return f"{checkout}{run}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def sqlite_template(folder: Path, file_name: str, upgrade: Upgrade) -> Path:
    """A SQLite file with the service's schema, built by its migrations."""
    path = folder / file_name
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


@contextmanager
def postgres_database(name: str, upgrade: Upgrade) -> Iterator[str]:
    """``hallpass_test_<name>_<worker>``, migrated; dropped when the block ends."""
    assert POSTGRES_URL is not None
    database_name = f"hallpass_test_{name}_{worker()}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{database_name}"'))
    url = make_url(POSTGRES_URL).set(database=database_name).render_as_string(hide_password=False)
    database = Database(url)
    upgrade(database)
    database.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_copy(template: Path, folder: Path) -> Database:
    """A test's own copy of a migrated SQLite template."""
    path = folder / template.name
    shutil.copyfile(template, path)
    return Database(f"sqlite:///{path}")


def emptied(url: str, metadata: MetaData) -> Database:
    """The per-worker PostgreSQL database with every table of ``metadata`` emptied."""
    database = Database(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    return database
