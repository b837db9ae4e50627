"""A carer signed in with their own account (no guardian id in the token) reads their family's
messages (E3, A2): comms finds their records through consent, asked with the carer's own token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_comms.app import create_app
from hallpass_comms.delivery import EmlFolderTransport
from hallpass_comms.settings import CommsSettings
from hallpass_kit.auth import DevIssuer
from hallpass_kit.clients import SCHOOL_HEADER, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from tests.comms.conftest import FrozenClock, sent
from tests.conftest import SCHOOL, SISTER_SCHOOL, Headers, TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem
from tests.consent.carer_accounts import carer_consent_app, carer_headers, carer_verifier
from tests.kit.identity_provider import IdentityProvider, running_provider

ADDRESS = "grace.okafor@example.org"


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def consent_app(
    consent_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    provider: IdentityProvider,
) -> FastAPI:
    return carer_consent_app(consent_db, issuer, common_settings, provider)


@pytest.fixture
def comms_app(
    comms_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    clock: FrozenClock,
    outbox: Path,
    provider: IdentityProvider,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=CommsSettings(reminder_within_days=0),
        verifier=carer_verifier(common_settings, issuer, provider),
        consent=consent_client,
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(outbox),
        clock=clock,
    )


def family_with_address(school: SchoolBuilder, email: str = ADDRESS) -> str:
    pupil = school.pupil("Amara", "Okafor")
    school.guardian(pupil, email=email)
    return pupil


def own_account(
    provider: IdentityProvider, *, email: str = ADDRESS, verified: bool = True
) -> Headers:
    return carer_headers(provider, email=email, verified=verified)


def history(comms: TestClient, pupil: str, headers: Headers) -> Any:
    return comms.get(f"/v1/families/{pupil}/messages", headers=headers)


def test_a_carer_signed_in_as_themselves_reads_their_familys_messages(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    provider: IdentityProvider,
) -> None:
    pupil = family_with_address(school)
    receipt = sent(comms, auth("staff"), {"pupil_ids": [pupil]})

    response = history(comms, pupil, own_account(provider))

    assert response.status_code == 200, response.text
    assert [m["id"] for m in response.json()["items"]] == [receipt["id"]]


def test_a_carer_not_linked_yet_is_told_so(
    comms: TestClient,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    provider: IdentityProvider,
) -> None:
    pupil = family_with_address(school)

    response = history(comms, pupil, own_account(provider, verified=False))

    assert_problem(response, 403, "carer_not_linked")


def test_a_linked_carer_asking_for_another_familys_messages_gets_404(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    provider: IdentityProvider,
) -> None:
    family_with_address(school)
    other = family_with_address(school, email="oliver.shaw@example.org")
    sent(comms, auth("staff"), {"pupil_ids": [other]})

    response = history(comms, other, own_account(provider))

    assert_problem(response, 404, "unknown_pupil")


def test_a_carer_in_two_schools_reads_the_messages_of_the_school_they_name(
    comms: TestClient,
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    provider: IdentityProvider,
) -> None:
    pupil = family_with_address(school)
    receipt = sent(comms, auth("staff"), {"pupil_ids": [pupil]})
    sister = SchoolBuilder(client, auth, SISTER_SCHOOL)
    sister.set_up(name="Ashgrove Academy")
    family_with_address(sister)
    headers = own_account(provider)

    unnamed = history(comms, pupil, headers)
    named = history(comms, pupil, {**headers, SCHOOL_HEADER: SCHOOL})

    assert_problem(unnamed, 400, "school_not_chosen")
    assert named.status_code == 200, named.text
    assert [m["id"] for m in named.json()["items"]] == [receipt["id"]]


def test_a_carer_signed_in_as_themselves_is_audited_under_their_account(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    provider: IdentityProvider,
) -> None:
    pupil = family_with_address(school)
    sent(comms, auth("staff"), {"pupil_ids": [pupil]})
    headers = carer_headers(provider, email=ADDRESS, sub="f:grace-okafor")

    assert history(comms, pupil, headers).status_code == 200

    trail = comms.get("/v1/audit", params={"limit": "50"}, headers=auth("head")).json()["items"]
    assert any(e["actor"] == "f:grace-okafor" for e in trail), trail
