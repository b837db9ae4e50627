"""POST /v1/publications:check: what a check looks at and how it answers.

Rules M1, M3, M4, M5, M9, C2, C4 and C12."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.context import media_context
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import LocalStorage
from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem, restrict
from tests.media import images
from tests.media.builders import MediaWorld, blocking_codes, codes, faces_photo, plain_photo


def _problem(verdict: dict[str, Any], code: str, image: int = 0) -> dict[str, Any]:
    found = [p for p in verdict["images"][image]["problems"] if p["code"] == code]
    assert len(found) == 1, verdict
    problem: dict[str, Any] = found[0]
    return problem


def test_scan_pending_is_never_allowed(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = world.upload(pupils=[pupil])

    verdict = world.check("website", [media_id])

    assert verdict["allowed"] is False
    assert blocking_codes(verdict) == ["scan_pending"]


def test_scanned_picture_of_a_consented_pupil_is_allowed(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = world.upload(pupils=[pupil])
    world.scan()

    verdict = world.check("website", [media_id], caption="Sports day")

    assert verdict["allowed"] is True
    assert verdict["images"][0]["problems"] == []


def test_c2_consent_missing_names_the_pupil_by_reference_only_for_the_cms(
    world: MediaWorld,
) -> None:
    pupil = world.school.family("Oliver", "Shaw").pupil_id
    media_id = world.upload(pupils=[pupil])
    world.scan()

    for_cms = _problem(world.check("website", [media_id], role="cms"), "consent_missing")
    for_head = _problem(world.check("website", [media_id], role="head"), "consent_missing")

    assert for_cms["pupil_id"] == pupil
    assert for_cms["pupil_name"] is None
    assert for_cms["rule"] == "M3"
    assert for_head["pupil_name"] == "Oliver Shaw"


def test_c12_restricted_pupil_is_refused_without_the_reason(
    world: MediaWorld, client: TestClient, auth: TokenFactory
) -> None:
    pupil, _ = world.consented_pupil("Isla", "Brennan")
    restrict(client, auth, pupil)
    media_id = world.upload(pupils=[pupil])
    world.scan()

    problem = _problem(world.check("website", [media_id], role="head"), "restricted_pupil")

    assert problem["rule"] == "C12"
    assert problem["blocking"] is True
    assert "court" not in problem["detail"].lower()


def test_m1_full_name_in_the_caption_is_found_with_its_span(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil("Emily-Rose", "O'Brien")
    media_id = world.upload(pupils=[pupil])
    world.scan()
    caption = "Well done to emily rose o\u2019brien\u2019s team!"  # typographic apostrophes

    verdict = world.check("website", [media_id], caption=caption)

    assert verdict["allowed"] is False
    (problem,) = verdict["text_problems"]
    assert problem["code"] == "name_in_text"
    assert problem["where"] == "caption"
    assert problem["rule"] == "M1"
    assert caption[problem["span"]["start"] : problem["span"]["end"]].lower().startswith("emily")


def test_m1_lone_first_name_passes_unless_the_school_forbids_first_names(
    world: MediaWorld, media_client: TestClient, auth: TokenFactory
) -> None:
    world.consented_pupil("Priya", "Patel")

    before = world.check("website", [], post_body="Priya scored the winning goal")
    media_client.put(
        "/v1/settings",
        json={"forbid_first_names": True, "blur_untagged_faces": False},
        headers=auth("head"),
    )
    after = world.check("website", [], post_body="Priya scored the winning goal")

    assert before["allowed"] is True
    assert [p["code"] for p in after["text_problems"]] == ["name_in_text"]


def test_c4_newspaper_may_name_a_pupil_whose_carers_agreed(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil("Amara", "Okafor", purpose="newspaper_named")
    world.school.family("Oliver", "Shaw")
    media_id = world.upload(pupils=[pupil])
    world.scan()

    named_ok = world.check("newspaper", [media_id], caption="Amara Okafor wins the prize")
    not_agreed = world.check("newspaper", [media_id], caption="Oliver Shaw wins the prize")

    assert named_ok["allowed"] is True
    assert [p["code"] for p in not_agreed["text_problems"]] == ["name_in_text"]


def test_m1_name_in_the_stored_file_name_is_reported_but_stripped_on_publishing(
    world: MediaWorld,
) -> None:
    pupil, _ = world.consented_pupil("Amara", "Okafor")
    media_id = world.upload(pupils=[pupil], filename="AmaraOkafor_sports-day.jpg")
    world.scan()

    problem = _problem(world.check("website", [media_id]), "name_in_filename")

    assert problem["blocking"] is False
    assert problem["where"] == "filename"


def test_m1_name_in_metadata_of_a_file_the_cms_would_publish_as_is_blocks(
    world: MediaWorld, auth: TokenFactory
) -> None:
    world.consented_pupil("Amara", "Okafor")
    picture = images.jpeg(
        images.photo(600, 400, seed=5), exif_block=images.exif(description="Amara Okafor, Year 3")
    )

    response = world.client.post(
        "/v1/publications:check-file",
        data={"channel": "website"},
        files={"file": ("team.jpg", picture, "image/jpeg")},
        headers=auth("cms"),
    )

    assert response.status_code == 200, response.text
    problem = _problem(response.json(), "name_in_metadata")
    assert problem["where"] == "metadata.EXIF:ImageDescription"
    assert problem["blocking"] is True


def test_m1_name_written_in_the_picture_is_found_by_ocr(
    world: MediaWorld, ocr_scanner: Scanner
) -> None:
    pupil, _ = world.consented_pupil("Oliver", "Shaw")
    picture = images.photo(1000, 500, seed=4)
    images.draw_text(picture, "OLIVER SHAW", at=(120, 180), size=90)
    media_id = world.upload(images.jpeg(picture), pupils=[pupil])
    media_context(world.context).scanner = ocr_scanner
    world.scan()

    problem = _problem(world.check("website", [media_id]), "name_in_image")

    assert problem["where"] == "image_text"
    assert problem["box"] is not None
    assert problem["blocking"] is True


def test_m3_more_faces_than_tagged_pupils_blocks(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    data, boxes = faces_photo(2)
    media_id = world.upload(data, pupils=[{"pupil_id": pupil, "face": boxes[1]}])
    world.scan()

    verdict = world.check("social_media", [media_id])

    problem = _problem(verdict, "untagged_faces")
    assert problem["rule"] == "M3"
    assert problem["blocking"] is True
    assert verdict["images"][0]["faces"] == 2


def test_m3_untagged_faces_do_not_block_when_they_will_be_blurred(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil(purpose="social_media_photo")
    data, boxes = faces_photo(2)
    media_id = world.upload(data, pupils=[{"pupil_id": pupil, "face": boxes[1]}])
    world.scan()

    verdict = world.check("social_media", [media_id], blur_faces=True)

    assert verdict["allowed"] is True
    assert verdict["images"][0]["faces_to_blur"] == 1
    assert _problem(verdict, "untagged_faces")["blocking"] is False


def test_m5_location_metadata_is_informational(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = world.upload(plain_photo(gps=True), pupils=[pupil])
    world.scan()

    verdict = world.check("website", [media_id])

    assert verdict["allowed"] is True
    assert codes(verdict) == ["location_metadata"]
    assert _problem(verdict, "location_metadata")["blocking"] is False


def test_m5_contact_details_in_the_post_block(world: MediaWorld) -> None:
    verdict = world.check("social_media", [], post_body="Questions? Ring 07700 900123 tonight")

    assert verdict["allowed"] is False
    assert [p["code"] for p in verdict["text_problems"]] == ["contact_details_in_text"]


def test_m9_third_party_media_without_permission_blocks(world: MediaWorld) -> None:
    media_id = world.upload(device_id=None, owner="third_party", source="Evening Gazette")
    world.scan()

    verdict = world.check("website", [media_id])

    assert blocking_codes(verdict) == ["copyright_permission_missing"]


def test_unknown_image_with_faces_is_refused(world: MediaWorld, auth: TokenFactory) -> None:
    data, _ = faces_photo(1, seed=9)

    response = world.client.post(
        "/v1/publications:check-file",
        data={"channel": "website"},
        files={"file": ("IMG_9.jpg", data, "image/jpeg")},
        headers=auth("cms"),
    )

    assert response.status_code == 200, response.text
    verdict = response.json()
    assert "unknown_image" in blocking_codes(verdict)
    assert verdict["images"][0]["media_id"] is None


def test_resized_copy_of_stored_media_is_recognised(world: MediaWorld, auth: TokenFactory) -> None:
    pupil, _ = world.consented_pupil()
    data, boxes = faces_photo(1, seed=3)
    media_id = world.upload(data, pupils=[{"pupil_id": pupil, "face": boxes[0]}])
    world.scan()
    picture = images.photo(900, 600, seed=3)
    images.draw_face(picture, (220, 300), 200)
    smaller = images.jpeg(picture.resize((450, 300)), quality=70)

    response = world.client.post(
        "/v1/publications:check-file",
        data={"channel": "website"},
        files={"file": ("web.jpg", smaller, "image/jpeg")},
        headers=auth("cms"),
    )

    verdict = response.json()
    assert verdict["images"][0]["media_id"] == media_id
    assert verdict["allowed"] is True, verdict


def test_unknown_media_id_is_a_problem_for_the_caller(world: MediaWorld) -> None:
    response = world.check_response("website", ["00000000-0000-4000-8000-000000000009"])

    assert_problem(response, 422, "unknown_media")


def test_every_check_is_audited(world: MediaWorld, auth: TokenFactory) -> None:
    world.check("website", [], caption="Sports day")

    trail = world.client.get(
        "/v1/audit", params={"action": "publication.checked"}, headers=auth("head")
    )

    (entry,) = trail.json()["items"]
    assert entry["details"]["allowed"] is True


@pytest.fixture
def media_without_consent(
    media_db: Database, issuer: DevIssuer, common_settings: CommonSettings, scanner: Scanner
) -> TestClient:
    # Nothing listens on port 9 of loopback: the consent service is down.
    unreachable = ServiceClient(name="consent", base_url="http://127.0.0.1:9", timeout=1.0)
    app = create_app(
        common=common_settings,
        settings=MediaSettings(ocr=False),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=unreachable,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )
    return TestClient(app, raise_server_exceptions=False)


def test_consent_service_down_fails_closed(
    media_without_consent: TestClient, auth: TokenFactory
) -> None:
    response = media_without_consent.post(
        "/v1/publications:check",
        json={"channel": "website", "media_ids": [], "caption": "Sports day"},
        headers=auth("cms"),
    )

    problem = assert_problem(response, 503, "consent_unavailable")
    assert "allowed" not in problem


def test_picture_whose_original_cannot_be_read_is_held_back(
    world: MediaWorld, storage: LocalStorage
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = world.upload(pupils=[pupil])
    for stored in storage.root.rglob(f"{media_id}.*"):
        stored.unlink()
    world.scan()

    verdict = world.check("website", [media_id])

    assert blocking_codes(verdict) == ["scan_failed"]
