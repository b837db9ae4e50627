"""A carer signed in with their own account (no guardian id in the token) reaches their child's
pictures (M8, A2): media finds their records through consent, asked with the carer's own token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, RememberedCarerLinks
from hallpass_kit.clients import SCHOOL_HEADER, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.context import media_context
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from tests.conftest import SCHOOL, SISTER_SCHOOL, Headers, TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem
from tests.consent.carer_accounts import carer_consent_app, carer_headers, carer_verifier
from tests.kit.identity_provider import Clock, IdentityProvider, running_provider
from tests.media import images
from tests.media.builders import MediaWorld

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
def media_app(
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    media_settings: MediaSettings,
    scanner: Scanner,
    provider: IdentityProvider,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=media_settings,
        verifier=carer_verifier(common_settings, issuer, provider),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )


def pictured_child(world: MediaWorld, email: str = ADDRESS) -> tuple[str, str, str]:
    """A child whose carer holds ``email`` and agreed to the website: (pupil, guardian, media)."""
    pupil = world.school.pupil("Amara", "Okafor")
    guardian = world.school.guardian(pupil, email=email)
    world.school.consent(pupil, guardian, "website_photo")
    picture = images.jpeg(images.photo(400, 300, seed=6))
    return pupil, guardian, world.upload(picture, pupils=[pupil])


def own_account(
    provider: IdentityProvider, *, email: str = ADDRESS, verified: bool = True
) -> Headers:
    return carer_headers(provider, email=email, verified=verified)


def pictures(world: MediaWorld, pupil: str, headers: Headers) -> list[str]:
    response = world.client.get(f"/v1/pupils/{pupil}/media", headers=headers)
    assert response.status_code == 200, response.text
    return [item["media_id"] for item in response.json()["items"]]


def test_a_carer_signed_in_as_themselves_lists_their_childs_pictures(
    world: MediaWorld, provider: IdentityProvider
) -> None:
    pupil, _guardian, media_id = pictured_child(world)

    assert pictures(world, pupil, own_account(provider)) == [media_id]


def test_a_carer_not_linked_yet_is_told_so(world: MediaWorld, provider: IdentityProvider) -> None:
    pupil, _guardian, _media = pictured_child(world)

    response = world.client.get(
        f"/v1/pupils/{pupil}/media", headers=own_account(provider, verified=False)
    )

    assert_problem(response, 403, "carer_not_linked")


def test_a_linked_carer_asking_for_another_child_gets_404(
    world: MediaWorld, provider: IdentityProvider
) -> None:
    pictured_child(world)
    other, _guardian, _media = pictured_child(world, email="oliver.shaw@example.org")

    response = world.client.get(f"/v1/pupils/{other}/media", headers=own_account(provider))

    assert_problem(response, 404, "pupil_not_found")


def test_a_carer_with_children_in_two_schools_names_the_one_this_request_is_for(
    world: MediaWorld, provider: IdentityProvider, client: TestClient, auth: TokenFactory
) -> None:
    pupil, _guardian, media_id = pictured_child(world)
    sister = SchoolBuilder(client, auth, SISTER_SCHOOL)
    sister.set_up(name="Ashgrove Academy")
    sister.guardian(sister.pupil("Kofi", "Okafor"), email=ADDRESS)
    headers = own_account(provider)

    unnamed = world.client.get(f"/v1/pupils/{pupil}/media", headers=headers)

    assert_problem(unnamed, 400, "school_not_chosen")
    assert pictures(world, pupil, {**headers, SCHOOL_HEADER: SCHOOL}) == [media_id]


def test_an_unlink_reaches_media_once_the_remembered_links_are_stale(
    world: MediaWorld,
    provider: IdentityProvider,
    media_app: FastAPI,
    client: TestClient,
    auth: TokenFactory,
) -> None:
    clock = Clock()
    context = media_context(media_app.state.hallpass)
    context.carers = RememberedCarerLinks(context.consent.carer_links, ttl_seconds=30, clock=clock)
    pupil, guardian, media_id = pictured_child(world)
    headers = own_account(provider)
    assert pictures(world, pupil, headers) == [media_id]
    [account] = client.get(f"/v1/guardians/{guardian}/accounts", headers=auth("office")).json()
    client.delete(f"/v1/guardians/{guardian}/accounts/{account['id']}", headers=auth("office"))

    clock.advance(29)
    assert pictures(world, pupil, headers) == [media_id]
    clock.advance(2)
    refused = world.client.get(f"/v1/pupils/{pupil}/media", headers=headers)

    assert_problem(refused, 403, "carer_not_linked")


def test_a_carer_who_has_just_redeemed_their_code_is_let_in_at_once(
    world: MediaWorld, provider: IdentityProvider, client: TestClient, auth: TokenFactory
) -> None:
    pupil, guardian, media_id = pictured_child(world)
    headers = own_account(provider, email="grace@personal.example", verified=False)
    assert_problem(
        world.client.get(f"/v1/pupils/{pupil}/media", headers=headers), 403, "carer_not_linked"
    )
    code = client.post(f"/v1/guardians/{guardian}/invitations", headers=auth("office")).json()

    redeemed = client.post(
        "/v1/me/invitations:redeem", json={"code": code["code"]}, headers=headers
    )

    assert redeemed.status_code == 200, redeemed.text
    assert pictures(world, pupil, headers) == [media_id]
