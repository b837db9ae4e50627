"""Trust officers in consent: two trusts of two schools each. A trust's officer acts in each
school of their trust, one school per request, every action and refusal recorded in that
school's trail; another trust's schools refuse them and nothing changes; a head stays in their
own school; a caller of two schools names one."""

from __future__ import annotations

from dataclasses import dataclass
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
from tests.consent.builders import Family, SchoolBuilder

PUPIL = {"mis_id": "MX-900", "given_name": "Tobi", "family_name": "Adeyemi", "year_group": 3}


@pytest.fixture
def common_settings(trust_settings: CommonSettings) -> CommonSettings:
    return trust_settings


@dataclass(frozen=True)
class Schools:
    """Each school of both trusts, set up with one family and one consent record."""

    families: dict[str, Family]
    records: dict[str, str]


@pytest.fixture
def schools(client: TestClient, auth: TokenFactory) -> Schools:
    families: dict[str, Family] = {}
    records: dict[str, str] = {}
    for school in (SCHOOL, SISTER_SCHOOL, OTHER_SCHOOL, OTHER_SISTER_SCHOOL):
        builder = SchoolBuilder(client, auth, school)
        builder.set_up(name=f"{school.title()} Academy")
        family = builder.family("Amara", "Okafor", class_id=builder.school_class())
        families[school] = family
        records[school] = str(builder.consent(family.pupil_id, family.guardian_ids[0])["id"])
    return Schools(families, records)


def trail(client: TestClient, auth: TokenFactory, school: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit?limit=500", headers=auth("head", school=school))
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries


def by(entries: list[dict[str, Any]], actor: str) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in entries if e["actor"] == actor]


def pupil_ids(client: TestClient, auth: TokenFactory, school: str) -> set[str]:
    response = client.get("/v1/pupils", headers=auth("office", school=school))
    return {p["id"] for p in response.json()["items"]}


