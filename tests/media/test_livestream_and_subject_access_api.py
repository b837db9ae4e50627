"""Livestream check (C3) and subject access (M8, A2)."""

from __future__ import annotations

import io
import zipfile

from PIL import Image

from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem, restrict
from tests.media import images
from tests.media.builders import MediaWorld


def test_c3_livestream_by_class_lists_who_stays_off_camera(
    world: MediaWorld, auth: TokenFactory
) -> None:
    class_id = world.school.school_class()
    yes = world.school.family("Amara", "Okafor", class_id=class_id)
    world.school.consent(yes.pupil_id, yes.guardian_ids[0], "livestream")
    no = world.school.family("Oliver", "Shaw", class_id=class_id)
    world.school.consent(no.pupil_id, no.guardian_ids[0], "livestream", "refused")
    hidden = world.school.family("Isla", "Brennan", class_id=class_id)
    world.school.consent(hidden.pupil_id, hidden.guardian_ids[0], "livestream")
    restrict(world.school.client, auth, hidden.pupil_id)

    response = world.client.post(
        "/v1/livestreams:check", json={"class_id": class_id}, headers=auth("staff")
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["off_camera"]) == sorted([no.pupil_id, hidden.pupil_id])
    reasons = {p["pupil_id"]: p["reason"] for p in body["pupils"]}
    assert reasons[hidden.pupil_id] == "restricted"
    assert reasons[no.pupil_id] == "refused"


def test_c3_livestream_by_pupil_ids(world: MediaWorld, auth: TokenFactory) -> None:
    pupil = world.school.family("Oliver", "Shaw").pupil_id

    response = world.client.post(
        "/v1/livestreams:check", json={"pupil_ids": [pupil]}, headers=auth("head")
    )

    assert response.json()["off_camera"] == [pupil]


def test_c3_livestream_with_an_unknown_pupil_decides_nothing(
    world: MediaWorld, auth: TokenFactory
) -> None:
    response = world.client.post(
        "/v1/livestreams:check",
        json={"pupil_ids": ["00000000-0000-4000-8000-00000000000f"]},
        headers=auth("head"),
    )

    assert_problem(response, 422, "unknown_pupil")


def _picture_of(world: MediaWorld, pupil: str) -> str:
    original = images.jpeg(
        images.photo(400, 300, seed=6), exif_block=images.exif(gps=(51.5, -0.12))
    )
    return world.upload(original, pupils=[pupil])


def test_m8_carer_lists_their_own_childs_pictures(world: MediaWorld, auth: TokenFactory) -> None:
    pupil, guardian = world.consented_pupil()
    media_id = _picture_of(world, pupil)

    response = world.client.get(
        f"/v1/pupils/{pupil}/media", headers=auth("parent", guardian=guardian)
    )

    assert response.status_code == 200, response.text
    assert [m["media_id"] for m in response.json()["items"]] == [media_id]


def test_m8_carer_asking_for_another_child_gets_404_and_it_is_audited(
    world: MediaWorld, auth: TokenFactory
) -> None:
    _, guardian = world.consented_pupil()
    other, _ = world.consented_pupil("Oliver", "Shaw")
    _picture_of(world, other)

    listed = world.client.get(
        f"/v1/pupils/{other}/media", headers=auth("parent", guardian=guardian)
    )
    exported = world.client.get(
        f"/v1/pupils/{other}/media:export", headers=auth("parent", guardian=guardian)
    )

    assert_problem(listed, 404, "pupil_not_found")
    assert_problem(exported, 404, "pupil_not_found")
    trail = world.client.get(
        "/v1/audit", params={"action": "subject_access.refused"}, headers=auth("head")
    )
    assert [e["outcome"] for e in trail.json()["items"]] == ["refused", "refused"]


def test_m8_export_is_a_zip_of_clean_copies(world: MediaWorld, auth: TokenFactory) -> None:
    pupil, guardian = world.consented_pupil()
    first = _picture_of(world, pupil)
    second = _picture_of(world, pupil)

    response = world.client.get(
        f"/v1/pupils/{pupil}/media:export", headers=auth("parent", guardian=guardian)
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted([f"{first}.jpg", f"{second}.jpg"])
    for name in archive.namelist():
        picture = Image.open(io.BytesIO(archive.read(name)))
        assert dict(picture.getexif()) == {}
    trail = world.client.get(
        "/v1/audit", params={"action": "subject_access.exported"}, headers=auth("head")
    )
    assert [e["target"] for e in trail.json()["items"]] == [pupil]


def test_m8_office_may_answer_a_request_for_any_pupil_of_the_school(
    world: MediaWorld, auth: TokenFactory
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _picture_of(world, pupil)

    response = world.client.get(f"/v1/pupils/{pupil}/media", headers=auth("office"))

    assert [m["media_id"] for m in response.json()["items"]] == [media_id]


def test_m8_unknown_pupil_is_404_for_staff(world: MediaWorld, auth: TokenFactory) -> None:
    response = world.client.get(
        "/v1/pupils/00000000-0000-4000-8000-00000000000e/media", headers=auth("office")
    )

    assert_problem(response, 404, "pupil_not_found")
