"""The identity provider's keys: a rotation is picked up at once, forged key ids cannot make the
verifier hammer the provider, and a provider that cannot be reached is a 503, never a 500 — while
the keys already held go on verifying. The provider is a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from hallpass_consent.app import create_app
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import Role, TokenVerifier
from hallpass_kit.db import Database
from hallpass_kit.errors import ServiceUnavailable, Unauthenticated
from hallpass_kit.settings import CommonSettings, Environment
from tests.kit.identity_provider import (
    AUDIENCE,
    ISSUER,
    Clock,
    IdentityProvider,
    claims,
    new_key,
    running_provider,
    sign,
)

PROBLEM_JSON = "application/problem+json"
REFRESH_SECONDS = 60
AN_HOUR = 3600


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _settings(
    provider: IdentityProvider, tmp_path: Path, *, timeout_seconds: float = 3.0
) -> CommonSettings:
    return CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_url=provider.url,
        auth_jwks_refresh_seconds=REFRESH_SECONDS,
        auth_jwks_timeout_seconds=timeout_seconds,
    )


@pytest.fixture
def verifier(provider: IdentityProvider, clock: Clock, tmp_path: Path) -> TokenVerifier:
    return TokenVerifier(_settings(provider, tmp_path), clock=clock)


@pytest.fixture
def app_client(
    consent_db: Database, provider: IdentityProvider, clock: Clock, tmp_path: Path
) -> Iterator[TestClient]:
    common = _settings(provider, tmp_path)
    app = create_app(
        common=common,
        settings=ConsentSettings(),
        verifier=TokenVerifier(common, clock=clock),
        database=consent_db,
        run_background=False,
        migrate=False,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _ping(client: TestClient, token: str) -> int:
    return client.get("/v1/ping", headers={"Authorization": f"Bearer {token}"}).status_code


def _assert_unavailable(response: Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "identity_provider_unavailable"
    assert int(response.headers["retry-after"]) >= 1


# --- rotation ------------------------------------------------------------------------------------


def test_a_token_signed_with_a_new_key_is_accepted_at_once_after_one_refresh(
    provider: IdentityProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(provider.issue())
    clock.advance(REFRESH_SECONDS + 1)
    provider.rotate()

    principal = verifier.verify(provider.issue(sub="deputy@oakfield", roles=["deputy"]))

    assert principal.roles == frozenset({Role.deputy})
    assert provider.fetches == 2


def test_a_token_without_key_id_signed_with_a_new_key_is_accepted_after_one_refresh(
    provider: IdentityProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(provider.issue())
    clock.advance(REFRESH_SECONDS + 1)
    new = provider.rotate()

    principal = verifier.verify(sign(new, claims(sub="dsl@oakfield"), without_kid=True))

    assert principal.sub == "dsl@oakfield"
    assert provider.fetches == 2


def test_a_rotation_is_seen_through_a_real_request(
    provider: IdentityProvider, app_client: TestClient, clock: Clock
) -> None:
    assert _ping(app_client, provider.issue()) == 200
    clock.advance(REFRESH_SECONDS + 1)
    provider.rotate()

    assert _ping(app_client, provider.issue(sub="office@oakfield", roles=["office"])) == 200
    assert provider.fetches == 2


def test_a_flood_of_forged_key_ids_reaches_the_provider_once_per_window(
    provider: IdentityProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(provider.issue())
    clock.advance(REFRESH_SECONDS + 1)
    forger = new_key()

    for attempt in range(25):
        with pytest.raises(Unauthenticated):
            verifier.verify(sign(forger, claims(), kid=f"forged-{attempt}"))
    fetches_in_window = provider.fetches
    clock.advance(REFRESH_SECONDS)
    with pytest.raises(Unauthenticated):
        verifier.verify(sign(forger, claims(), kid="forged-next-window"))

    assert fetches_in_window == 2
    assert provider.fetches == 3


def test_a_forged_token_naming_a_held_key_does_not_ask_the_provider(
    provider: IdentityProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(provider.issue())
    clock.advance(REFRESH_SECONDS + 1)

    with pytest.raises(Unauthenticated):
        verifier.verify(sign(new_key(), claims(), kid=provider.key.kid))

    assert provider.fetches == 1


def test_keys_an_hour_old_are_fetched_again(
    provider: IdentityProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(provider.issue())
    clock.advance(AN_HOUR)

    verifier.verify(provider.issue(sub="staff@oakfield", roles=["staff"]))

    assert provider.fetches == 2


# --- the provider unreachable or broken ---------------------------------------------------------


def test_an_unreachable_provider_with_no_key_held_is_a_503_with_retry_after(
    provider: IdentityProvider, app_client: TestClient
) -> None:
    token = provider.issue()
    provider.stop()

    response = app_client.get("/v1/ping", headers={"Authorization": f"Bearer {token}"})

    _assert_unavailable(response)


def test_the_verifier_says_unavailable_when_no_key_can_be_fetched(
    provider: IdentityProvider, verifier: TokenVerifier
) -> None:
    token = provider.issue()
    provider.stop()

    with pytest.raises(ServiceUnavailable) as refused:
        verifier.verify(token)

    assert refused.value.code == "identity_provider_unavailable"
    assert refused.value.retry_after == REFRESH_SECONDS


def test_a_held_key_goes_on_verifying_while_the_provider_is_down(
    provider: IdentityProvider, app_client: TestClient, clock: Clock
) -> None:
    assert _ping(app_client, provider.issue()) == 200
    provider.stop()
    clock.advance(AN_HOUR + 1)  # the held keys are due for a fetch, which fails

    assert _ping(app_client, provider.issue(sub="deputy@oakfield", roles=["deputy"])) == 200
    assert provider.fetches == 1


def test_a_new_key_while_the_provider_is_down_is_a_503(
    provider: IdentityProvider, app_client: TestClient, clock: Clock
) -> None:
    assert _ping(app_client, provider.issue()) == 200
    provider.stop()
    clock.advance(REFRESH_SECONDS + 1)
    provider.rotate()

    response = app_client.get(
        "/v1/ping", headers={"Authorization": f"Bearer {provider.issue(sub='dsl@oakfield')}"}
    )

    _assert_unavailable(response)


GARBAGE = {
    "a sign-in page": (200, "text/html", b"<html><body>Sign in</body></html>"),
    "a json list": (200, "application/json", b"[]"),
    "keys not a list": (200, "application/json", b'{"keys": "RS256"}'),
    "no usable key": (200, "application/json", b'{"keys": [{"kty": "RSA"}, 5, {"kty": "XYZ"}]}'),
    "a server error": (500, "application/json", b'{"keys": []}'),
    "a redirect": (302, "text/plain", b""),
    "deeply nested json": (200, "application/json", b"[" * 100_000),
    "far too large": (200, "application/json", b'{"keys": [], "pad": "' + b"x" * 600_000 + b'"}'),
}


@pytest.mark.parametrize("answer", list(GARBAGE))
def test_a_provider_answering_garbage_is_a_503(
    answer: str, provider: IdentityProvider, app_client: TestClient
) -> None:
    provider.answer = GARBAGE[answer]

    response = app_client.get("/v1/ping", headers={"Authorization": f"Bearer {provider.issue()}"})

    _assert_unavailable(response)
    assert provider.fetches == 1


def test_a_provider_that_recovers_is_used_again(
    provider: IdentityProvider, app_client: TestClient, clock: Clock
) -> None:
    provider.answer = (503, "text/plain", b"down for maintenance")
    token = provider.issue()

    first = app_client.get("/v1/ping", headers={"Authorization": f"Bearer {token}"})
    clock.advance(45)
    paced = app_client.get("/v1/ping", headers={"Authorization": f"Bearer {token}"})
    fetches_while_down = provider.fetches
    provider.answer = "keys"
    clock.advance(REFRESH_SECONDS - 45)
    recovered = app_client.get("/v1/ping", headers={"Authorization": f"Bearer {token}"})

    assert (first.status_code, first.headers["retry-after"]) == (503, str(REFRESH_SECONDS))
    assert (paced.status_code, paced.headers["retry-after"]) == (503, "15")
    assert fetches_while_down == 1
    assert recovered.status_code == 200


def test_a_provider_trickling_its_answer_is_cut_off(
    provider: IdentityProvider, clock: Clock, tmp_path: Path
) -> None:
    # Each byte arrives well within any read timeout; only a bound on the whole fetch stops it.
    provider.byte_delay = 0.05
    verifier = TokenVerifier(_settings(provider, tmp_path, timeout_seconds=0.3), clock=clock)

    with pytest.raises(ServiceUnavailable):
        verifier.verify(provider.issue())
