"""Trust officers in media: two trusts of two schools each. A trust's data protection officer
answers subject access requests (M8) in each school of their trust and publishes nothing; its
administrator registers devices in the school they name; another trust's schools refuse both
and nothing changes; a head stays in their own school; a caller of two schools names one."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.settings import CommonSettings
from tests.conftest import (
    OTHER_SCHOOL,
    OTHER_SISTER_SCHOOL,
    OTHER_TRUST,
    SCHOOL,
    SISTER_SCHOOL,
    TRUST,
    TokenFactory,
    TrustTokenFactory,
)
from tests.consent.builders import SchoolBuilder
from tests.media.test_authorization_matrix import World, build_world


@pytest.fixture
def common_settings(trust_settings: CommonSettings) -> CommonSettings:
    return trust_settings


def trail(media_client: TestClient, auth: TokenFactory, school: str) -> list[dict[str, Any]]:
    response = media_client.get("/v1/audit?limit=500", headers=auth("head", school=school))
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries


def by(entries: list[dict[str, Any]], actor: str) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in entries if e["actor"] == actor]


def devices(media_client: TestClient, auth: TokenFactory, school: str) -> set[str]:
    response = media_client.get("/v1/devices", headers=auth("office", school=school))
    assert response.status_code == 200, response.text
    return {d["id"] for d in response.json()["items"]}


def assert_problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


@pytest.fixture
def sister(media_client: TestClient, client: TestClient, auth: TokenFactory) -> World:
    """The sister school of the trust, with a pupil's photograph taken and published; the
    test school is set up beside it, empty."""
    SchoolBuilder(client, auth).set_up()
    return build_world(media_client, client, auth, SISTER_SCHOOL)


def test_a_trust_dpo_answers_a_subject_access_request_in_the_school_they_name(
    sister: World, media_client: TestClient, auth: TokenFactory, trust_auth: TrustTokenFactory
) -> None:
    dpo = trust_auth("trust_dpo", acting_for=SISTER_SCHOOL)

    listed = media_client.get(f"/v1/pupils/{sister.pupil}/media", headers=dpo)
    exported = media_client.get(f"/v1/pupils/{sister.pupil}/media:export", headers=dpo)

    assert listed.status_code == 200, listed.text
    assert [m["media_id"] for m in listed.json()["items"]] == [sister.media]
    assert exported.status_code == 200, exported.text
    actor = f"trust_dpo@{TRUST}"
    assert by(trail(media_client, auth, SISTER_SCHOOL), actor) == [
        ("subject_access.exported", "ok"),
        ("subject_access.listed", "ok"),
    ]
    assert by(trail(media_client, auth, SCHOOL), actor) == []


def test_a_trust_dpo_acting_for_the_other_school_of_the_trust_finds_no_such_pupil(
    sister: World, media_client: TestClient, trust_auth: TrustTokenFactory
) -> None:
    """The pupil is the sister school's: acting for the test school, the DPO sees none of it."""
    response = media_client.get(
        f"/v1/pupils/{sister.pupil}/media", headers=trust_auth("trust_dpo", acting_for=SCHOOL)
    )

    assert_problem(response, 404, "pupil_not_found")
    assert sister.media not in response.text


def test_a_trust_dpo_publishes_nothing_and_the_refusal_is_audited_in_that_school(
    sister: World, media_client: TestClient, auth: TokenFactory, trust_auth: TrustTokenFactory
) -> None:
    dpo = trust_auth("trust_dpo", acting_for=SISTER_SCHOOL)
    before = media_client.get("/v1/publications", headers=auth("head", school=SISTER_SCHOOL))

    response = media_client.post(
        "/v1/publications", json={"channel": "website", "media_ids": [sister.media]}, headers=dpo
    )

    assert_problem(response, 403, "forbidden")
    after = media_client.get("/v1/publications", headers=auth("head", school=SISTER_SCHOOL))
    assert after.json() == before.json()
    actor = f"trust_dpo@{TRUST}"
    assert [o for _, o in by(trail(media_client, auth, SISTER_SCHOOL), actor)] == ["refused"]
    assert by(trail(media_client, auth, SCHOOL), actor) == []


