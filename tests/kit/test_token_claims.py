"""Every claim a principal is built from is checked for its JSON type and shape: a validly signed
token with a claim of the wrong type is a 401 naming that claim — never a 500, never a grant."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jws, jwt

from hallpass_kit.auth import INTERNAL_ISSUER, DevIssuer, Role, TokenVerifier
from hallpass_kit.clients import DevServiceTokens
from hallpass_kit.errors import Unauthenticated
from hallpass_kit.identity import IdentityFile, map_claims, single_issuer
from hallpass_kit.settings import CommonSettings, Environment

PROBLEM_JSON = "application/problem+json"
GUARDIAN = uuid.uuid4()
ABSENT = object()

# claim → value: each makes a validly signed token's claim the wrong JSON type or shape.
WRONG_CLAIMS: dict[str, tuple[str, Any]] = {
    "roles a number": ("roles", 5),
    "roles null": ("roles", None),
    "roles a list of lists": ("roles", [["head"]]),
    "roles an object": ("roles", {"head": True}),
    "roles an empty string": ("roles", ""),
    "roles a space-separated string": ("roles", "head staff"),
    "roles numbers": ("roles", [1, 2]),
    "roles a name and a boolean": ("roles", ["head", True]),
    "school a number": ("school", 7),
    "school empty": ("school", ""),
    "school a list": ("school", ["oakfield", "riverside"]),
    "school null": ("school", None),
    "school with a line break": ("school", "oakfield\nriverside"),
    "school too long": ("school", "o" * 201),
    "guardian not a uuid": ("guardian", "not-a-uuid"),
    "guardian a number": ("guardian", 5),
    "guardian a list": ("guardian", [str(GUARDIAN)]),
    "email a list": ("email", ["carer@example.org"]),
    "email a number": ("email", 5),
    "email with a header injection": ("email", "carer@example.org\r\nBcc: all@example.org"),
    "sub empty": ("sub", ""),
    "sub a number": ("sub", 5),
    "sub null": ("sub", None),
    "exp a string": ("exp", "9999999999"),
    "exp a boolean": ("exp", True),
    "exp beyond any date": ("exp", 10**30),
    "nbf a string": ("nbf", "0"),
    "iat a list": ("iat", [0]),
}


def _token(issuer: DevIssuer, **changes: Any) -> str:
    """A carer's token signed by ``issuer``, with claims changed, set to null or left out."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "carer@example.org",
        "iat": now,
        "exp": now + 600,
        "school": "oakfield",
        "roles": ["parent"],
        "guardian": str(GUARDIAN),
        "email": "carer@example.org",
    }
    payload.update(changes)
    payload = {name: value for name, value in payload.items() if value is not ABSENT}
    return jwt.encode({"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}, payload, issuer.key)


def _verifier(
    issuer: DevIssuer, *, school_claim: str = "school", roles_claim: str = "roles"
) -> TokenVerifier:
    common = CommonSettings(
        env=Environment.test, auth_school_claim=school_claim, auth_roles_claim=roles_claim
    )
    return TokenVerifier(common, key_set=issuer.key_set())


def _ping(client: TestClient, token: str) -> Any:
    return client.get("/v1/ping", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("case", list(WRONG_CLAIMS))
def test_a_claim_of_the_wrong_type_is_refused_naming_it(case: str, issuer: DevIssuer) -> None:
    claim, value = WRONG_CLAIMS[case]

    with pytest.raises(Unauthenticated) as refused:
        _verifier(issuer).verify(_token(issuer, **{claim: value}))

    assert refused.value.code == "invalid_token"
    assert f"`{claim}` claim must" in refused.value.detail


@pytest.mark.parametrize("case", list(WRONG_CLAIMS))
def test_a_claim_of_the_wrong_type_is_a_401_problem_on_a_request(
    case: str, issuer: DevIssuer, client: TestClient
) -> None:
    claim, value = WRONG_CLAIMS[case]

    response = _ping(client, _token(issuer, **{claim: value}))

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "invalid_token"
    assert f"`{claim}` claim must" in response.json()["detail"]


def test_the_roles_claim_is_named_in_the_promised_words(issuer: DevIssuer) -> None:
    with pytest.raises(Unauthenticated) as refused:
        _verifier(issuer).verify(_token(issuer, roles={"head": True}))

    assert refused.value.detail == "The token's `roles` claim must be a list of strings."


@pytest.mark.parametrize("claim", ["sub", "school", "exp"])
def test_a_missing_claim_is_a_401_naming_it(
    claim: str, issuer: DevIssuer, client: TestClient
) -> None:
    response = _ping(client, _token(issuer, **{claim: ABSENT}))

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"
    assert f"`{claim}`" in response.json()["detail"]


def test_a_well_formed_carers_token_gives_every_claim_to_the_principal(
    issuer: DevIssuer,
) -> None:
    principal = _verifier(issuer).verify(_token(issuer))

    assert principal.sub == "carer@example.org"
    assert principal.school == "oakfield"
    assert principal.roles == frozenset({Role.parent})
    assert principal.guardian_id == GUARDIAN
    assert principal.email == "carer@example.org"


def test_role_names_hallpass_does_not_know_are_ignored(issuer: DevIssuer) -> None:
    token = _token(issuer, roles=["head", "superuser", "Head", "Domain Admins"], guardian=ABSENT)

    principal = _verifier(issuer).verify(token)

    assert principal.roles == frozenset({Role.head})


def test_a_token_with_only_unknown_roles_grants_nothing(
    issuer: DevIssuer, client: TestClient
) -> None:
    response = _ping(client, _token(issuer, roles=["superuser"]))

    assert response.status_code == 401
    assert response.json()["detail"] == "The token carries no Hallpass role."


def test_a_null_optional_claim_is_taken_as_absent(issuer: DevIssuer) -> None:
    token = _token(issuer, roles=["staff"], guardian=None, email=None)

    principal = _verifier(issuer).verify(token)

    assert (principal.guardian_id, principal.email) == (None, None)


def test_a_renamed_claim_is_named_as_the_provider_calls_it() -> None:
    provider = single_issuer(
        name="school-idp",
        issuer="https://login.example.org",
        audience="hallpass",
        jwks_uri="https://login.example.org/keys",
        school_claim="school",
        roles_claim="app_roles",
    )

    with pytest.raises(Unauthenticated) as refused:
        map_claims(
            IdentityFile(), provider, {"sub": "x", "school": "oakfield", "app_roles": {"head": 1}}
        )

    assert refused.value.detail == (
        "The token's `app_roles` claim must be a string or a list of strings."
    )


def test_service_tokens_verify_whatever_the_provider_calls_its_claims(issuer: DevIssuer) -> None:
    # The internal issuer writes ``school`` and ``roles`` whatever names people's tokens use.
    verifier = _verifier(issuer, school_claim="extension_school", roles_claim="app_roles")
    internal = DevIssuer.generate(INTERNAL_ISSUER, issuer.audience)
    verifier.trust_internal(internal)

    principal = verifier.verify(DevServiceTokens(internal, "media").token_for("oakfield"))

    assert (principal.school, principal.roles) == ("oakfield", frozenset({Role.service}))


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


MALFORMED_TOKENS = {
    "not a jwt": "not.a.jwt",
    "unsigned": f"{_segment({'alg': 'none'})}.{_segment({'sub': 'x'})}.",
    "algorithm a list": f"{_segment({'alg': ['RS256']})}.{_segment({})}.c2ln",
    "key id a number": f"{_segment({'alg': 'RS256', 'kid': 5})}.{_segment({})}.c2ln",
    "header a list": f"{_segment([1])}.{_segment({})}.c2ln",
    "payload not json": f"{_segment({'alg': 'RS256'})}.bm90IGpzb24.c2ln",
}


@pytest.mark.parametrize("case", list(MALFORMED_TOKENS))
def test_a_malformed_token_is_refused(case: str, issuer: DevIssuer) -> None:
    with pytest.raises(Unauthenticated) as refused:
        _verifier(issuer).verify(MALFORMED_TOKENS[case])

    assert refused.value.code == "invalid_token"


@pytest.mark.parametrize("case", list(MALFORMED_TOKENS))
def test_a_malformed_token_is_a_401_problem(
    case: str, issuer: DevIssuer, client: TestClient
) -> None:
    response = _ping(client, MALFORMED_TOKENS[case])

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"


def test_a_validly_signed_payload_that_is_not_an_object_is_refused(issuer: DevIssuer) -> None:
    token = jws.serialize_compact({"alg": "RS256", "kid": issuer.kid}, b"[1, 2]", issuer.key)

    with pytest.raises(Unauthenticated):
        _verifier(issuer).verify(token)