def assert_problem(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


# --- inside the trust ------------------------------------------------------------------------


@pytest.mark.parametrize("school", [SCHOOL, SISTER_SCHOOL])
def test_a_trust_admin_registers_a_pupil_in_the_school_they_name_and_it_is_audited_there(
    school: str,
    schools: Schools,
    client: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    sister = SISTER_SCHOOL if school == SCHOOL else SCHOOL
    before = pupil_ids(client, auth, sister)

    response = client.post(
        "/v1/pupils", json=PUPIL, headers=trust_auth("trust_admin", acting_for=school)
    )

    assert response.status_code == 201, response.text
    assert response.json()["id"] in pupil_ids(client, auth, school)
    assert pupil_ids(client, auth, sister) == before
    actor = f"trust_admin@{TRUST}"
    assert by(trail(client, auth, school), actor) == [("pupil.created", "ok")]
    assert by(trail(client, auth, sister), actor) == []


def test_a_trust_admin_whose_token_names_no_school_must_choose_one_and_changes_nothing(
    schools: Schools, client: TestClient, auth: TokenFactory, trust_auth: TrustTokenFactory
) -> None:
    before = {s: pupil_ids(client, auth, s) for s in (SCHOOL, SISTER_SCHOOL)}

    response = client.post(
        "/v1/pupils", json=PUPIL, headers=trust_auth("trust_admin", named_school=False)
    )

    assert_problem(response, 400, "school_not_chosen")
    assert {s: pupil_ids(client, auth, s) for s in (SCHOOL, SISTER_SCHOOL)} == before
    chosen = client.post(
        "/v1/pupils",
        json=PUPIL,
        headers=trust_auth("trust_admin", named_school=False, acting_for=SISTER_SCHOOL),
    )
    assert chosen.status_code == 201, chosen.text


@pytest.mark.parametrize("school", [SCHOOL, SISTER_SCHOOL])
def test_a_trust_dpo_reads_and_verifies_the_trail_of_the_school_they_name(
    school: str,
    schools: Schools,
    client: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    dpo = trust_auth("trust_dpo", acting_for=school)

    entries = client.get("/v1/audit?limit=500", headers=dpo)
    verdict = client.get("/v1/audit:verify", headers=dpo)

    assert entries.status_code == 200, entries.text
    assert entries.json()["items"] == trail(client, auth, school)
    assert str(schools.families[school].pupil_id) in entries.text
    for other in (SCHOOL, SISTER_SCHOOL, OTHER_SCHOOL):
        if other != school:
            assert str(schools.families[other].pupil_id) not in entries.text
    assert verdict.json()["intact"] is True


def test_a_trust_dpo_answers_a_subject_access_request_in_the_sister_school(
    schools: Schools, client: TestClient, trust_auth: TrustTokenFactory
) -> None:
    dpo = trust_auth("trust_dpo", acting_for=SISTER_SCHOOL)
    family = schools.families[SISTER_SCHOOL]
    record = schools.records[SISTER_SCHOOL]

    pupil = client.get(f"/v1/pupils/{family.pupil_id}", headers=dpo)
    history = client.get(f"/v1/pupils/{family.pupil_id}/consents", headers=dpo)
    evidence = client.get(f"/v1/consents/{record}", headers=dpo)
    receipt = client.get(f"/v1/consents/{record}/receipt", headers=dpo)

    for response in (pupil, history, evidence, receipt):
        assert response.status_code == 200, response.text
    assert record in history.text
    assert evidence.json()["pupil_id"] == family.pupil_id


def test_a_trust_dpo_changes_nothing_and_sees_no_safeguarding_restriction(
    schools: Schools, client: TestClient, auth: TokenFactory, trust_auth: TrustTokenFactory
) -> None:
    dpo = trust_auth("trust_dpo", acting_for=SISTER_SCHOOL)
    family = schools.families[SISTER_SCHOOL]
    before = client.get(
        f"/v1/pupils/{family.pupil_id}/consents", headers=auth("office", school=SISTER_SCHOOL)
    ).json()

    restriction = client.get(f"/v1/pupils/{family.pupil_id}/restriction", headers=dpo)
    withdrawal = client.post(
        f"/v1/consents/{schools.records[SISTER_SCHOOL]}:withdraw",
        json={"method": "email"},
        headers=dpo,
    )

    assert_problem(restriction, 403, "forbidden")
    assert_problem(withdrawal, 403, "forbidden")
    after = client.get(
        f"/v1/pupils/{family.pupil_id}/consents", headers=auth("office", school=SISTER_SCHOOL)
    ).json()
    assert after == before
    # Each refusal is recorded in the school the DPO acted for, not the token's own.
    refused = by(trail(client, auth, SISTER_SCHOOL), f"trust_dpo@{TRUST}")
    assert [outcome for _, outcome in refused] == ["refused", "refused"]
    assert by(trail(client, auth, SCHOOL), f"trust_dpo@{TRUST}") == []


# --- outside the trust -----------------------------------------------------------------------


@pytest.mark.parametrize("school", [OTHER_SCHOOL, OTHER_SISTER_SCHOOL])
@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("trust_admin", "POST", "/v1/pupils", PUPIL),
        ("trust_admin", "GET", "/v1/pupils", None),
        ("trust_dpo", "GET", "/v1/audit", None),
        ("trust_dpo", "GET", "/v1/consents/{record}", None),
    ],
)
def test_a_trust_officer_is_refused_in_another_trusts_schools_and_nothing_changes(
    school: str,
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    schools: Schools,
    client: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
) -> None:
    before = pupil_ids(client, auth, school)
    trail_before = trail(client, auth, school)

    response = client.request(
        method,
        path.format(record=schools.records[school]),
        json=body,
        headers=trust_auth(role, acting_for=school),
    )

    assert_problem(response, 403, "school_not_allowed")
    assert "Amara" not in response.text
    assert "pupil_id" not in response.json()
    assert pupil_ids(client, auth, school) == before
    assert trail(client, auth, school) == trail_before


def test_another_trusts_officer_is_refused_in_this_trusts_schools(
    schools: Schools, client: TestClient, trust_auth: TrustTokenFactory
) -> None:
    for school in (SCHOOL, SISTER_SCHOOL):
        response = client.get(
            "/v1/audit", headers=trust_auth("trust_dpo", trust=OTHER_TRUST, acting_for=school)
        )
        assert_problem(response, 403, "school_not_allowed")
    own = client.get(
        "/v1/audit",
        headers=trust_auth("trust_dpo", trust=OTHER_TRUST, acting_for=OTHER_SISTER_SCHOOL),
    )
    assert own.status_code == 200, own.text


def test_a_head_of_one_school_cannot_act_in_the_sister_school(
    schools: Schools, client: TestClient, auth: TokenFactory
) -> None:
    before = pupil_ids(client, auth, SISTER_SCHOOL)
    head = {**auth("head"), SCHOOL_HEADER: SISTER_SCHOOL}

    created = client.post("/v1/pupils", json=PUPIL, headers=head)
    read = client.get(f"/v1/pupils/{schools.families[SISTER_SCHOOL].pupil_id}", headers=head)

    assert_problem(created, 403, "school_not_allowed")
    assert_problem(read, 403, "school_not_allowed")
    assert pupil_ids(client, auth, SISTER_SCHOOL) == before
