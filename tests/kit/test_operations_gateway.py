"""Operations through the all-in-one gateway: every service in one process, one line and one
count per request, metrics and CORS at the gateway."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_kit.auth import Role
from hallpass_kit.settings import DEV_ISSUER, CommonSettings

WEBSITE = "https://www.oakfield.sch.uk"


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    common = CommonSettings(
        data_dir=tmp_path,
        auth_issuer=DEV_ISSUER,
        auth_jwks_url=None,
        cors_allow_origins=[WEBSITE],
    )
    return create_gateway(common, ConsentSettings(database_url=None), run_background=False)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(gateway, raise_server_exceptions=False) as client:
        yield client


def _office(gateway: Gateway) -> dict[str, str]:
    assert gateway.dev_issuer is not None
    token = gateway.dev_issuer.issue(sub="office@oakfield", school="oakfield", roles=[Role.office])
    return {"Authorization": f"Bearer {token}"}


def test_a_request_to_a_mounted_service_is_logged_once_with_that_service_and_route(
    client: TestClient, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hallpass.requests")

    response = client.get("/consent/v1/ping", headers=_office(gateway))

    assert response.status_code == 200
    lines = [r for r in caplog.records if r.name == "hallpass.requests"]
    assert len(lines) == 1
    line = lines[0].__dict__
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["service"], line["route"], line["status"]) == ("consent", "/v1/ping", 200)
    assert (line["subject"], line["school"]) == ("office@oakfield", "oakfield")


def test_a_request_to_a_mounted_service_is_counted_once_under_that_service(
    client: TestClient, gateway: Gateway
) -> None:
    labels = {"method": "GET", "route": "/v1/ping", "status": "200"}
    before = {
        service: REGISTRY.get_sample_value(
            "hallpass_http_requests_total", {**labels, "service": service}
        )
        or 0.0
        for service in ("consent", "gateway")
    }

    client.get("/consent/v1/ping", headers=_office(gateway))

    after = {
        service: REGISTRY.get_sample_value(
            "hallpass_http_requests_total", {**labels, "service": service}
        )
        or 0.0
        for service in ("consent", "gateway")
    }
    assert after == {"consent": before["consent"] + 1, "gateway": before["gateway"]}


def test_gateway_serves_metrics_for_every_service_without_a_token(
    client: TestClient, gateway: Gateway
) -> None:
    client.get("/media/v1/ping", headers=_office(gateway))

    response = client.get("/metrics")

    assert response.status_code == 200
    assert 'route="/v1/ping",service="media"' in response.text


def test_each_service_is_ready_behind_the_gateway(client: TestClient) -> None:
    for prefix in ("/consent", "/media", "/comms"):
        response = client.get(f"{prefix}/readyz")
        assert response.status_code == 200, (prefix, response.text)
        assert response.json()["checks"]["database"] == "ok"


def test_the_gateway_is_ready_when_every_service_it_runs_is(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {"consent.database", "media.database", "media.storage", "comms.database"} <= set(checks)
    assert set(checks.values()) == {"ok"}


def test_the_gateway_is_not_ready_when_one_service_is_not(
    gateway: Gateway, client: TestClient
) -> None:
    media = gateway.services["/media"].state.hallpass

    def store_gone() -> None:
        raise OSError("the media store is not mounted")

    media.readiness["storage"] = store_gone
    response = client.get("/readyz")

    assert response.status_code == 503
    assert "media.storage" in response.json()["detail"]


def test_preflight_through_the_gateway_is_answered_once_for_a_listed_origin(
    client: TestClient,
) -> None:
    response = client.options(
        "/consent/v1/decisions",
        headers={"Origin": WEBSITE, "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 200
    assert response.headers.get_list("access-control-allow-origin") == [WEBSITE]


def test_simple_request_through_the_gateway_carries_one_allow_origin_header(
    client: TestClient, gateway: Gateway
) -> None:
    response = client.get("/consent/v1/ping", headers={**_office(gateway), "Origin": WEBSITE})

    assert response.status_code == 200
    assert response.headers.get_list("access-control-allow-origin") == [WEBSITE]
    assert response.headers.get_list("vary") == ["Origin"]


def test_preflight_through_the_gateway_from_another_origin_is_refused(
    client: TestClient,
) -> None:
    response = client.options(
        "/consent/v1/decisions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
