"""School media settings and the device register (M4)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem
from tests.media import images
from tests.media.builders import MediaWorld


def test_settings_start_at_the_defaults_and_changes_are_audited(
    media_client: TestClient, auth: TokenFactory
) -> None:
    before = media_client.get("/v1/settings", headers=auth("staff")).json()
    changed = media_client.put(
        "/v1/settings",
        json={"forbid_first_names": True, "blur_untagged_faces": True},
        headers=auth("head"),
    )
    after = media_client.get("/v1/settings", headers=auth("staff")).json()

    assert before == {"forbid_first_names": False, "blur_untagged_faces": False}
    assert changed.status_code == 200
    assert after == {"forbid_first_names": True, "blur_untagged_faces": True}
    trail = media_client.get(
        "/v1/audit", params={"action": "settings.changed"}, headers=auth("head")
    )
    assert len(trail.json()["items"]) == 1


def test_m4_device_serial_is_registered_once(world: MediaWorld) -> None:
    world.device("CAM-9")

    again = world.client.post(
        "/v1/devices", json={"name": "Same camera", "serial": "CAM-9"}, headers=world.office
    )

    assert_problem(again, 409, "device_exists")


def test_m4_retired_devices_stay_listed_as_inactive(world: MediaWorld) -> None:
    kept = world.device("CAM-1")
    retired = world.device("CAM-2")
    world.client.post(f"/v1/devices/{retired}:retire", headers=world.office)

    listed = world.client.get("/v1/devices", headers=world.auth("staff")).json()["items"]

    assert {d["id"]: d["active"] for d in listed} == {kept: True, retired: False}


def test_m4_file_said_to_come_from_an_unregistered_device_is_held_back(
    world: MediaWorld, auth: TokenFactory
) -> None:
    response = world.client.post(
        "/v1/publications:check-file",
        data={"channel": "website", "device_id": "00000000-0000-4000-8000-0000000000d1"},
        files={"file": ("IMG_1.jpg", images.jpeg(images.photo(300, 200)), "image/jpeg")},
        headers=auth("cms"),
    )

    problems = response.json()["images"][0]["problems"]
    assert [p["code"] for p in problems if p["blocking"]] == ["unregistered_device"]


def test_c3_livestream_check_needs_someone_to_check(world: MediaWorld, auth: TokenFactory) -> None:
    response = world.client.post("/v1/livestreams:check", json={}, headers=auth("staff"))

    assert_problem(response, 422, "nobody_to_check")
