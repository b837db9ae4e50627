"""Comms fixtures: a comms database on the same backend as the consent one, a frozen clock, the
comms app calling the consent app in-process, and a school with mail settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_comms import migrations
from hallpass_comms.app import create_app
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.context import CommsContext
from hallpass_comms.delivery import DeliveryWorker, EmlFolderTransport
from hallpass_comms.models import Base
from hallpass_comms.settings import CommsSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from tests import databases
from tests.conftest import SCHOOL, TokenFactory
from tests.consent.builders import SchoolBuilder

# Wednesday 18 November 2026, 10:00 in London (GMT): in school hours, in term.
IN_HOURS = dt.datetime(2026, 11, 18, 10, 0, tzinfo=dt.UTC)
DOMAIN = f"{SCHOOL}.sch.uk"
HEAD = f"head@{DOMAIN}"
DEPUTY = f"deputy@{DOMAIN}"
DSL = f"dsl@{DOMAIN}"
OFFICE = f"office@{DOMAIN}"


class FrozenClock:
    """The comms service's clock, set by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def comms_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("comms-api-template"), "comms.db", migrations.upgrade
    )


@pytest.fixture(scope="session")
def comms_postgres_database() -> Iterator[str]:
    with databases.postgres_database("comms", migrations.upgrade) as url:
        yield url


@pytest.fixture
def comms_db(
    consent_db: Database, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Database]:
    """The comms database, on the backend the consent database of this test uses."""
    if consent_db.dialect == "sqlite":
        database = databases.sqlite_copy(request.getfixturevalue("comms_sqlite_template"), tmp_path)
    else:
        database = databases.emptied(
            request.getfixturevalue("comms_postgres_database"), Base.metadata
        )
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(IN_HOURS)


@pytest.fixture
def consent_client(consent_app: FastAPI, issuer: DevIssuer) -> ServiceClient:
    return ServiceClient(
        name="consent",
        app=consent_app,
        base_url="http://consent.internal",
        tokens=DevServiceTokens(issuer, "comms"),
    )


@pytest.fixture
def comms_consent(consent_client: ServiceClient) -> ConsentClient:
    """What comms asks the consent service, as its jobs ask it."""
    return ConsentClient(consent_client)


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def comms_app(
    comms_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    clock: FrozenClock,
    outbox: Path,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=CommsSettings(reminder_within_days=0),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(outbox),
        clock=clock,
    )


def delivery_worker(app: FastAPI) -> DeliveryWorker:
    """The app's mail sender, for tests that deliver what they sent."""
    context = app.state.hallpass
    assert isinstance(context, CommsContext)
    assert context.delivery_worker is not None
    return context.delivery_worker


@pytest.fixture
def comms(comms_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(comms_app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def school(client: TestClient, auth: TokenFactory) -> SchoolBuilder:
    """The school in the consent service, where its pupils and carers live."""
    builder = SchoolBuilder(client, auth)
    builder.set_up()
    return builder


def settings_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "domains": [DOMAIN],
        "head_address": HEAD,
        "deputy_address": DEPUTY,
        "dsl_address": DSL,
        "office_address": OFFICE,
        "cc_policy": "both",
        "timezone": "Europe/London",
        "school_day_start": "08:30",
        "school_day_end": "16:00",
        "morning_send_time": "08:00",
        "school_days": [1, 2, 3, 4, 5],
        "term_dates": [],
        "external_needs_approval": True,
        "secure_view_days": 14,
    }
    body.update(changes)
    return body


@pytest.fixture
def mail_settings(comms: TestClient, auth: TokenFactory) -> dict[str, Any]:
    response = comms.put("/v1/settings", json=settings_body(), headers=auth("head"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def headers_with_email(issuer: DevIssuer, role: str, email: str | None) -> dict[str, str]:
    """A token whose email claim is chosen by the test (a personal address, or none)."""
    token = issuer.issue(sub=f"{role}.other@{SCHOOL}", school=SCHOOL, roles=[role], email=email)
    return {"Authorization": f"Bearer {token}"}


def send(
    comms: TestClient, headers: dict[str, str], recipients: dict[str, Any], **fields: Any
) -> Any:
    body = {"recipients": recipients, "subject": "Trip on Friday", "body_text": "Bring a coat."}
    body.update(fields)
    return comms.post("/v1/messages", json=body, headers=headers)


def sent(
    comms: TestClient, headers: dict[str, str], recipients: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    response = send(comms, headers, recipients, **fields)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def audit_actions(comms: TestClient, auth: TokenFactory) -> list[str]:
    response = comms.get("/v1/audit", params={"limit": "500"}, headers=auth("head"))
    assert response.status_code == 200, response.text
    return [e["action"] for e in response.json()["items"]]
