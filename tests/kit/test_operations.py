"""Operations on every service app: readiness, metrics, one log line per request, CORS.

Run against the consent app (SQLite, and PostgreSQL when given) because every service app gets
these from the kit's ``create_service_app``; media's store and comms' relay have their own tests.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from hallpass_consent.app import create_app
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.app import protect
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.db import Database
from hallpass_kit.identity import parse_identity
from hallpass_kit.logs import configure_logging
from hallpass_kit.settings import CommonSettings, Environment
from tests.comms.smtp import free_port
from tests.conftest import SCHOOL, TokenFactory, build_consent_app
from tests.consent.builders import SchoolBuilder, assert_problem

WEBSITE = "https://www.oakfield.sch.uk"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def school(client: TestClient, auth: TokenFactory) -> SchoolBuilder:
    builder = SchoolBuilder(client, auth)
    builder.set_up()
    return builder


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging writing JSON lines to a buffer; the logging set-up is put back after."""
    root = logging.getLogger()
    watched = [root, *(logging.getLogger(n) for n in ("hallpass", "uvicorn", "uvicorn.error"))]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in watched]
    access = logging.getLogger("uvicorn.access")
    saved_access = (list(access.handlers), access.level, access.propagate, access.disabled)
    stream = io.StringIO()
    configure_logging(
        CommonSettings(env=Environment.test, log_format="json", log_level="INFO"), stream=stream
    )
    yield stream
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    access.handlers[:], _, access.propagate, access.disabled = saved_access
    access.setLevel(saved_access[1])


def _lines(stream: io.StringIO, logger: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == logger]


# --- Readiness -------------------------------------------------------------------------------


