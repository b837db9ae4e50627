"""Verifying tokens of the identity file's issuers against real (loopback) OpenID Connect
providers: keys found by discovery, the discovery document's issuer checked, rotations picked
up, several issuers and audiences at once, and the provider asked no more often than paced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.app import CurrentPrincipal
from hallpass_kit.auth import Principal, Role, TokenVerifier
from hallpass_kit.errors import ServiceUnavailable, Unauthenticated, install_error_handlers
from hallpass_kit.identity import IdentityFile
from hallpass_kit.settings import CommonSettings, Environment
from tests.identity import shapes
from tests.identity.examples import at_loopback, example
from tests.identity.provider import OidcProvider, running_provider
from tests.kit.identity_provider import Clock

REFRESH_SECONDS = 60
AN_HOUR = 3600


@pytest.fixture
def entra() -> Iterator[OidcProvider]:
    with running_provider(shapes.TRUST_PATH) as provider:
        yield provider


@pytest.fixture
def parents() -> Iterator[OidcProvider]:
    with running_provider(shapes.PARENTS_PATH) as provider:
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identity(entra: OidcProvider, parents: OidcProvider) -> IdentityFile:
    """The trust's example file: staff from the trust's tenant, carers from Keycloak."""
    return at_loopback(example("trust.toml"), entra=entra.issuer, parents=parents.issuer)


def _verifier(identity: IdentityFile, clock: Clock, tmp_path: Path) -> TokenVerifier:
    common = CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        auth_jwks_refresh_seconds=REFRESH_SECONDS,
    )
    return TokenVerifier(common, identity=identity, clock=clock)


@pytest.fixture
def verifier(identity: IdentityFile, clock: Clock, tmp_path: Path) -> TokenVerifier:
    return _verifier(identity, clock, tmp_path)


def _staff(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "tid": shapes.TRUST_TENANT_ID,
        "client_id": shapes.TRUST_CLIENT_ID,
        "groups": [shapes.OAKFIELD_STAFF_GROUP],
        "roles": ["Hallpass.Head"],
    }
    claims.update(changes)
    return shapes.entra_v2(**claims)


def _principal_echo(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    app.state.hallpass = SimpleNamespace(verifier=verifier, carers=None)
    install_error_handlers(app)

    @app.get("/whoami")
    def whoami(principal: CurrentPrincipal) -> dict[str, str]:
        return {"sub": principal.sub, "school": principal.school, "issuer": principal.issuer}

    return app


def test_keys_are_found_by_discovery_then_fetched_from_its_jwks_uri(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    principal = verifier.verify(entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000001")))

    assert principal.sub == "0b1c2d3e-0000-4000-8000-000000000001"
    assert principal.school == "oakfield"
    assert principal.roles == {Role.head}
    assert principal.issuer == "entra"
    assert entra.requests == [
        "/" + entra.discovery_url.split("/", 3)[3],
        "/" + entra.jwks_uri.split("/", 3)[3],
    ]


def test_the_verifier_gives_sign_in_the_issuers_discovery_document(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    discovery = verifier.discovery("entra")

    assert discovery is not None
    assert discovery.document()["authorization_endpoint"] == entra.authorization_endpoint
    assert discovery.document()["code_challenge_methods_supported"] == ["S256"]


def test_a_discovery_document_naming_another_issuer_is_a_503_through_an_app(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    entra.discovery_overrides = {"issuer": "https://login.example.test/attacker/v2.0"}
    app = _principal_echo(verifier)

    with TestClient(app, raise_server_exceptions=False) as http:
        answer = http.get("/whoami", headers={"Authorization": f"Bearer {entra.mint(_staff())}"})

    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "identity_provider_unavailable"
    assert "Retry-After" in answer.headers
    # The keys of a provider that misnames itself are never asked for.
    assert entra.asked(entra.jwks_uri) == 0


def test_a_token_through_an_app_answers_with_the_mapped_principal(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    token = entra.mint(_staff(groups=[shapes.RIVERSIDE_STAFF_GROUP]))

    with TestClient(_principal_echo(verifier)) as http:
        answer = http.get("/whoami", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200
    assert answer.json()["school"] == "riverside"
    assert answer.json()["issuer"] == "entra"


def test_a_provider_that_cannot_be_reached_is_unavailable_not_a_refusal(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    token = entra.mint(_staff())
    entra.stop()

    with pytest.raises(ServiceUnavailable):
        verifier.verify(token)


def test_a_rotated_signing_key_is_picked_up(
    entra: OidcProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000001")))
    entra.rotate_keys()
    clock.advance(REFRESH_SECONDS)

    principal = verifier.verify(entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000002")))

    assert principal.sub == "0b1c2d3e-0000-4000-8000-000000000002"
    assert entra.asked(entra.jwks_uri) == 2
    # The discovery document is kept: only the keys are asked for again.
    assert entra.asked(entra.discovery_url) == 1


def test_a_withdrawn_key_stops_verifying_within_the_hour(
    entra: OidcProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    old_kid = entra.key.kid
    verifier.verify(entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000001")))
    old_key_token = entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000002"), lifetime=7200)
    entra.rotate_keys(keep_old=False)
    clock.advance(AN_HOUR)

    with pytest.raises(Unauthenticated):
        verifier.verify(old_key_token)
    assert old_kid not in {key.kid for key in entra.published}


def test_keys_held_go_on_verifying_while_the_provider_is_down(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    verifier.verify(entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000001")))
    entra.stop()

    principal = verifier.verify(entra.mint(_staff(oid="0b1c2d3e-0000-4000-8000-000000000002")))

    assert principal.sub == "0b1c2d3e-0000-4000-8000-000000000002"


def test_forged_key_ids_reach_the_provider_once_per_refresh_window(
    entra: OidcProvider, verifier: TokenVerifier, clock: Clock
) -> None:
    verifier.verify(entra.mint(_staff()))
    clock.advance(REFRESH_SECONDS)

    for forged in range(20):
        with pytest.raises(Unauthenticated):
            verifier.verify(entra.mint(_staff(), kid=f"forged-{forged}"))
    clock.advance(REFRESH_SECONDS)
    with pytest.raises(Unauthenticated):
        verifier.verify(entra.mint(_staff(), kid="forged-after-the-window"))

    # The first fetch, one for the first forged id, one for the first after the next window.
    assert entra.asked(entra.jwks_uri) == 3
    assert entra.asked(entra.discovery_url) == 1


def test_staff_and_carers_from_two_issuers_are_verified_side_by_side(
    entra: OidcProvider, parents: OidcProvider, verifier: TokenVerifier
) -> None:
    staff = verifier.verify(entra.mint(_staff()))
    carer = verifier.verify(parents.mint(shapes.parent_keycloak()))

    assert (staff.issuer, staff.school) == ("entra", "oakfield")
    assert carer.issuer == "parents"
    assert carer.roles == {Role.parent}
    assert carer.email == "sam.carter@example.com"
    assert carer.email_verified
    # A carer's schools come from their records, looked up after verification.
    assert carer.needs_carer_links
    assert entra.asked(entra.jwks_uri) == 1
    assert parents.asked(parents.jwks_uri) == 1


def test_a_token_signed_by_one_issuer_but_naming_the_other_is_refused(
    entra: OidcProvider, parents: OidcProvider, verifier: TokenVerifier
) -> None:
    verifier.verify(parents.mint(shapes.parent_keycloak()))
    forged = entra.mint({**shapes.parent_keycloak(), "iss": parents.issuer})

    with pytest.raises(Unauthenticated):
        verifier.verify(forged)


def test_each_audience_the_file_lists_is_accepted(clock: Clock, tmp_path: Path) -> None:
    with running_provider(shapes.ENTRA_PATH) as entra:
        verifier = _verifier(
            at_loopback(example("entra.toml"), entra=entra.issuer), clock, tmp_path
        )
        by_client_id = verifier.verify(entra.mint(shapes.entra_v2(roles=["Hallpass.Head"])))
        by_api_uri = verifier.verify(
            entra.mint(shapes.entra_v2(roles=["Hallpass.Office"]), audience=shapes.ENTRA_API_URI)
        )

    assert by_client_id.roles == {Role.head}
    assert by_api_uri.roles == {Role.office}


def test_a_token_for_another_audience_is_refused(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    token = entra.mint(_staff(), audience="00000000-0000-4000-8000-00000000beef")

    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)

    assert "aud" in refused.value.detail


def test_a_keycloak_token_listing_several_audiences_is_accepted_for_ours(
    parents: OidcProvider, verifier: TokenVerifier
) -> None:
    claims = shapes.parent_keycloak()

    carer = verifier.verify(parents.mint(claims))

    assert claims["aud"] == ["hallpass", "account"]
    assert carer.sub == claims["sub"]


def test_an_issuer_not_in_the_file_is_refused_by_name_without_asking_it(
    verifier: TokenVerifier,
) -> None:
    with running_provider("/realms/elsewhere") as stranger:
        with pytest.raises(Unauthenticated) as refused:
            verifier.verify(stranger.mint(shapes.keycloak(realm="elsewhere")))

        assert stranger.requests == []
    assert refused.value.status == 401
    assert stranger.issuer in refused.value.detail


def test_a_trust_officer_in_both_academies_chooses_one_per_request(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    token = entra.mint(_staff(groups=[], roles=["Hallpass.TrustAdmin"]))

    with TestClient(_principal_echo(verifier), raise_server_exceptions=False) as http:
        unchosen = http.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        chosen = http.get(
            "/whoami",
            headers={"Authorization": f"Bearer {token}", "X-Hallpass-School": "riverside"},
        )

    assert unchosen.status_code == 400
    assert unchosen.json()["code"] == "school_not_chosen"
    assert chosen.json()["school"] == "riverside"


def test_a_trust_administrator_is_an_administrator_in_each_academy(
    entra: OidcProvider, verifier: TokenVerifier
) -> None:
    principal: Principal = verifier.verify(
        entra.mint(_staff(groups=[], roles=["Hallpass.TrustAdmin"]))
    )

    assert principal.schools == {"oakfield", "riverside"}
    assert principal.acting_for("riverside").roles == {Role.trust_admin, Role.admin}
    assert principal.trust == "oak-valley"
