"""POST /v1/decisions: many pupils, one purpose; fails closed on anything unknown."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_consent.consents import service
from hallpass_consent.decisions.endpoints import DECIDING_AT_ONCE
from tests.conftest import OTHER_SCHOOL, TokenFactory
from tests.consent.builders import (
    SchoolBuilder,
    archive,
    assert_problem,
    parse_time,
    restrict,
)


def ask(
    client: TestClient,
    auth: TokenFactory,
    purpose: str,
    pupil_ids: list[str],
    role: str = "cms",
    **extra: Any,
) -> Any:
    return client.post(
        "/v1/decisions",
        json={"purpose": purpose, "pupil_ids": pupil_ids, **extra},
        headers=auth(role),
    )


def test_many_pupils_are_answered_in_the_order_asked_c7(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    granted = school.family("Ada", "Ames")
    refused = school.family("Ben", "Bose")
    silent = school.family("Cai", "Chen")
    school.consent(granted.pupil_id, granted.guardian_ids[0])
    refusal = school.consent(refused.pupil_id, refused.guardian_ids[0], decision="refused")
    asked = [silent.pupil_id, granted.pupil_id, refused.pupil_id]

    response = ask(client, auth, "website_photo", asked)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["purpose"] == "website_photo"
    assert [d["pupil_id"] for d in body["decisions"]] == asked
    assert [(d["allowed"], d["reason"]) for d in body["decisions"]] == [
        (False, "no_record"),
        (True, "granted"),
        (False, "refused"),
    ]
    assert body["decisions"][2]["record_id"] == refusal["id"]


def test_duplicate_pupil_ids_are_answered_once(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    first = school.pupil("Ada", "Ames")
    second = school.pupil("Ben", "Bose")

    response = ask(client, auth, "website_photo", [second, first, second, first, second])

    assert response.status_code == 200, response.text
    assert [d["pupil_id"] for d in response.json()["decisions"]] == [second, first]


def test_unknown_pupil_fails_closed_naming_its_position_c2(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    known = school.pupil()
    stranger = str(uuid.uuid4())

    response = ask(client, auth, "website_photo", [known, stranger, known, stranger])

    problem = assert_problem(response, 422, "unknown_pupil")
    assert [p["where"] for p in problem["problems"]] == ["body.pupil_ids[1]", "body.pupil_ids[3]"]
    assert "decisions" not in problem


def test_another_schools_pupil_is_unknown_here_a2(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    riverside = SchoolBuilder(client, auth, school=OTHER_SCHOOL)
    riverside.set_up("Riverside Academy")
    theirs = riverside.family()
    riverside.consent(theirs.pupil_id, theirs.guardian_ids[0])
    ours = school.pupil()

    response = ask(client, auth, "website_photo", [ours, theirs.pupil_id])

    problem = assert_problem(response, 422, "unknown_pupil")
    assert [p["where"] for p in problem["problems"]] == ["body.pupil_ids[1]"]


def test_more_than_a_thousand_pupils_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = ask(client, auth, "website_photo", [str(uuid.uuid4()) for _ in range(1001)])

    assert_problem(response, 422, "batch_too_large")


def test_empty_pupil_list_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = ask(client, auth, "website_photo", [])

    problem = assert_problem(response, 422, "invalid_request")
    assert [p["where"] for p in problem["problems"]] == ["body.pupil_ids"]


def test_unknown_purpose_is_refused_c1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = ask(client, auth, "yearbook_cover", [school.pupil()])

    assert assert_problem(response, 422, "unknown_purpose")["rule"] == "C1"


def test_past_instant_is_answered_from_the_history_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family(carers=2)
    grant = school.consent(family.pupil_id, family.guardian_ids[0])
    refusal = school.consent(family.pupil_id, family.guardian_ids[1], decision="refused")
    granted_at = parse_time(grant["recorded_at"])
    assert granted_at < parse_time(refusal["recorded_at"])

    def reason_at(moment: dt.datetime) -> str:
        response = ask(client, auth, "website_photo", [family.pupil_id], at=moment.isoformat())
        assert response.status_code == 200, response.text
        assert parse_time(response.json()["at"]) == moment
        return str(response.json()["decisions"][0]["reason"])

    assert reason_at(granted_at - dt.timedelta(seconds=1)) == "no_record"
    assert reason_at(granted_at) == "granted"
    assert reason_at(parse_time(refusal["recorded_at"])) == "refused"


def test_restricted_pupil_is_refused_for_every_consent_purpose_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    purposes = client.get("/v1/purposes", headers=auth("office")).json()
    for purpose in purposes:
        if purpose["requires_consent"] and not purpose["needs_pupil_agreement"]:
            school.consent(family.pupil_id, family.guardian_ids[0], purpose=purpose["code"])
    restrict(client, auth, family.pupil_id)

    for purpose in purposes:
        verdict = school.decide(purpose["code"], family.pupil_id)[family.pupil_id]
        if purpose["requires_consent"]:
            assert verdict == {
                "pupil_id": family.pupil_id,
                "allowed": False,
                "reason": "restricted",
                "record_id": None,
            }, purpose["code"]
        else:  # internal assessment never leaves school (C6)
            assert verdict["reason"] == "no_consent_needed"


def test_lifting_a_restriction_restores_the_consents_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    restrict(client, auth, family.pupil_id)

    lifted = client.delete(f"/v1/pupils/{family.pupil_id}/restriction", headers=auth("dsl"))

    assert lifted.status_code == 204
    assert school.decide("website_photo", family.pupil_id)[family.pupil_id]["reason"] == "granted"


def test_leaver_is_not_on_roll(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])

    archive(client, auth, family.pupil_id)

    assert school.decide("website_photo", family.pupil_id)[family.pupil_id] == {
        "pupil_id": family.pupil_id,
        "allowed": False,
        "reason": "not_on_roll",
        "record_id": None,
    }


def test_parent_cannot_ask_for_decisions_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()

    response = client.post(
        "/v1/decisions",
        json={"purpose": "website_photo", "pupil_ids": [family.pupil_id]},
        headers=auth("parent", guardian=family.guardian_ids[0]),
    )

    assert_problem(response, 403, "forbidden")


def test_refusal_by_either_carer_wins_c11(school: SchoolBuilder) -> None:
    family = school.family(carers=2)
    school.consent(family.pupil_id, family.guardian_ids[0], decision="granted")
    refusal = school.consent(family.pupil_id, family.guardian_ids[1], decision="refused")
    school.consent(family.pupil_id, family.guardian_ids[0], decision="granted")  # asks again

    assert school.decide("website_photo", family.pupil_id)[family.pupil_id] == {
        "pupil_id": family.pupil_id,
        "allowed": False,
        "reason": "refused",
        "record_id": refusal["id"],
    }


def test_losing_parental_responsibility_drops_a_carers_refusal_c11(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family(carers=2)
    grant = school.consent(family.pupil_id, family.guardian_ids[0])
    school.consent(family.pupil_id, family.guardian_ids[1], decision="refused")

    response = client.post(
        f"/v1/guardians/{family.guardian_ids[1]}/children",
        json={
            "pupil_id": family.pupil_id,
            "relationship": "step-parent",
            "parental_responsibility": False,
        },
        headers=auth("office"),
    )

    assert response.status_code == 200, response.text
    assert (
        school.decide("website_photo", family.pupil_id)[family.pupil_id]["record_id"]
        == (grant["id"])
    )


def test_past_instant_answers_with_the_restriction_then_in_force_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    restricted_at = parse_time(restrict(client, auth, family.pupil_id)["set_at"])
    client.delete(f"/v1/pupils/{family.pupil_id}/restriction", headers=auth("dsl"))

    response = ask(client, auth, "website_photo", [family.pupil_id], at=restricted_at.isoformat())

    assert response.status_code == 200, response.text
    assert response.json()["decisions"][0]["reason"] == "restricted"


def test_no_more_decisions_read_the_database_at_once_than_the_gate_lets_in(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = school.family("Ada", "Ames")
    school.consent(family.pupil_id, family.guardian_ids[0])
    inside = 0
    most = 0
    count = threading.Lock()
    decide_for_real = service.decisions

    def watched(*args: Any, **kwargs: Any) -> Any:
        nonlocal inside, most
        with count:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.02)  # long enough for every waiting request to try to get in
            return decide_for_real(*args, **kwargs)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(service, "decisions", watched)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(
            pool.map(lambda _n: school.decide("website_photo", family.pupil_id), range(24))
        )

    assert all(a[family.pupil_id]["allowed"] for a in answers)
    assert most == DECIDING_AT_ONCE
