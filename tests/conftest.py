"""Shared fixtures: every database test runs on SQLite and, when HALLPASS_TEST_POSTGRES_URL is set,
on PostgreSQL too. Schemas are built by running the service's migrations, once per session."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hallpass_consent import migrations
from hallpass_consent.app import create_app
from hallpass_consent.models import Base
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, Role, TokenVerifier
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings, Environment

POSTGRES_URL = os.environ.get("HALLPASS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
SCHOOL = "oakfield"
OTHER_SCHOOL = "riverside"

Headers = dict[str, str]


def _worker() -> str:
    # The checkout's path is part of the name so two checkouts can test on one server at once.
    checkout = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:6]
    return f"{checkout}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def issuer() -> DevIssuer:
    return DevIssuer.generate("hallpass-dev", "hallpass")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "consent.db"
    database = Database(f"sqlite:///{path}")
    migrations.upgrade(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of our own per test worker, migrated once; tables are emptied per test."""
    assert POSTGRES_URL is not None
    name = f"hallpass_test_consent_{_worker()}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrations.upgrade(database)
    database.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def consent_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "consent.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    url: str = request.getfixturevalue("postgres_database")
    database = Database(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield database
    database.dispose()


@pytest.fixture
def common_settings(tmp_path: Path) -> CommonSettings:
    return CommonSettings(env=Environment.test, data_dir=tmp_path / "data")


@pytest.fixture
def consent_app(
    consent_db: Database, issuer: DevIssuer, common_settings: CommonSettings
) -> FastAPI:
    verifier = TokenVerifier(common_settings, key_set=issuer.key_set())
    return create_app(
        common=common_settings,
        settings=ConsentSettings(),
        verifier=verifier,
        database=consent_db,
        run_background=False,
        migrate=False,
    )


@pytest.fixture
def client(consent_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(consent_app, raise_server_exceptions=False) as test_client:
        yield test_client


TokenFactory = Callable[..., Headers]


@pytest.fixture
def auth(issuer: DevIssuer) -> TokenFactory:
    """``auth("office")`` → headers with a bearer token for that role in the test school."""

    def make(
        *roles: Role | str,
        school: str = SCHOOL,
        guardian: uuid.UUID | str | None = None,
        sub: str | None = None,
    ) -> Headers:
        subject = sub or f"{roles[0]}@{school}"
        token = issuer.issue(
            sub=subject,
            school=school,
            roles=roles,
            guardian_id=guardian,
            email=f"{roles[0]}@{school}.sch.uk",
        )
        return {"Authorization": f"Bearer {token}"}

    return make
