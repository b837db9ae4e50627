"""A media app whose pictures are checked and scanned by real worker processes (no in-process
scanner), as a running service does. ``pooled_settings`` can be parametrized indirectly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.context import MediaContext, media_context
from hallpass_media.settings import MediaSettings
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.media.builders import MediaWorld

# No OCR (the face and metadata parts are what a hostile file meets first, and OCR's models
# would only slow every worker start), one worker (the machine is shared), generous time.
POOLED = MediaSettings(
    ocr=False,
    scan_workers=1,
    scan_worker_memory_mb=2048,
    scan_seconds=120,
    scan_wait_seconds=120,
)


@pytest.fixture
def pooled_settings(request: pytest.FixtureRequest) -> MediaSettings:
    settings: MediaSettings = getattr(request, "param", POOLED)
    return settings


@pytest.fixture
def pooled_app(
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    pooled_settings: MediaSettings,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=pooled_settings,
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
    )


@pytest.fixture
def pooled_client(pooled_app: FastAPI) -> Iterator[TestClient]:
    # Leaving the block runs the app's shutdown, which stops its scan workers.
    with TestClient(pooled_app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def pooled_world(
    pooled_client: TestClient, school: SchoolBuilder, auth: TokenFactory, pooled_app: FastAPI
) -> MediaWorld:
    return MediaWorld(pooled_client, school, auth, pooled_app)


@pytest.fixture
def pooled_media(pooled_world: MediaWorld) -> MediaContext:
    return media_context(pooled_world.context)


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
