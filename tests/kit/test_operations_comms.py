"""The comms service's readiness checks its SMTP relay (a real one on loopback, aiosmtpd), and
its secure-view links use the deployment's public address (E5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_comms import migrations
from hallpass_comms.app import create_app
from hallpass_comms.context import CommsContext
from hallpass_comms.delivery import EmlFolderTransport, MailTransport
from hallpass_comms.models import Base
from hallpass_comms.settings import CommsSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings, Environment
from tests import databases
from tests.comms.providers import CLIENT_ID, CLIENT_SECRET, TENANT, ProviderStandIn
from tests.comms.smtp import SmtpServer, free_port
from tests.consent.builders import assert_problem

PUBLIC = "https://hallpass.oakfield.sch.uk"


class Build(Protocol):
    def __call__(
        self,
        settings: CommsSettings,
        *,
        transport: MailTransport | None = None,
        common: CommonSettings | None = None,
    ) -> FastAPI: ...


@pytest.fixture(scope="session")
def ops_comms_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("ops-comms-template"), "comms.db", migrations.upgrade
    )


@pytest.fixture(scope="session")
def ops_comms_postgres() -> Iterator[str]:
    # A name of its own: the comms tests' database of the same worker may be in use.
    with databases.postgres_database("ops_comms", migrations.upgrade) as url:
        yield url


@pytest.fixture
def comms_db(
    consent_db: Database, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Database]:
    if consent_db.dialect == "sqlite":
        database = databases.sqlite_copy(request.getfixturevalue("ops_comms_template"), tmp_path)
    else:
        database = databases.emptied(request.getfixturevalue("ops_comms_postgres"), Base.metadata)
    yield database
    database.dispose()


@pytest.fixture
def build(comms_db: Database, issuer: DevIssuer, consent_app: FastAPI, tmp_path: Path) -> Build:
    def make(
        settings: CommsSettings,
        *,
        transport: MailTransport | None = None,
        common: CommonSettings | None = None,
    ) -> FastAPI:
        common = common or CommonSettings(env=Environment.test, data_dir=tmp_path / "data")
        return create_app(
            common=common,
            settings=settings,
            verifier=TokenVerifier(common, key_set=issuer.key_set()),
            consent=ServiceClient(
                name="consent",
                app=consent_app,
                base_url="http://consent.internal",
                tokens=DevServiceTokens(issuer, "comms"),
            ),
            database=comms_db,
            run_background=False,
            migrate=False,
            transport=transport,
        )

    return make


def _relay(port: int) -> CommsSettings:
    return CommsSettings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, reminder_within_days=0
    )


def test_comms_is_ready_when_its_relay_answers(build: Build) -> None:
    with SmtpServer() as relay:
        app = build(_relay(relay.port))
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "smtp": "ok"}}


def test_comms_is_not_ready_when_its_relay_is_down(build: Build) -> None:
    app = build(_relay(free_port()))  # nothing listens there

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")

    problem = assert_problem(response, 503, "not_ready")
    assert "smtp (unavailable)" in problem["detail"]


def test_comms_is_not_ready_once_its_relay_goes_away(build: Build) -> None:
    with SmtpServer() as relay:
        app = build(_relay(relay.port))
        with TestClient(app, raise_server_exceptions=False) as client:
            before = client.get("/readyz")
            relay.stop()
            after = client.get("/readyz")
            relay.start()

    assert before.status_code == 200
    assert_problem(after, 503, "not_ready")


def test_writing_eml_files_needs_no_relay_check(build: Build, tmp_path: Path) -> None:
    app = build(CommsSettings(reminder_within_days=0), transport=EmlFolderTransport(tmp_path))

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")

    assert response.json()["checks"] == {"database": "ok"}


def _link_base(app: FastAPI) -> str:
    context = app.state.hallpass
    assert isinstance(context, CommsContext)
    assert context.delivery_worker is not None
    return context.delivery_worker.public_base_url


def test_e5_secure_view_links_use_the_deployment_public_address(
    build: Build, tmp_path: Path
) -> None:
    common = CommonSettings(env=Environment.test, data_dir=tmp_path, public_base_url=PUBLIC)

    app = build(
        CommsSettings(reminder_within_days=0), transport=EmlFolderTransport(tmp_path), common=common
    )

    assert _link_base(app) == PUBLIC


def test_e5_comms_own_public_address_wins_over_the_deployment_one(
    build: Build, tmp_path: Path
) -> None:
    common = CommonSettings(env=Environment.test, data_dir=tmp_path, public_base_url=PUBLIC)
    settings = CommsSettings(reminder_within_days=0, public_base_url="https://mail.oakfield.sch.uk")

    app = build(settings, transport=EmlFolderTransport(tmp_path), common=common)

    assert _link_base(app) == "https://mail.oakfield.sch.uk"


def _graph(stand_in: ProviderStandIn) -> CommsSettings:
    return CommsSettings.model_validate(
        {
            "mail_transport": "graph",
            "microsoft_tenant_id": TENANT,
            "microsoft_client_id": CLIENT_ID,
            "microsoft_client_secret": CLIENT_SECRET,
            "microsoft_login_url": stand_in.url,
            "microsoft_graph_url": stand_in.url,
            "reminder_within_days": 0,
        }
    )


def test_comms_sending_through_graph_is_ready_while_microsoft_gives_it_a_token(
    build: Build,
) -> None:
    stand_in = ProviderStandIn()
    stand_in.start()
    try:
        app = build(_graph(stand_in))
        with TestClient(app, raise_server_exceptions=False) as client:
            ready = client.get("/readyz")
            stand_in.stop()  # Microsoft (token endpoint and Graph) goes away
            gone = client.get("/readyz")
    except BaseException:
        stand_in.stop()
        raise

    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "mail": "ok"}
    problem = assert_problem(gone, 503, "not_ready")
    assert "mail" in problem["detail"]
