"""Trust officers in comms: two trusts of two schools each. A trust's administrator sets a
school's mail settings in the school they name; its data protection officer reads and verifies
each school's trail and sends nothing, reads no family's mail and no pastoral matter (E7);
another trust's schools refuse both and nothing changes; a head stays in their own school; a
caller of two schools names one."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.settings import CommonSettings
from tests.comms.conftest import settings_body
from tests.comms.test_authorization_matrix import World, build_world
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


@pytest.fixture
def common_settings(trust_settings: CommonSettings) -> CommonSettings:
    return trust_settings


def trail(comms: TestClient, auth: TokenFactory, school: str) -> list[dict[str, Any]]:
    response = comms.get("/v1/audit", params={"limit": "500"}, headers=auth("head", school=school))
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries


def by(entries: list[dict[str, Any]], actor: str) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in entries if e["actor"] == actor]


def mail_settings(comms: TestClient, auth: TokenFactory, school: str) -> Any:
    return comms.get("/v1/settings", headers=auth("head", school=school)).json()


def assert_problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def school_settings(school: str, **changes: Any) -> dict[str, Any]:
    domain = f"{school}.sch.uk"
    return settings_body(
        domains=[domain],
        head_address=f"head@{domain}",
        deputy_address=f"deputy@{domain}",
        dsl_address=f"dsl@{domain}",
        office_address=f"office@{domain}",
        **changes,
    )


@pytest.fixture
def sister(client: TestClient, comms: TestClient, auth: TokenFactory) -> World:
    """The sister school of the trust with its families, a sensitive message and a concern;
    the test school beside it with its own families and mail settings."""
    build_world(client, comms, auth, SCHOOL)
    return build_world(client, comms, auth, SISTER_SCHOOL)


@pytest.mark.parametrize("school", [SCHOOL, SISTER_SCHOOL])
def test_a_trust_admin_sets_the_mail_settings_of_the_school_they_name_and_it_is_audited_there(
    school: str,
    sister: World,
    comms: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    other = SISTER_SCHOOL if school == SCHOOL else SCHOOL
    others_before = mail_settings(comms, auth, other)

    response = comms.put(
        "/v1/settings",
        json=school_settings(school, secure_view_days=30),
        headers=trust_auth("trust_admin", acting_for=school),
    )

    assert response.status_code == 200, response.text
    assert mail_settings(comms, auth, school)["secure_view_days"] == 30
    assert mail_settings(comms, auth, other) == others_before
    actor = f"trust_admin@{TRUST}"
    assert by(trail(comms, auth, school), actor) == [("settings.changed", "ok")]
    assert by(trail(comms, auth, other), actor) == []


@pytest.mark.parametrize("school", [SCHOOL, SISTER_SCHOOL])
def test_a_trust_dpo_reads_and_verifies_the_trail_of_the_school_they_name(
    school: str,
    sister: World,
    comms: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    dpo = trust_auth("trust_dpo", acting_for=school)

    entries = comms.get("/v1/audit", params={"limit": "500"}, headers=dpo)
    verdict = comms.get("/v1/audit:verify", headers=dpo)

    assert entries.status_code == 200, entries.text
    assert entries.json()["items"] == trail(comms, auth, school)
    assert verdict.json()["intact"] is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/messages",
            {
                "recipients": {"pupil_ids": ["{pupil_a}"]},
                "subject": "Data request",
                "body_text": "Words.",
            },
        ),
        ("GET", "/v1/messages/{message_a}", None),
        ("GET", "/v1/families/{pupil_a}/messages", None),
        ("GET", "/v1/pastoral/concerns", None),
        ("GET", "/v1/pastoral/concerns/{concern_a}", None),
    ],
)
def test_a_trust_dpo_sends_nothing_and_reads_no_familys_mail_or_pastoral_matter(
    method: str,
    path: str,
    body: dict[str, Any] | None,
    sister: World,
    comms: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**sister.__dict__)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    history_before = comms.get(
        f"/v1/families/{sister.pupil_a}/messages", headers=auth("head", school=SISTER_SCHOOL)
    ).json()

    response = comms.request(
        method,
        fill(path),
        json=fill(body),
        headers=trust_auth("trust_dpo", acting_for=SISTER_SCHOOL),
    )

    assert_problem(response, 403, "forbidden")
    assert "Private words" not in response.text
    assert "upset" not in response.text
    history_after = comms.get(
        f"/v1/families/{sister.pupil_a}/messages", headers=auth("head", school=SISTER_SCHOOL)
    ).json()
    assert history_after == history_before
    refusals = by(trail(comms, auth, SISTER_SCHOOL), f"trust_dpo@{TRUST}")
    assert [outcome for _, outcome in refusals] == ["refused"]
    assert by(trail(comms, auth, SCHOOL), f"trust_dpo@{TRUST}") == []


def test_a_trust_admin_whose_token_names_no_school_must_choose_one(
    sister: World, comms: TestClient, auth: TokenFactory, trust_auth: TrustTokenFactory
) -> None:
    before = {s: mail_settings(comms, auth, s) for s in (SCHOOL, SISTER_SCHOOL)}

    response = comms.put(
        "/v1/settings",
        json=school_settings(SCHOOL, secure_view_days=30),
        headers=trust_auth("trust_admin", named_school=False),
    )

    assert_problem(response, 400, "school_not_chosen")
    assert {s: mail_settings(comms, auth, s) for s in (SCHOOL, SISTER_SCHOOL)} == before


@pytest.mark.parametrize("school", [OTHER_SCHOOL, OTHER_SISTER_SCHOOL])
@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("trust_admin", "PUT", "/v1/settings"),
        ("trust_admin", "GET", "/v1/settings"),
        ("trust_dpo", "GET", "/v1/audit"),
        ("trust_dpo", "GET", "/v1/audit:verify"),
    ],
)
def test_a_trust_officer_is_refused_in_another_trusts_schools_and_nothing_changes(
    school: str,
    role: str,
    method: str,
    path: str,
    comms: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    put = comms.put(
        "/v1/settings", json=school_settings(school), headers=auth("head", school=school)
    )
    assert put.status_code == 200, put.text
    settings_before = mail_settings(comms, auth, school)
    trail_before = trail(comms, auth, school)

    response = comms.request(
        method,
        path,
        json=school_settings(school, secure_view_days=30) if method == "PUT" else None,
        headers=trust_auth(role, acting_for=school),
    )

    assert_problem(response, 403, "school_not_allowed")
    assert mail_settings(comms, auth, school) == settings_before
    assert trail(comms, auth, school) == trail_before


def test_another_trusts_dpo_is_refused_in_this_trusts_schools(
    sister: World, comms: TestClient, trust_auth: TrustTokenFactory
) -> None:
    for school in (SCHOOL, SISTER_SCHOOL):
        response = comms.get(
            "/v1/audit", headers=trust_auth("trust_dpo", trust=OTHER_TRUST, acting_for=school)
        )
        assert_problem(response, 403, "school_not_allowed")


def test_a_head_of_one_school_cannot_act_in_the_sister_school(
    sister: World, comms: TestClient, auth: TokenFactory
) -> None:
    head = {**auth("head"), SCHOOL_HEADER: SISTER_SCHOOL}
    before = mail_settings(comms, auth, SISTER_SCHOOL)

    read = comms.get(f"/v1/messages/{sister.message_a}", headers=head)
    changed = comms.put(
        "/v1/settings", json=school_settings(SISTER_SCHOOL, secure_view_days=30), headers=head
    )

    assert_problem(read, 403, "school_not_allowed")
    assert "Private words" not in read.text
    assert_problem(changed, 403, "school_not_allowed")
    assert mail_settings(comms, auth, SISTER_SCHOOL) == before
