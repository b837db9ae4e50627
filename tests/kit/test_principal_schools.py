"""Which school a caller acts for: a principal's grants, a carer's records, and the one school a
request chooses (the token's only one, or the one named in ``X-Hallpass-School``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.app import CurrentPrincipal
from hallpass_kit.auth import CarerDirectory, CarerLink, DevIssuer, Principal, Role, TokenVerifier
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.errors import install_error_handlers
from hallpass_kit.identity import parse_identity
from hallpass_kit.settings import CommonSettings, Environment
from tests.kit.identity_provider import AUDIENCE, ISSUER, IdentityProvider, running_provider

TRUSTS = {
    "northway": {"schools": ["oakfield", "ashgrove"]},
    "brookvale": {"schools": ["riverside", "hillcrest"]},
}
ADMIN = frozenset({Role.trust_admin, Role.admin})

# --- the principal on its own ------------------------------------------------------------------


def _trust_admin() -> Principal:
    return Principal(
        sub="ada@northway",
        school="",
        roles=frozenset({Role.trust_admin}),
        trust="northway",
        grants=(("ashgrove", ADMIN), ("oakfield", ADMIN)),
    )


def test_acting_for_a_granted_school_takes_that_schools_roles() -> None:
    principal = _trust_admin().acting_for("ashgrove")

    assert (principal.school, principal.roles) == ("ashgrove", ADMIN)
    assert principal.schools == {"oakfield", "ashgrove"}


def test_acting_for_a_school_not_granted_is_refused() -> None:
    with pytest.raises(ValueError, match="riverside"):
        _trust_admin().acting_for("riverside")


def test_a_carer_with_records_in_two_schools_acts_for_neither_until_one_is_chosen() -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    carer = Principal(sub="grace", school="", roles=frozenset({Role.parent}), issuer="parents")
    assert carer.needs_carer_links

    linked = carer.with_carers([CarerLink("riverside", two), CarerLink("oakfield", one)])

    assert linked.school == ""
    assert not linked.needs_carer_links
    assert linked.schools == {"oakfield", "riverside"}
    assert linked.acting_for("riverside").guardian_id == two
    assert linked.acting_for("oakfield").guardian_id == one
    assert linked.acting_for("oakfield").roles == {Role.parent}


def test_a_carer_with_records_in_one_school_acts_for_it_as_that_guardian() -> None:
    guardian = uuid.uuid4()
    carer = Principal(sub="grace", school="", roles=frozenset({Role.parent}))

    linked = carer.with_carers([CarerLink("oakfield", guardian)])

    assert (linked.school, linked.guardian_id) == ("oakfield", guardian)


def test_a_carer_with_no_records_acts_for_no_school() -> None:
    linked = Principal(sub="grace", school="", roles=frozenset({Role.parent})).with_carers([])

    assert (linked.school, linked.schools, linked.guardian_id) == ("", frozenset(), None)


# --- the school a request chooses ----------------------------------------------------------------


@dataclass
class _Context:
    """What ``authenticated`` reads of a service's context."""

    verifier: TokenVerifier
    carers: CarerDirectory | None = None


class _Directory:
    """Consent's answer, for carers who signed in with their own account, of their records."""

    def __init__(self, links: dict[str, list[CarerLink]]) -> None:
        self.by_subject = links

    def links(self, principal: Principal, token: str) -> list[CarerLink]:
        return self.by_subject.get(principal.sub, [])


ONE, TWO = uuid.uuid4(), uuid.uuid4()
CARERS = {
    "grace": [CarerLink("oakfield", ONE), CarerLink("riverside", TWO)],
    "tomas": [CarerLink("hillcrest", TWO)],
}


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def verifier(issuer: DevIssuer, provider: IdentityProvider, tmp_path: Path) -> TokenVerifier:
    common = CommonSettings(env=Environment.test, data_dir=tmp_path / "data")
    identity = parse_identity(
        {
            "trusts": TRUSTS,
            # Carers sign in with their own accounts; their schools come from their records.
            "issuers": [
                {
                    "name": "parents",
                    "issuer": ISSUER,
                    "jwks_uri": provider.url,
                    "audiences": [AUDIENCE],
                    "people": "parents",
                }
            ],
        }
    )
    return TokenVerifier(common, key_set=issuer.key_set(), identity=identity)


