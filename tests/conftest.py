"""Shared fixtures: every database test runs on SQLite and, when HALLPASS_TEST_POSTGRES_URL is set,
on PostgreSQL too. Schemas are built by running the service's migrations, once per session."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_consent import migrations
from hallpass_consent.app import create_app
from hallpass_consent.models import Base
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, Role, TokenVerifier
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings, Environment
from tests import databases
from tests.databases import BACKENDS

SCHOOL = "oakfield"
OTHER_SCHOOL = "riverside"
# Two multi-academy trusts of two schools each: the test school and its sister school in one,
# the other school and its sister in the other.
TRUST = "northway"
SISTER_SCHOOL = "ashgrove"
OTHER_TRUST = "brookvale"
OTHER_SISTER_SCHOOL = "hillcrest"
TRUSTS = {TRUST: (SCHOOL, SISTER_SCHOOL), OTHER_TRUST: (OTHER_SCHOOL, OTHER_SISTER_SCHOOL)}

Headers = dict[str, str]


@pytest.fixture(scope="session")
def issuer() -> DevIssuer:
    return DevIssuer.generate("hallpass-dev", "hallpass")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("template"), "consent.db", migrations.upgrade
    )


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of our own per test worker, migrated once; tables are emptied per test."""
    with databases.postgres_database("consent", migrations.upgrade) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def consent_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = databases.sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    else:
        database = databases.emptied(request.getfixturevalue("postgres_database"), Base.metadata)
    yield database
    database.dispose()


@pytest.fixture
def common_settings(tmp_path: Path) -> CommonSettings:
    return CommonSettings(env=Environment.test, data_dir=tmp_path / "data")


def write_trusts_identity_file(directory: Path) -> Path:
    """An identity file naming the two test trusts and no issuer (the dev issuer signs)."""
    lines = []
    for trust, schools in TRUSTS.items():
        lines += [f"[trusts.{trust}]", f"schools = {json.dumps(list(schools))}", ""]
    path = directory / "identity.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def trust_settings(tmp_path: Path) -> CommonSettings:
    """Common settings whose identity file names the two test trusts: a module that overrides
    ``common_settings`` with this one lets trust officers' tokens into every app it builds."""
    return CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        identity_file=write_trusts_identity_file(tmp_path),
    )


def build_consent_app(database: Database, issuer: DevIssuer, common: CommonSettings) -> FastAPI:
    """The consent app on a migrated test database, tokens from ``issuer``, no background work."""
    return create_app(
        common=common,
        settings=ConsentSettings(),
        verifier=TokenVerifier(common, key_set=issuer.key_set()),
        database=database,
        run_background=False,
        migrate=False,
    )


@pytest.fixture
def consent_app(
    consent_db: Database, issuer: DevIssuer, common_settings: CommonSettings
) -> FastAPI:
    return build_consent_app(consent_db, issuer, common_settings)


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


TrustTokenFactory = Callable[..., Headers]


@pytest.fixture
def trust_auth(issuer: DevIssuer) -> TrustTokenFactory:
    """``trust_auth("trust_dpo")`` → headers for that trust role of ``TRUST``; the token names
    the trust's first school (none with ``named_school=False``: the caller must choose), and
    ``acting_for`` names a school in ``X-Hallpass-School``."""

    def make(
        role: Role | str,
        *,
        trust: str = TRUST,
        acting_for: str | None = None,
        sub: str | None = None,
        named_school: bool = True,
    ) -> Headers:
        school = TRUSTS[trust][0] if named_school else None
        token = issuer.issue(
            sub=sub or f"{role}@{trust}",
            school=school,
            roles=[role],
            email=f"{role}@{trust}.org.uk",
            extra={"trust": trust},
        )
        headers = {"Authorization": f"Bearer {token}"}
        if acting_for is not None:
            headers[SCHOOL_HEADER] = acting_for
        return headers

    return make
