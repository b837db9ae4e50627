"""Carers sign in with their own accounts (issue 10): linked to their records by a verified
address or a one-time invitation code, unlinked by the office, and shown their children in every
school they have a record in (A2: never anyone else's)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from hallpass_consent.app import create_app
from hallpass_consent.carers import policy
from hallpass_consent.models import Base
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.db import Database, utcnow
from hallpass_kit.settings import CommonSettings
from tests.conftest import OTHER_SCHOOL, SCHOOL, SISTER_SCHOOL, Headers, TokenFactory
from tests.consent.builders import SchoolBuilder, SchoolRecords, assert_problem
from tests.consent.carer_accounts import PARENTS, carer_headers, carer_verifier
from tests.kit.identity_provider import IdentityProvider, running_provider

ADDRESS = "grace.okafor@example.org"


class Clock:
    """The consent service's clock, moved by the test (codes expire by it)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def consent_app(
    consent_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    provider: IdentityProvider,
    clock: Clock,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=ConsentSettings(),
        verifier=carer_verifier(common_settings, issuer, provider),
        database=consent_db,
        run_background=False,
        migrate=False,
        clock=clock,
    )


def carer(provider: IdentityProvider, email: str | None = ADDRESS, **claims: Any) -> Headers:
    return carer_headers(provider, email=email, **claims)


def school_with_family(
    client: TestClient, auth: TokenFactory, school: str = SCHOOL, *, email: str = ADDRESS
) -> tuple[str, str]:
    """A school set up with one pupil and their carer holding ``email``: (pupil, guardian)."""
    builder = SchoolBuilder(client, auth, school)
    builder.set_up(name=f"{school.title()} School")
    pupil = builder.pupil("Amara", "Okafor")
    return pupil, builder.guardian(pupil, email=email)


