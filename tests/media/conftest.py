"""Media test fixtures: a media app beside the consent app, on the same database backend.

The media database follows ``consent_db``'s backend (SQLite or PostgreSQL), so each test runs
once per backend, not once per pair of backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media import migrations
from hallpass_media.app import create_app
from hallpass_media.models import Base
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import LocalStorage
from tests import databases
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.media.builders import MediaWorld
from tests.media.seaweed import S3Server, start_seaweed


@pytest.fixture(scope="session")
def media_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("media-template"), "media.db", migrations.upgrade
    )


@pytest.fixture(scope="session")
def media_postgres_database() -> Iterator[str]:
    with databases.postgres_database("media", migrations.upgrade) as url:
        yield url


@pytest.fixture
def media_db(
    request: pytest.FixtureRequest, consent_db: Database, tmp_path: Path
) -> Iterator[Database]:
    if consent_db.dialect == "sqlite":
        database = databases.sqlite_copy(request.getfixturevalue("media_sqlite_template"), tmp_path)
    else:
        database = databases.emptied(
            request.getfixturevalue("media_postgres_database"), Base.metadata
        )
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    """Faces, metadata and hash without OCR: fast, for tests where OCR is not the subject."""
    return Scanner(ocr=False)


@pytest.fixture(scope="session")
def ocr_scanner() -> Scanner:
    return Scanner(ocr=True)


@pytest.fixture
def consent_client(issuer: DevIssuer, consent_app: FastAPI) -> ServiceClient:
    return ServiceClient(
        name="consent",
        app=consent_app,
        base_url="http://consent.internal",
        tokens=DevServiceTokens(issuer, "media"),
    )


@pytest.fixture
def media_settings() -> MediaSettings:
    return MediaSettings(ocr=False)


@pytest.fixture
def media_app(
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    media_settings: MediaSettings,
    scanner: Scanner,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=media_settings,
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )


@pytest.fixture
def media_client(media_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(media_app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def storage(common_settings: CommonSettings) -> LocalStorage:
    """The app's own store (local mode), for looking at what was stored."""
    return LocalStorage(common_settings.data_dir / "media")


@pytest.fixture
def school(client: TestClient, auth: TokenFactory) -> SchoolBuilder:
    builder = SchoolBuilder(client, auth)
    builder.set_up()
    return builder


@pytest.fixture
def world(
    media_client: TestClient,
    school: SchoolBuilder,
    auth: TokenFactory,
    media_app: FastAPI,
) -> MediaWorld:
    return MediaWorld(media_client, school, auth, media_app)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from start_seaweed(tmp_path_factory.mktemp("seaweed"))