def test_ready_service_answers_200_naming_each_check(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readiness_needs_no_token(client: TestClient) -> None:
    # Load balancers probe before anyone holds a token: no Authorization header at all.
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200


def _unreachable_database(backend: str, tmp_path: Path) -> Database:
    if backend == "postgresql":
        # Nothing listens on this port: the connection is refused at once.
        return Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/consent")
    folder = tmp_path / "gone"
    database = Database(f"sqlite:///{folder / 'consent.db'}")
    folder.rmdir()  # the volume went away under a running service
    return database


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_unreachable_database_makes_the_service_not_ready(
    backend: str, tmp_path: Path, issuer: DevIssuer, common_settings: CommonSettings
) -> None:
    database = _unreachable_database(backend, tmp_path)
    app = build_consent_app(database, issuer, common_settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")
        health = client.get("/healthz")

    problem = assert_problem(response, 503, "not_ready")
    assert "database (unavailable)" in problem["detail"]
    # The process itself is up: restarting it would not help, so liveness stays green.
    assert health.status_code == 200
    database.dispose()


def test_an_identity_provider_that_cannot_be_reached_makes_the_service_not_ready(
    consent_db: Database, tmp_path: Path
) -> None:
    # Nothing listens there: discovery fails, no key is held, no token could be checked.
    port = free_port()
    identity = parse_identity(
        {
            "issuers": [
                {
                    "name": "entra",
                    "issuer": f"http://127.0.0.1:{port}/tenant/v2.0",
                    "audiences": ["hallpass"],
                    "school": {"claim": "school"},
                }
            ]
        }
    )
    common = CommonSettings(env=Environment.test, data_dir=tmp_path, auth_jwks_timeout_seconds=0.5)
    app = create_app(
        common=common,
        settings=ConsentSettings(),
        verifier=TokenVerifier(common, identity=identity),
        database=consent_db,
        run_background=False,
        migrate=False,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")

    problem = assert_problem(response, 503, "not_ready")
    assert "identity.entra (unavailable)" in problem["detail"]


# --- Metrics ---------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_and_status(
    client: TestClient, school: SchoolBuilder, auth: TokenFactory
) -> None:
    pupil = school.pupil()
    labels = {"service": "consent", "method": "GET", "route": "/v1/pupils/{pupil_id}/consents"}
    before_ok = _sample("hallpass_http_requests_total", **labels, status="200")
    before_unauthenticated = _sample("hallpass_http_requests_total", **labels, status="401")
    before_timed = _sample("hallpass_http_request_duration_seconds_count", **labels)

    assert client.get(f"/v1/pupils/{pupil}/consents", headers=auth("office")).status_code == 200
    assert client.get(f"/v1/pupils/{pupil}/consents").status_code == 401

    assert _sample("hallpass_http_requests_total", **labels, status="200") == before_ok + 1
    assert (
        _sample("hallpass_http_requests_total", **labels, status="401")
        == before_unauthenticated + 1
    )
    assert _sample("hallpass_http_request_duration_seconds_count", **labels) == before_timed + 2


def test_a_path_no_route_matches_is_counted_as_unmatched_not_by_its_path(
    client: TestClient,
) -> None:
    labels = {"service": "consent", "method": "GET", "route": "unmatched", "status": "404"}
    before = _sample("hallpass_http_requests_total", **labels)

    assert client.get("/wp-admin/setup-config.php").status_code == 404

    assert _sample("hallpass_http_requests_total", **labels) == before + 1
    assert 'route="/wp-admin/setup-config.php"' not in client.get("/metrics").text


def test_decisions_are_counted_by_reason_c2(
    client: TestClient, school: SchoolBuilder, auth: TokenFactory
) -> None:
    with_consent = school.family()
    without_record = school.pupil(given="Noah", family="Baxter")
    school.consent(with_consent.pupil_id, with_consent.guardian_ids[0])
    before_granted = _sample(
        "hallpass_consent_decisions_total", service="consent", reason="granted"
    )
    before_no_record = _sample(
        "hallpass_consent_decisions_total", service="consent", reason="no_record"
    )

    school.decide("website_photo", with_consent.pupil_id, without_record)

    assert (
        _sample("hallpass_consent_decisions_total", service="consent", reason="granted")
        == before_granted + 1
    )
    # C2: silence on an opt-in purpose is "no", and is counted as such.
    assert (
        _sample("hallpass_consent_decisions_total", service="consent", reason="no_record")
        == before_no_record + 1
    )


def test_metrics_are_served_in_the_prometheus_text_format_without_a_token(
    client: TestClient, auth: TokenFactory
) -> None:
    client.get("/v1/ping", headers=auth("office"))

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'hallpass_http_requests_total{method="GET",route="/v1/ping",service="consent",'
        'status="200"}' in response.text
    )


# --- Logs ------------------------------------------------------------------------------------


def test_one_json_line_per_request_names_caller_school_route_and_outcome(
    client: TestClient, auth: TokenFactory, log_stream: io.StringIO
) -> None:
    response = client.get("/v1/ping", headers=auth("office"))

    lines = _lines(log_stream, "hallpass.requests")
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["subject"] == f"office@{SCHOOL}"
    assert line["school"] == SCHOOL
    assert line["service"] == "consent"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/v1/ping", 200)
    assert isinstance(line["duration_ms"], float)


def test_request_line_never_carries_the_token(
    client: TestClient, auth: TokenFactory, log_stream: io.StringIO
) -> None:
    headers = auth("office")
    token = headers["Authorization"].removeprefix("Bearer ")

    client.get("/v1/ping", headers=headers)

    assert token not in log_stream.getvalue()


def test_refused_request_is_logged_without_a_subject(
    client: TestClient, log_stream: io.StringIO
) -> None:
    client.get("/v1/ping", headers={"X-Request-Id": "probe-401"})

    (line,) = _lines(log_stream, "hallpass.requests")
    assert line["request_id"] == "probe-401"
    assert line["status"] == 401
    assert "subject" not in line


def test_unhandled_error_line_keeps_the_request_id(log_stream: io.StringIO) -> None:
    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    protect(app, CommonSettings(env=Environment.test), None, service="test")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-Id": "bug-report-7"})

    assert response.status_code == 500
    (error,) = _lines(log_stream, "hallpass.errors")
    assert error["request_id"] == "bug-report-7"
    assert "RuntimeError: a bug" in error["error"]
    (request,) = _lines(log_stream, "hallpass.requests")
    assert (request["request_id"], request["status"]) == ("bug-report-7", 500)


def test_configuring_logging_twice_still_writes_each_line_once(
    client: TestClient, log_stream: io.StringIO
) -> None:
    # The CLI and the ASGI module may both configure the process.
    configure_logging(CommonSettings(env=Environment.test, log_format="json"), stream=log_stream)

    client.get("/healthz")
    logging.getLogger("hallpass.test").info("once")

    assert len(_lines(log_stream, "hallpass.test")) == 1


def test_uvicorn_access_log_gives_way_to_the_request_line(log_stream: io.StringIO) -> None:
    assert logging.getLogger("uvicorn.access").disabled
    assert logging.getLogger("hallpass").getEffectiveLevel() == logging.INFO


# --- CORS ------------------------------------------------------------------------------------


def _app_allowing(
    origins: list[str], consent_db: Database, issuer: DevIssuer, tmp_path: Path
) -> FastAPI:
    common = CommonSettings(
        env=Environment.test, data_dir=tmp_path / "data", cors_allow_origins=origins
    )
    return build_consent_app(consent_db, issuer, common)


def _preflight(client: TestClient, origin: str) -> Any:
    return client.options(
        "/v1/decisions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_preflight_from_a_listed_origin_is_allowed(
    consent_db: Database, issuer: DevIssuer, tmp_path: Path
) -> None:
    with TestClient(_app_allowing([WEBSITE], consent_db, issuer, tmp_path)) as client:
        response = _preflight(client, WEBSITE)

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == WEBSITE
    assert "POST" in response.headers["access-control-allow-methods"]


def test_preflight_from_another_origin_is_refused(
    consent_db: Database, issuer: DevIssuer, tmp_path: Path
) -> None:
    with TestClient(_app_allowing([WEBSITE], consent_db, issuer, tmp_path)) as client:
        response = _preflight(client, "https://evil.example")

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_no_origin_is_allowed_by_default(client: TestClient) -> None:
    response = _preflight(client, WEBSITE)

    assert "access-control-allow-origin" not in response.headers


def test_any_origin_never_comes_with_credentials(
    consent_db: Database, issuer: DevIssuer, tmp_path: Path
) -> None:
    with TestClient(_app_allowing(["*"], consent_db, issuer, tmp_path)) as client:
        response = _preflight(client, "https://anywhere.example")

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