@pytest.fixture
def who(verifier: TokenVerifier) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.state.hallpass = _Context(verifier, carers=_Directory(CARERS))

    @app.get("/v1/who")
    def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
        return {
            "school": principal.school,
            "roles": sorted(principal.roles),
            "guardian": str(principal.guardian_id) if principal.guardian_id else None,
        }

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _bearer(token: str, school: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if school is not None:
        headers[SCHOOL_HEADER] = school
    return headers


def _trust_token(issuer: DevIssuer, role: Role, school: str | None = None) -> str:
    return issuer.issue(
        sub=f"{role}@northway", school=school, roles=[role], extra={"trust": "northway"}
    )


def test_a_token_for_one_school_acts_for_it_without_naming_it(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = issuer.issue(sub="head@oakfield", school="oakfield", roles=["head"])

    response = who.get("/v1/who", headers=_bearer(token))

    assert response.json() == {"school": "oakfield", "roles": ["head"], "guardian": None}


def test_a_trust_officer_chooses_a_school_of_the_trust_by_header(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = _trust_token(issuer, Role.trust_admin)

    first = who.get("/v1/who", headers=_bearer(token, "oakfield")).json()
    second = who.get("/v1/who", headers=_bearer(token, "ashgrove")).json()

    assert (first["school"], second["school"]) == ("oakfield", "ashgrove")
    assert first["roles"] == second["roles"] == ["admin", "trust_admin"]


def test_a_trust_officers_token_naming_a_school_acts_there_unless_the_header_names_another(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = _trust_token(issuer, Role.trust_dpo, school="ashgrove")

    assert who.get("/v1/who", headers=_bearer(token)).json()["school"] == "ashgrove"
    assert who.get("/v1/who", headers=_bearer(token, "oakfield")).json()["school"] == "oakfield"


def test_a_trust_officer_naming_another_trusts_school_is_refused(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = _trust_token(issuer, Role.trust_admin)

    response = who.get("/v1/who", headers=_bearer(token, "riverside"))

    assert response.status_code == 403
    assert response.json()["code"] == "school_not_allowed"
    assert "riverside" not in response.json()["detail"]


def test_a_head_naming_another_school_is_refused(who: TestClient, issuer: DevIssuer) -> None:
    token = issuer.issue(sub="head@oakfield", school="oakfield", roles=["head"])

    response = who.get("/v1/who", headers=_bearer(token, "ashgrove"))

    assert response.status_code == 403
    assert response.json()["code"] == "school_not_allowed"


def test_a_caller_of_two_schools_who_names_none_is_asked_to_choose(
    who: TestClient, issuer: DevIssuer
) -> None:
    response = who.get("/v1/who", headers=_bearer(_trust_token(issuer, Role.trust_dpo)))

    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "school_not_chosen"
    assert "ashgrove" in problem["detail"]
    assert "oakfield" in problem["detail"]


def test_a_trust_role_token_naming_a_school_outside_its_trust_is_refused(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = _trust_token(issuer, Role.trust_admin, school="riverside")

    response = who.get("/v1/who", headers=_bearer(token, "riverside"))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_a_trust_role_token_naming_no_trust_of_the_identity_file_is_refused(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = issuer.issue(
        sub="x@elsewhere", school=None, roles=["trust_admin"], extra={"trust": "elsewhere"}
    )

    response = who.get("/v1/who", headers=_bearer(token))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_a_service_token_acts_for_the_school_it_names(who: TestClient, issuer: DevIssuer) -> None:
    token = issuer.issue(sub="media", school=None, roles=["service"])

    response = who.get("/v1/who", headers=_bearer(token, "hillcrest"))

    assert response.json() == {"school": "hillcrest", "roles": ["service"], "guardian": None}


def test_a_service_token_that_names_no_school_is_refused(
    who: TestClient, issuer: DevIssuer
) -> None:
    token = issuer.issue(sub="media", school=None, roles=["service"])

    response = who.get("/v1/who", headers=_bearer(token))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def _carer_token(provider: IdentityProvider, sub: str) -> str:
    return provider.issue(sub=sub, school=None, roles=None, email=f"{sub}@example.org")


def test_a_signed_in_carer_with_one_record_acts_for_its_school_as_that_guardian(
    who: TestClient, provider: IdentityProvider
) -> None:
    response = who.get("/v1/who", headers=_bearer(_carer_token(provider, "tomas")))

    assert response.json() == {"school": "hillcrest", "roles": ["parent"], "guardian": str(TWO)}


def test_a_signed_in_carer_with_records_in_two_schools_names_one(
    who: TestClient, provider: IdentityProvider
) -> None:
    token = _carer_token(provider, "grace")

    unnamed = who.get("/v1/who", headers=_bearer(token))
    riverside = who.get("/v1/who", headers=_bearer(token, "riverside"))
    elsewhere = who.get("/v1/who", headers=_bearer(token, "ashgrove"))

    assert unnamed.status_code == 400
    assert unnamed.json()["code"] == "school_not_chosen"
    assert riverside.json() == {"school": "riverside", "roles": ["parent"], "guardian": str(TWO)}
    assert elsewhere.status_code == 403
    assert elsewhere.json()["code"] == "school_not_allowed"


def test_a_signed_in_carer_with_no_record_is_told_to_link_their_account(
    who: TestClient, provider: IdentityProvider
) -> None:
    response = who.get("/v1/who", headers=_bearer(_carer_token(provider, "stranger"), "oakfield"))

    assert response.status_code == 403
    assert response.json()["code"] == "carer_not_linked"
