"""A decision answer names the roster version it was decided against (Hallpass-Roster-Version),
read in the same statement as the decisions: the version of the roster's ETag and body, so a
reader holding that roster needs no roster call to match names as fresh as the decisions."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, archive

ROSTER_VERSION = "hallpass-roster-version"


def _decided_against(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, pupil_id: str
) -> int:
    response = client.post(
        "/v1/decisions",
        json={"purpose": "website_photo", "pupil_ids": [pupil_id]},
        headers=auth("cms", school=school.school),
    )
    assert response.status_code == 200, response.text
    return int(response.headers[ROSTER_VERSION])


def test_a_decision_answer_names_the_roster_version_of_the_roster(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil("Amara", "Okafor")
    roster = client.get("/v1/roster", headers=auth("service"))

    decided = _decided_against(client, auth, school, pupil_id)

    assert decided == roster.json()["version"]
    assert roster.headers["etag"].endswith(f'-{decided}"')


def test_the_version_named_moves_with_every_change_of_names(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil("Amara", "Okafor")
    first = _decided_against(client, auth, school, pupil_id)

    school.pupil("Zara", "Quinn")
    added = _decided_against(client, auth, school, pupil_id)
    client.patch(f"/v1/pupils/{pupil_id}", json={"preferred_name": "Mara"}, headers=auth("office"))
    renamed = _decided_against(client, auth, school, pupil_id)
    archive(client, auth, pupil_id)
    left = _decided_against(client, auth, school, pupil_id)

    assert first < added < renamed < left
    assert left == client.get("/v1/roster", headers=auth("service")).json()["version"]


def test_an_unchanged_roster_is_answered_304_to_the_etag_the_decisions_named(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil("Amara", "Okafor")
    held = client.get("/v1/roster", headers=auth("service"))
    decided = _decided_against(client, auth, school, pupil_id)

    again = client.get(
        "/v1/roster", headers={**auth("service"), "If-None-Match": held.headers["etag"]}
    )

    assert decided == held.json()["version"]
    assert again.status_code == 304
    assert again.content == b""


def test_the_roster_of_a_school_without_pupils_is_empty_at_its_first_version(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    roster = client.get("/v1/roster", headers=auth("service"))

    assert roster.status_code == 200
    assert roster.json() == {"version": roster.json()["version"], "pupils": []}
    assert roster.headers["cache-control"] == "private, no-cache"
    assert roster.headers["content-type"] == "application/json"
