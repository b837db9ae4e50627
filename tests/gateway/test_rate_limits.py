"""Rate limits at the gateway: per IP always, per client when its token verifies; 429 and
Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import create_gateway
from hallpass_gateway.ratelimit import TokenBuckets, client_address
from hallpass_gateway.settings import GatewaySettings
from hallpass_kit.auth import DevIssuer, Role
from hallpass_kit.settings import DEV_ISSUER, CommonSettings
from tests.gateway.test_proxy import gateway_settings, proxy_in_front, served, upstream_app

# A rate so slow that no token comes back during a test: what is spent stays spent.
NO_REFILL = 0.001


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scope_from(peer: str, forwarded_for: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    return {"type": "http", "client": (peer, 50000), "headers": headers}


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with served(upstream_app().app) as url:
        yield url


def dev_token(tmp_path: Path, subject: str) -> dict[str, str]:
    """A token from the dev key the proxy gateway in ``tmp_path`` verifies with."""
    issuer = DevIssuer.load_or_create(tmp_path / "dev-signing-key.json", DEV_ISSUER, "hallpass")
    token = issuer.issue(sub=subject, school="oakfield", roles=[Role.cms])
    return {"Authorization": f"Bearer {token}"}


# --- the buckets ---------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_second=2, burst=3, max_tracked=100, clock=clock)

    allowed = [buckets.take("198.51.100.1") for _ in range(3)]
    refused = buckets.take("198.51.100.1")
    clock.now += 0.5
    refilled = buckets.take("198.51.100.1")

    assert allowed == [0.0, 0.0, 0.0]
    assert refused == pytest.approx(0.5)
    assert refilled == 0.0


def test_each_caller_has_a_bucket_of_its_own() -> None:
    buckets = TokenBuckets(per_second=1, burst=1, max_tracked=100, clock=FakeClock())

    buckets.take("198.51.100.1")

    assert buckets.take("198.51.100.1") > 0
    assert buckets.take("198.51.100.2") == 0.0


def test_a_forgotten_caller_starts_again_with_a_full_bucket() -> None:
    buckets = TokenBuckets(per_second=1, burst=1, max_tracked=100, clock=FakeClock())
    buckets.take("first")
    for number in range(100):
        buckets.take(f"caller-{number}")

    assert buckets.take("first") == 0.0


# --- who the caller is ---------------------------------------------------------------------------


def test_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy() -> None:
    scope = scope_from("198.51.100.7", forwarded_for="203.0.113.1")

    assert client_address(scope, [ip_network("10.0.0.0/8")]) == "198.51.100.7"
    assert client_address(scope, []) == "198.51.100.7"


def test_forwarded_for_from_trusted_proxies_names_the_nearest_untrusted_address() -> None:
    trusted = [ip_network("10.0.0.0/8")]
    # The caller forged the left-most entry; the load balancer (10.0.0.2) and an inner proxy
    # (10.0.0.3) each appended the address they saw.
    scope = scope_from("10.0.0.3", forwarded_for="192.0.2.66, 203.0.113.5, 10.0.0.2")

    assert client_address(scope, trusted) == "203.0.113.5"


def test_garbage_in_forwarded_for_from_a_trusted_proxy_names_nobody() -> None:
    scope = scope_from("10.0.0.3", forwarded_for="not-an-address")

    assert client_address(scope, [ip_network("10.0.0.0/8")]) == "10.0.0.3"


def test_trusted_proxies_are_read_from_a_comma_separated_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HALLPASS_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.4")

    assert GatewaySettings().trusted_proxies == [
        ip_network("10.0.0.0/8"),
        ip_network("192.168.1.4/32"),
    ]


def test_rate_limits_default_to_on_in_proxy_mode_and_off_in_all_in_one() -> None:
    settings = GatewaySettings()

    assert settings.rate_limits_on(proxy_mode=True)
    assert not settings.rate_limits_on(proxy_mode=False)
    assert GatewaySettings(rate_limits=True).rate_limits_on(proxy_mode=False)


# --- through the proxy gateway -------------------------------------------------------------------


def test_an_address_past_its_burst_gets_429_with_retry_after(
    tmp_path: Path, upstream_url: str
) -> None:
    settings = gateway_settings(
        rate_limits=True, rate_limit_ip_burst=3, rate_limit_ip_per_second=NO_REFILL
    )
    with (
        proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        served_first = [client.get("/consent/v1/echo/x").status_code for _ in range(3)]
        refused = client.get("/consent/v1/echo/x", headers={"X-Request-Id": "flood-1"})
        health = client.get("/healthz")

    assert served_first == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 1 / NO_REFILL
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["request_id"] == "flood-1"
    # Probes are never limited: a limited caller must not take the gateway out of service.
    assert health.status_code == 200


def test_a_client_past_its_burst_is_limited_while_another_client_is_not(
    tmp_path: Path, upstream_url: str
) -> None:
    settings = gateway_settings(
        rate_limits=True, rate_limit_client_burst=2, rate_limit_client_per_second=NO_REFILL
    )
    with proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _):
        cms, office = dev_token(tmp_path, "cms@oakfield"), dev_token(tmp_path, "office@oakfield")
        with httpx.Client(base_url=url) as client:
            cms_answers = [client.get("/consent/v1/echo/x", headers=cms) for _ in range(3)]
            office_answer = client.get("/consent/v1/echo/x", headers=office)

    assert [a.status_code for a in cms_answers] == [200, 200, 429]
    assert cms_answers[2].json()["code"] == "rate_limited"
    assert "client" in cms_answers[2].json()["detail"]
    assert int(cms_answers[2].headers["retry-after"]) >= 1
    assert office_answer.status_code == 200


def test_a_token_the_gateway_cannot_verify_counts_against_the_address_only(
    tmp_path: Path, upstream_url: str
) -> None:
    settings = gateway_settings(
        rate_limits=True, rate_limit_client_burst=1, rate_limit_client_per_second=NO_REFILL
    )
    forged = {"Authorization": "Bearer not.a.jwt"}
    with (
        proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        answers = [client.get("/consent/v1/echo/x", headers=forged).status_code for _ in range(3)]

    # Forwarded: whether the token is any good is the service's decision (it answers 401).
    assert answers == [200, 200, 200]


def test_addresses_behind_a_trusted_proxy_are_limited_one_by_one(
    tmp_path: Path, upstream_url: str
) -> None:
    settings = gateway_settings(
        rate_limits=True,
        rate_limit_ip_burst=1,
        rate_limit_ip_per_second=NO_REFILL,
        trusted_proxies=["127.0.0.1"],
    )
    with (
        proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        first = client.get("/consent/v1/echo/x", headers={"X-Forwarded-For": "203.0.113.5"})
        again = client.get("/consent/v1/echo/x", headers={"X-Forwarded-For": "203.0.113.5"})
        neighbour = client.get("/consent/v1/echo/x", headers={"X-Forwarded-For": "203.0.113.6"})

    assert [first.status_code, again.status_code, neighbour.status_code] == [200, 429, 200]


def test_forged_forwarded_for_does_not_escape_the_limit_without_trusted_proxies(
    tmp_path: Path, upstream_url: str
) -> None:
    settings = gateway_settings(
        rate_limits=True, rate_limit_ip_burst=1, rate_limit_ip_per_second=NO_REFILL
    )
    with (
        proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        first = client.get("/consent/v1/echo/x", headers={"X-Forwarded-For": "203.0.113.5"})
        disguised = client.get("/consent/v1/echo/x", headers={"X-Forwarded-For": "203.0.113.6"})

    assert [first.status_code, disguised.status_code] == [200, 429]


# --- all-in-one ----------------------------------------------------------------------------------


def all_in_one(tmp_path: Path, settings: GatewaySettings) -> TestClient:
    common = CommonSettings(data_dir=tmp_path, auth_issuer=DEV_ISSUER, auth_jwks_url=None)
    gateway = create_gateway(
        common,
        ConsentSettings(database_url=None),
        run_background=False,
        gateway_settings=settings,
    )
    return TestClient(gateway)


def test_all_in_one_limits_when_rate_limits_are_switched_on(tmp_path: Path) -> None:
    settings = GatewaySettings(
        rate_limits=True, rate_limit_ip_burst=2, rate_limit_ip_per_second=NO_REFILL
    )
    with all_in_one(tmp_path, settings) as client:
        answers = [client.get("/consent/v1/purposes") for _ in range(3)]

    # Unauthenticated, so the service refuses the first two; the third never reaches it.
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[2].json()["code"] == "rate_limited"


def test_all_in_one_does_not_limit_by_default(tmp_path: Path) -> None:
    settings = GatewaySettings(rate_limit_ip_burst=1, rate_limit_ip_per_second=NO_REFILL)
    with all_in_one(tmp_path, settings) as client:
        answers = [client.get("/consent/v1/purposes").status_code for _ in range(3)]

    assert answers == [401, 401, 401]