@pytest.mark.parametrize("school", [SCHOOL, SISTER_SCHOOL])
def test_a_trust_admin_registers_a_device_in_the_school_they_name(
    school: str,
    media_client: TestClient,
    client: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    other = SISTER_SCHOOL if school == SCHOOL else SCHOOL

    response = media_client.post(
        "/v1/devices",
        json={"name": "Trust camera", "serial": "TR-1"},
        headers=trust_auth("trust_admin", acting_for=school),
    )

    assert response.status_code == 201, response.text
    assert devices(media_client, auth, school) == {response.json()["id"]}
    assert devices(media_client, auth, other) == set()
    actor = f"trust_admin@{TRUST}"
    assert by(trail(media_client, auth, school), actor) == [("device.registered", "ok")]
    assert by(trail(media_client, auth, other), actor) == []


def test_a_trust_admin_whose_token_names_no_school_must_choose_one(
    media_client: TestClient, auth: TokenFactory, trust_auth: TrustTokenFactory
) -> None:
    response = media_client.post(
        "/v1/devices",
        json={"name": "Trust camera", "serial": "TR-2"},
        headers=trust_auth("trust_admin", named_school=False),
    )

    assert_problem(response, 400, "school_not_chosen")
    assert devices(media_client, auth, SCHOOL) == set()
    assert devices(media_client, auth, SISTER_SCHOOL) == set()


@pytest.mark.parametrize("school", [OTHER_SCHOOL, OTHER_SISTER_SCHOOL])
@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("trust_admin", "POST", "/v1/devices", {"name": "Camera", "serial": "X-1"}),
        ("trust_admin", "GET", "/v1/devices", None),
        ("trust_dpo", "GET", "/v1/pupils/{pupil}/media", None),
        ("trust_dpo", "GET", "/v1/audit", None),
    ],
)
def test_a_trust_officer_is_refused_in_another_trusts_schools_and_nothing_changes(
    school: str,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    media_client: TestClient,
    client: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    builder = SchoolBuilder(client, auth, school)
    builder.set_up()
    pupil = builder.pupil()
    devices_before = devices(media_client, auth, school)
    trail_before = trail(media_client, auth, school)

    response = media_client.request(
        method, path.format(pupil=pupil), json=body, headers=trust_auth(role, acting_for=school)
    )

    assert_problem(response, 403, "school_not_allowed")
    assert devices(media_client, auth, school) == devices_before
    assert trail(media_client, auth, school) == trail_before


def test_another_trusts_dpo_is_refused_in_this_trusts_schools(
    sister: World, media_client: TestClient, trust_auth: TrustTokenFactory
) -> None:
    response = media_client.get(
        f"/v1/pupils/{sister.pupil}/media",
        headers=trust_auth("trust_dpo", trust=OTHER_TRUST, acting_for=SISTER_SCHOOL),
    )

    assert_problem(response, 403, "school_not_allowed")
    assert sister.media not in response.text


def test_a_head_of_one_school_cannot_act_in_the_sister_school(
    sister: World, media_client: TestClient, auth: TokenFactory
) -> None:
    head = {**auth("head"), SCHOOL_HEADER: SISTER_SCHOOL}

    listed = media_client.get(f"/v1/pupils/{sister.pupil}/media", headers=head)
    registered = media_client.post(
        "/v1/devices", json={"name": "Camera", "serial": "H-1"}, headers=head
    )

    assert_problem(listed, 403, "school_not_allowed")
    assert_problem(registered, 403, "school_not_allowed")
    assert sister.media not in listed.text
    assert devices(media_client, auth, SISTER_SCHOOL) == {sister.device, sister.spare_device}
