"""POST /v1/families:resolve: the carers the comms service writes to (E9), per pupil."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem


def _resolve(client: TestClient, auth: TokenFactory, **query: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/families:resolve", json=query, headers=auth("service"))
    assert response.status_code == 200, response.text
    families: list[dict[str, Any]] = response.json()
    return families


def test_e9_a_class_resolves_to_each_pupil_with_their_own_carers(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    oak = school.school_class("Year 3 Oak", 3)
    amara = school.family("Amara", "Okafor", carers=2, class_id=oak)
    oliver = school.family("Oliver", "Shaw", class_id=oak)
    school.family("Isla", "Brennan", class_id=school.school_class("Year 4 Elm", 4))

    families = _resolve(client, auth, class_ids=[oak])

    by_pupil = {f["pupil_id"]: f for f in families}
    assert set(by_pupil) == {amara.pupil_id, oliver.pupil_id}
    assert {c["guardian_id"] for c in by_pupil[amara.pupil_id]["carers"]} == set(amara.guardian_ids)
    assert [c["guardian_id"] for c in by_pupil[oliver.pupil_id]["carers"]] == oliver.guardian_ids
    carer = by_pupil[oliver.pupil_id]["carers"][0]
    assert carer["email"].endswith("@example.org")
    assert carer["parental_responsibility"] is True
    assert by_pupil[oliver.pupil_id]["class_id"] == oak


def test_a_year_group_gives_only_pupils_on_roll(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    staying = school.family("Amara", "Okafor")
    leaving = school.family("Oliver", "Shaw")
    archived = client.post(f"/v1/pupils/{leaving.pupil_id}:archive", headers=school.office)
    assert archived.status_code == 200, archived.text

    families = _resolve(client, auth, year_groups=[3])

    assert [f["pupil_id"] for f in families] == [staying.pupil_id]


def test_a_carer_id_resolves_to_all_their_children_once(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    elder = school.family("Amara", "Okafor")
    younger = school.pupil("Kemi", "Okafor", year_group=1)
    linked = client.post(
        f"/v1/guardians/{elder.guardian_ids[0]}/children",
        json={"pupil_id": younger},
        headers=school.office,
    )
    assert linked.status_code == 200, linked.text

    families = _resolve(
        client, auth, guardian_ids=[elder.guardian_ids[0]], pupil_ids=[elder.pupil_id]
    )

    assert sorted(f["pupil_id"] for f in families) == sorted([elder.pupil_id, younger])


def test_unknown_ids_are_refused_and_named(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    known = school.family()
    stranger = str(uuid.uuid4())

    response = client.post(
        "/v1/families:resolve",
        json={"pupil_ids": [known.pupil_id], "guardian_ids": [stranger]},
        headers=auth("service"),
    )

    body = assert_problem(response, 422, "unknown_guardian")
    assert [p["where"] for p in body["problems"]] == ["body.guardian_ids"]
    assert stranger in body["problems"][0]["detail"]


def test_teachers_cannot_list_carers_addresses(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    known = school.family()

    response = client.post(
        "/v1/families:resolve", json={"pupil_ids": [known.pupil_id]}, headers=auth("staff")
    )

    assert_problem(response, 403, "forbidden")


def test_an_empty_query_resolves_to_nobody(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    school.family()

    assert _resolve(client, auth) == []
