"""The audit trail fixtures the kit's audit tests share: one set of migrated databases per test
worker (PostgreSQL names are per worker, so two modules creating their own would drop each
other's), and a trail per service and backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.settings import CommonSettings, Environment
from tests import databases
from tests.databases import BACKENDS
from tests.kit.audit_trails import SERVICES, Trail, build_app, postgres_databases, sqlite_templates


@pytest.fixture(scope="session")
def audit_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sqlite_templates(tmp_path_factory.mktemp("audit-templates"))


@pytest.fixture(scope="session")
def audit_postgres() -> Iterator[dict[str, str]]:
    with postgres_databases() as urls:
        yield urls


@pytest.fixture
def audit_settings() -> dict[str, Any]:
    """Settings a module's trails run with beside the defaults (override it in the module)."""
    return {}


@pytest.fixture(
    params=[(service, backend) for service in SERVICES for backend in BACKENDS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def trail(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    issuer: DevIssuer,
    audit_settings: dict[str, Any],
) -> Iterator[Trail]:
    service, backend = request.param
    kind = SERVICES[service]
    if backend == "sqlite":
        template = request.getfixturevalue("audit_templates")[service]
        database = databases.sqlite_copy(template, tmp_path)
    else:
        url = request.getfixturevalue("audit_postgres")[service]
        database = databases.emptied(url, kind.metadata)
    common = CommonSettings(env=Environment.test, data_dir=tmp_path / "data", **audit_settings)
    app = build_app(kind, database, common, TokenVerifier(common, key_set=issuer.key_set()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Trail(kind, database, client, common)
    database.dispose()