def children(client: TestClient, headers: Headers) -> list[dict[str, Any]]:
    response = client.get("/v1/me/children", headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def invite(client: TestClient, auth: TokenFactory, guardian: str, school: str = SCHOOL) -> str:
    response = client.post(
        f"/v1/guardians/{guardian}/invitations", headers=auth("office", school=school)
    )
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


def redeem(client: TestClient, headers: Headers, code: str) -> Any:
    return client.post("/v1/me/invitations:redeem", json={"code": code}, headers=headers)


def accounts(
    client: TestClient, auth: TokenFactory, guardian: str, school: str = SCHOOL
) -> list[dict[str, Any]]:
    response = client.get(
        f"/v1/guardians/{guardian}/accounts", headers=auth("office", school=school)
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def entries(
    client: TestClient, auth: TokenFactory, action: str, school: str = SCHOOL
) -> list[dict[str, Any]]:
    return [e for e in SchoolRecords(client, auth, school).audit() if e["action"] == action]


# --- linking by a verified address ---------------------------------------------------------------


def test_a_verified_address_links_the_carer_to_their_record(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    pupil, guardian = school_with_family(client, auth)
    # The provider's address in another case than the school typed it.
    headers = carer(provider, email="Grace.Okafor@EXAMPLE.org")

    shown = children(client, headers)

    assert [(c["school"], c["pupil_id"]) for c in shown] == [(SCHOOL, pupil)]
    links = client.get("/v1/me/links", headers=headers).json()
    assert links == {"links": [{"school": SCHOOL, "guardian_id": guardian}], "schools": [SCHOOL]}
    [account] = accounts(client, auth, guardian)
    assert account["issuer"] == PARENTS
    assert account["how"] == "verified_email"
    assert "subject" not in account


def test_a_link_made_by_address_is_audited_in_the_guardians_school(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)

    children(client, carer(provider))

    [entry] = entries(client, auth, "carer_account.linked")
    assert entry["target"] == guardian
    assert entry["details"] == {"how": "verified_email", "issuer": PARENTS}


def test_a_carer_with_children_in_two_schools_of_a_trust_sees_both(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    primary_pupil, _ = school_with_family(client, auth, SCHOOL)
    secondary_pupil, _ = school_with_family(client, auth, SISTER_SCHOOL)

    shown = children(client, carer(provider))

    assert sorted((c["school"], c["pupil_id"]) for c in shown) == sorted(
        [(SCHOOL, primary_pupil), (SISTER_SCHOOL, secondary_pupil)]
    )


def test_a_carer_in_two_schools_answers_for_a_child_in_the_school_that_holds_them(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    school_with_family(client, auth, SCHOOL)
    secondary_pupil, _ = school_with_family(client, auth, SISTER_SCHOOL)
    headers = carer(provider)

    answered = client.post(
        f"/v1/me/children/{secondary_pupil}/consents",
        json={"purpose": "website_photo", "decision": "granted"},
        headers=headers,
    )

    assert answered.status_code == 201, answered.text
    history = SchoolRecords(client, auth, SISTER_SCHOOL).history(secondary_pupil)
    assert [record["id"] for record in history] == [answered.json()["id"]]
    receipt = client.get(f"/v1/me/consents/{answered.json()['id']}/receipt", headers=headers)
    assert receipt.status_code == 200, receipt.text


def test_a_carer_naming_one_of_their_schools_sees_only_that_schools_children(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    school_with_family(client, auth, SCHOOL)
    secondary_pupil, _ = school_with_family(client, auth, SISTER_SCHOOL)

    shown = children(client, {**carer(provider), SCHOOL_HEADER: SISTER_SCHOOL})

    assert [c["pupil_id"] for c in shown] == [secondary_pupil]


def test_a_carer_naming_a_school_they_have_no_record_in_is_refused(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    school_with_family(client, auth, SCHOOL)

    response = client.get(
        "/v1/me/children", headers={**carer(provider), SCHOOL_HEADER: OTHER_SCHOOL}
    )

    assert_problem(response, 403, "school_not_allowed")


def test_an_unverified_address_links_nothing(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    headers = carer(provider, verified=False)

    response = client.get("/v1/me/children", headers=headers)

    assert_problem(response, 403, "carer_not_linked")
    assert client.get("/v1/me/links", headers=headers).json() == {"links": [], "schools": []}
    assert accounts(client, auth, guardian) == []
    assert entries(client, auth, "carer_account.linked") == []


def test_an_address_two_carers_of_one_school_share_links_neither(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    pupil, first = school_with_family(client, auth)
    second = SchoolBuilder(client, auth).guardian(pupil, given="Daniel", email=ADDRESS)

    response = client.get("/v1/me/children", headers=carer(provider))

    assert_problem(response, 403, "carer_not_linked")
    assert accounts(client, auth, first) == accounts(client, auth, second) == []


def test_a_linked_carer_asking_for_another_familys_child_gets_404(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    school_with_family(client, auth)
    other_child = SchoolBuilder(client, auth).family("Oliver", "Shaw").pupil_id
    headers = carer(provider)

    for path in ("", "/consents"):
        response = client.get(f"/v1/me/children/{other_child}{path}", headers=headers)
        assert_problem(response, 404, "not_found")


# --- invitations ---------------------------------------------------------------------------------


def test_an_invitation_code_links_a_carer_the_address_could_not(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)
    headers = carer(provider, email="grace@personal.example", verified=False)

    redeemed = redeem(client, headers, code)

    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json() == {"school": SCHOOL, "guardian_id": guardian}
    assert [c["pupil_id"] for c in children(client, headers)] == [pupil]
    [account] = accounts(client, auth, guardian)
    assert account["how"] == "invitation"
    assert account["email"] == "grace@personal.example"


def test_an_invitation_code_is_long_readable_and_shown_with_its_expiry(
    client: TestClient, auth: TokenFactory, clock: Clock
) -> None:
    _pupil, guardian = school_with_family(client, auth)

    response = client.post(f"/v1/guardians/{guardian}/invitations", headers=auth("office"))

    assert response.status_code == 201, response.text
    body = response.json()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", body["code"])
    assert dt.datetime.fromisoformat(body["expires_at"]) == clock.now + dt.timedelta(days=14)


def test_a_code_is_taken_in_any_case_without_its_dashes(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)

    redeemed = redeem(client, carer(provider, verified=False), code.replace("-", " ").lower())

    assert redeemed.status_code == 200, redeemed.text


def test_issuing_and_redeeming_a_code_are_audited_without_the_code(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)
    redeem(client, carer(provider, verified=False), code)

    [issued] = entries(client, auth, "carer_invitation.issued")
    [linked] = entries(client, auth, "carer_account.linked")

    assert issued["target"] == linked["target"] == guardian
    assert linked["details"]["how"] == "invitation"
    assert linked["details"]["issuer"] == PARENTS
    everything = str(SchoolRecords(client, auth).audit())
    assert code not in everything
    assert code.replace("-", "") not in everything


def test_a_code_works_once(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)
    assert redeem(client, carer(provider, verified=False), code).status_code == 200
    someone_else = carer(provider, email="mallory@example.net", verified=False)

    assert_problem(redeem(client, someone_else, code), 422, "invitation_not_valid")
    assert_problem(client.get("/v1/me/children", headers=someone_else), 403, "carer_not_linked")
    assert len(accounts(client, auth, guardian)) == 1


def test_an_expired_code_is_refused(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider, clock: Clock
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)
    clock.now += dt.timedelta(days=14, seconds=1)

    assert_problem(
        redeem(client, carer(provider, verified=False), code), 422, "invitation_not_valid"
    )


def test_a_wrong_code_is_refused_like_any_other_bad_code(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    invite(client, auth, guardian)
    headers = carer(provider, verified=False)

    for wrong in ("AAAA-BBBB-CCCC-DDDD", "not a code", "AAAA"):
        body = assert_problem(redeem(client, headers, wrong), 422, "invitation_not_valid")
        assert body["rule"] == "A2"


def test_a_new_code_replaces_the_carers_unused_one(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    first = invite(client, auth, guardian)
    second = invite(client, auth, guardian)
    headers = carer(provider, verified=False)

    assert_problem(redeem(client, headers, first), 422, "invitation_not_valid")
    assert redeem(client, headers, second).status_code == 200


def test_a_refused_code_changes_nothing(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider, clock: Clock
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)
    before = SchoolRecords(client, auth).audit_entries()
    clock.now += dt.timedelta(days=15)

    redeem(client, carer(provider, verified=False), code)

    assert SchoolRecords(client, auth).audit_entries() == before
    assert accounts(client, auth, guardian) == []
    # Still unused: once the clock is back within its life, the same code works.
    clock.now -= dt.timedelta(days=15)
    assert redeem(client, carer(provider, verified=False), code).status_code == 200


def test_another_schools_carer_is_not_found_by_the_office(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    school_with_family(client, auth, SCHOOL)
    _pupil, elsewhere = school_with_family(client, auth, OTHER_SCHOOL)
    office = auth("office")

    calls = [
        client.post(f"/v1/guardians/{elsewhere}/invitations", headers=office),
        client.get(f"/v1/guardians/{elsewhere}/accounts", headers=office),
        client.delete(f"/v1/guardians/{elsewhere}/accounts/{uuid.uuid4()}", headers=office),
    ]

    for response in calls:
        assert_problem(response, 404, "unknown_guardian")


def test_a_code_for_another_schools_carer_links_only_that_record(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    school_with_family(client, auth, SCHOOL)
    elsewhere_pupil, elsewhere = school_with_family(client, auth, OTHER_SCHOOL)
    code = invite(client, auth, elsewhere, OTHER_SCHOOL)
    headers = carer(provider, verified=False)

    redeem(client, headers, code)

    assert [(c["school"], c["pupil_id"]) for c in children(client, headers)] == [
        (OTHER_SCHOOL, elsewhere_pupil)
    ]
    assert entries(client, auth, "carer_account.linked", SCHOOL) == []
    assert len(entries(client, auth, "carer_account.linked", OTHER_SCHOOL)) == 1


# --- unlinking -----------------------------------------------------------------------------------


def test_an_unlinked_account_is_not_linked_again_by_its_address(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    headers = carer(provider)
    children(client, headers)
    [account] = accounts(client, auth, guardian)

    unlinked = client.delete(
        f"/v1/guardians/{guardian}/accounts/{account['id']}", headers=auth("office")
    )

    assert unlinked.status_code == 204, unlinked.text
    assert_problem(client.get("/v1/me/children", headers=headers), 403, "carer_not_linked")
    assert accounts(client, auth, guardian) == []
    [entry] = entries(client, auth, "carer_account.unlinked")
    assert entry["details"] == {
        "account": account["id"],
        "issuer": PARENTS,
        "how": "verified_email",
    }


def test_a_new_invitation_links_an_unlinked_account_again(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    headers = carer(provider, sub="f:grace")
    children(client, headers)
    [account] = accounts(client, auth, guardian)
    client.delete(f"/v1/guardians/{guardian}/accounts/{account['id']}", headers=auth("office"))

    assert redeem(client, headers, invite(client, auth, guardian)).status_code == 200

    [again] = accounts(client, auth, guardian)
    assert (again["id"], again["how"]) == (account["id"], "invitation")
    assert len(children(client, headers)) == 1


def test_unlinking_an_unknown_account_is_404_and_changes_nothing(
    client: TestClient, auth: TokenFactory, provider: IdentityProvider
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    before = SchoolRecords(client, auth).audit_entries()

    response = client.delete(
        f"/v1/guardians/{guardian}/accounts/{uuid.uuid4()}", headers=auth("office")
    )

    assert_problem(response, 404, "unknown_carer_account")
    assert SchoolRecords(client, auth).audit_entries() == before


# --- what stays as it was ------------------------------------------------------------------------


def test_a_dev_token_naming_the_guardian_still_reaches_their_child(
    client: TestClient, auth: TokenFactory
) -> None:
    pupil, guardian = school_with_family(client, auth)

    shown = children(client, auth("parent", guardian=guardian))

    assert [(c["school"], c["pupil_id"]) for c in shown] == [(SCHOOL, pupil)]
    links = client.get("/v1/me/links", headers=auth("parent", guardian=guardian)).json()
    assert links["links"] == [{"school": SCHOOL, "guardian_id": guardian}]


def test_staff_may_not_redeem_a_code_or_ask_for_carer_links(
    client: TestClient, auth: TokenFactory
) -> None:
    _pupil, guardian = school_with_family(client, auth)
    code = invite(client, auth, guardian)

    assert_problem(redeem(client, auth("office"), code), 403, "forbidden")
    assert_problem(client.get("/v1/me/links", headers=auth("head")), 403, "forbidden")


def test_codes_carry_at_least_sixty_bits_and_read_back_from_what_a_person_types() -> None:
    assert policy.CODE_BITS >= 60
    code = policy.code_from_number(2**policy.CODE_BITS - 1)
    assert policy.normalised_code(code.lower()) == code.replace("-", "")
    # O, I and L are read as the digits they look like.
    assert policy.normalised_code("OOOO-IIII-LLLL-0000") == "0000111111110000"
    assert policy.normalised_code("UUUU-UUUU-UUUU-UUUU") is None


# Neither SQLAlchemy nor Alembic can reflect an expression index on SQLite; the test below looks
# for that one by name instead.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_the_migrated_schema_matches_the_models(consent_db: Database) -> None:
    with consent_db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert differences == []


def test_guardians_are_indexed_by_lower_cased_address(consent_db: Database) -> None:
    catalogue = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if consent_db.engine.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'guardian'"
    )
    with consent_db.engine.connect() as connection:
        names = set(connection.execute(text(catalogue)).scalars())

    assert "ix_guardian_email_lower" in names
