from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder


def test_withdrawn_consent_blocks_next_decision_c5(client: TestClient, auth: TokenFactory) -> None:
    school = SchoolBuilder(client, auth)
    school.set_up()
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    assert school.decide("website_photo", family.pupil_id)[family.pupil_id]["allowed"] is True

    response = client.post(
        f"/v1/me/children/{family.pupil_id}/consents/website_photo:withdraw",
        headers=auth("parent", guardian=family.guardian_ids[0]),
    )
    assert response.status_code == 201

    verdict = school.decide("website_photo", family.pupil_id)[family.pupil_id]
    assert verdict == {
        "pupil_id": family.pupil_id,
        "allowed": False,
        "reason": "withdrawn",
        "record_id": response.json()["id"],
    }
