"""The loopback OpenID Connect provider the sign-in tests run against behaves as RFC 6749, RFC 7636
and OpenID Connect say a provider must: what passes against it would pass against Entra ID or
Keycloak, and what it refuses they refuse."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.identity import shapes
from tests.identity.provider import OidcProvider, running_provider, s256

CLIENT = "hallpass"
SECRET = "s3cret-for-tests"
CALLBACK = "https://hallpass.oakfield.sch.uk/auth/callback/keycloak"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with running_provider(shapes.KEYCLOAK_PATH) as running:
        running.register_client(CLIENT, [CALLBACK], secret=SECRET)
        yield running


def _authorize(provider: OidcProvider, **changes: str | None) -> httpx.Response:
    verifier = changes.pop("verifier", None) or "v" * 43
    query: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": CALLBACK,
        "scope": "openid profile email",
        "state": "state-1",
        "nonce": "nonce-1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    query.update(changes)
    sent = {name: value for name, value in query.items() if value is not None}
    return httpx.get(provider.authorization_endpoint, params=sent)


def _redirected(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert str(location.copy_with(query=None)) == CALLBACK
    return dict(location.params)


def _code(provider: OidcProvider, verifier: str) -> str:
    provider.next_sign_in(shapes.keycloak())
    return _redirected(_authorize(provider, verifier=verifier))["code"]


def _exchange(provider: OidcProvider, **form: str) -> httpx.Response:
    return httpx.post(provider.token_endpoint, data=form, auth=(CLIENT, SECRET))


def test_discovery_names_the_issuer_and_every_endpoint(provider: OidcProvider) -> None:
    document = httpx.get(provider.discovery_url).json()

    assert document["issuer"] == provider.issuer
    assert document["jwks_uri"] == provider.jwks_uri
    assert document["authorization_endpoint"].endswith("/protocol/openid-connect/auth")
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_a_sign_in_gives_an_id_token_for_the_client_with_the_nonce(
    provider: OidcProvider,
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = _code(provider, verifier)

    answer = _exchange(
        provider,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        code_verifier=verifier,
    )

    tokens: dict[str, Any] = answer.json()
    assert answer.status_code == 200
    assert tokens["token_type"] == "Bearer"
    keys = KeySet.import_key_set(httpx.get(provider.jwks_uri).json())
    id_token = jwt.decode(tokens["id_token"], keys).claims
    assert (id_token["iss"], id_token["aud"], id_token["nonce"]) == (
        provider.issuer,
        CLIENT,
        "nonce-1",
    )
    assert id_token["email"] == "j.okafor@oakfield.sch.uk"
    assert jwt.decode(tokens["access_token"], keys).claims["aud"] == [CLIENT, "account"]


def test_a_code_works_once(provider: OidcProvider) -> None:
    verifier = secrets.token_urlsafe(48)
    form = {
        "grant_type": "authorization_code",
        "code": _code(provider, verifier),
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    _exchange(provider, **form)

    again = _exchange(provider, **form)

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_a_verifier_that_does_not_hash_to_the_challenge_is_invalid_grant(
    provider: OidcProvider,
) -> None:
    code = _code(provider, secrets.token_urlsafe(48))

    answer = _exchange(
        provider,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        code_verifier=secrets.token_urlsafe(48),
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_redirect_uri_other_than_the_requests_is_invalid_grant(provider: OidcProvider) -> None:
    verifier = secrets.token_urlsafe(48)

    answer = _exchange(
        provider,
        grant_type="authorization_code",
        code=_code(provider, verifier),
        redirect_uri=CALLBACK + "/elsewhere",
        code_verifier=verifier,
    )

    assert answer.json()["error"] == "invalid_grant"


def test_a_wrong_client_secret_by_basic_auth_is_401_invalid_client(
    provider: OidcProvider,
) -> None:
    answer = httpx.post(
        provider.token_endpoint,
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": CALLBACK},
        auth=(CLIENT, "wrong"),
    )

    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_the_client_secret_may_come_in_the_form(provider: OidcProvider) -> None:
    verifier = secrets.token_urlsafe(48)

    answer = httpx.post(
        provider.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": _code(provider, verifier),
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
            "client_id": CLIENT,
            "client_secret": SECRET,
        },
    )

    assert answer.status_code == 200


def test_a_plain_code_challenge_is_refused_by_redirect(provider: OidcProvider) -> None:
    provider.next_sign_in(shapes.keycloak())

    answer = _redirected(_authorize(provider, code_challenge_method="plain"))

    assert answer == {
        "error": "invalid_request",
        "error_description": "transform algorithm not supported",
        "state": "state-1",
    }


def test_a_request_without_a_code_challenge_is_refused_by_redirect(
    provider: OidcProvider,
) -> None:
    provider.next_sign_in(shapes.keycloak())

    answer = _redirected(_authorize(provider, code_challenge=None, code_challenge_method=None))

    assert answer["error"] == "invalid_request"
    assert "code" not in answer


def test_an_unregistered_redirect_uri_is_never_redirected_to(provider: OidcProvider) -> None:
    answer = _authorize(provider, redirect_uri="https://attacker.example/callback")

    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_nobody_queued_to_sign_in_is_access_denied(provider: OidcProvider) -> None:
    answer = _redirected(_authorize(provider))

    assert answer["error"] == "access_denied"


def test_sign_out_returns_to_the_clients_site_with_its_state(provider: OidcProvider) -> None:
    answer = httpx.get(
        provider.end_session_endpoint,
        params={"post_logout_redirect_uri": "https://hallpass.oakfield.sch.uk/", "state": "s"},
    )

    assert answer.status_code == 302
    assert answer.headers["location"] == "https://hallpass.oakfield.sch.uk/?state=s"


def test_the_provider_counts_what_it_was_asked(provider: OidcProvider) -> None:
    httpx.get(provider.discovery_url)
    httpx.get(provider.jwks_uri)
    httpx.get(provider.jwks_uri)

    assert provider.asked(provider.discovery_url) == 1
    assert provider.asked(provider.jwks_uri) == 2
