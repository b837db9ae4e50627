"""POST /v1/publications and what follows: clean copies (M5), approval (M6), takedown (M7)."""

from __future__ import annotations

import io
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Event
from hallpass_media.models import kit_tables
from hallpass_media.publications.takedown import flag_for_takedown, takedown_handler
from hallpass_media.storage import LocalStorage
from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem
from tests.media import images
from tests.media.builders import MediaWorld, faces_photo


def _rendition(world: MediaWorld, publication: dict[str, Any], role: str = "cms") -> bytes:
    path = publication["renditions"][0]["download"]
    response = world.client.get(path, headers=world.auth(role))
    assert response.status_code == 200, response.text
    return response.content


def _scanned_upload(world: MediaWorld, data: bytes, pupil: str, **kwargs: Any) -> str:
    media_id = world.upload(data, pupils=[pupil], **kwargs)
    world.scan()
    return media_id


def test_m5_published_copy_has_no_metadata_and_a_neutral_name(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    original = images.jpeg(
        images.photo(640, 480, seed=8),
        exif_block=images.exif(description="Sports day", gps=(51.5, -0.12)),
        xmp=images.xmp_packet(title="Sports day"),
    )
    media_id = _scanned_upload(world, original, pupil, filename="sports_day_2026.jpg")

    publication = world.publish("website", [media_id], target_url="https://oakfield.sch.uk/news")

    (rendition,) = publication["renditions"]
    assert rendition["file_name"].endswith(".jpg")
    assert "sports" not in rendition["file_name"]
    clean = Image.open(io.BytesIO(_rendition(world, publication)))
    assert dict(clean.getexif()) == {}
    assert "xmp" not in clean.info
    assert "exif" not in clean.info


def test_m6_publication_records_who_approved_it_and_the_pupils_shown(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil(purpose="social_media_photo")
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)

    publication = world.publish("social_media", [media_id], role="social_media", post_id="p-1")

    assert publication["approved_by"] == "social_media@oakfield"
    assert publication["pupil_ids"] == [pupil]
    assert publication["status"] == "live"
    trail = world.client.get(
        "/v1/audit", params={"action": "publication.published"}, headers=world.head
    )
    assert [e["target"] for e in trail.json()["items"]] == [publication["id"]]


def test_refused_publication_stores_nothing_and_lists_the_problems(
    world: MediaWorld, storage: LocalStorage
) -> None:
    pupil = world.school.family("Oliver", "Shaw").pupil_id
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)

    response = world.publish_response("website", [media_id], caption="Oliver Shaw in the team")

    problem = assert_problem(response, 422, "publication_refused")
    assert {p["code"] for p in problem["problems"]} == {"consent_missing", "name_in_text"}
    assert not (storage.root / "renditions").exists()
    listed = world.client.get("/v1/publications", headers=world.head).json()
    assert listed["items"] == []


def test_c6_internal_use_is_never_published(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)

    response = world.publish_response("internal", [media_id])

    assert assert_problem(response, 422, "channel_not_publishable")["rule"] == "C6"


def test_publish_with_the_same_idempotency_key_publishes_once(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)

    first = world.publish_response("website", [media_id], key="publish-42")
    again = world.publish_response("website", [media_id], key="publish-42")

    assert first.status_code == 201
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(world.client.get("/v1/publications", headers=world.head).json()["items"]) == 1


def test_m3_untagged_faces_are_blurred_in_the_published_copy(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil(purpose="social_media_photo")
    data, boxes = faces_photo(2)
    media_id = world.upload(data, pupils=[{"pupil_id": pupil, "face": boxes[1]}])
    world.scan()

    refused = world.publish_response("social_media", [media_id])
    publication = world.publish("social_media", [media_id], blur_faces=True)

    assert_problem(refused, 422, "publication_refused")
    assert publication["renditions"][0]["blurred_faces"] == 1
    clean = Image.open(io.BytesIO(_rendition(world, publication))).convert("L")
    original = Image.open(io.BytesIO(data)).convert("L")
    left = boxes[0]
    region = (left["x"], left["y"], left["x"] + left["width"], left["y"] + left["height"])
    # The untagged face's eyes and mouth are gone: far less detail than in the original.
    assert _detail(clean.crop(region)) < _detail(original.crop(region)) / 2


def _detail(image: Image.Image) -> float:
    pixels = list(image.tobytes())
    mean = sum(pixels) / len(pixels)
    return sum((p - mean) ** 2 for p in pixels) / len(pixels)


def test_m7_withdrawal_flags_the_live_publication_for_takedown(
    world: MediaWorld, client: TestClient, consent_app: FastAPI, media_db: Database
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    publication = world.publish("website", [media_id], target_url="https://oakfield.sch.uk/a")
    consents = client.get(f"/v1/pupils/{pupil}/consents", headers=world.office).json()
    grant = next(r for r in consents["history"] if r["purpose"] == "website_photo")
    consent_dispatcher = consent_app.state.hallpass.dispatcher
    consent_dispatcher.subscribe("consent.changed", "media-takedown", takedown_handler(media_db))

    withdrawn = client.post(
        f"/v1/consents/{grant['id']}:withdraw", json={"method": "email"}, headers=world.office
    )
    consent_dispatcher.dispatch_pending()

    assert withdrawn.status_code == 201, withdrawn.text
    flagged = world.client.get(
        "/v1/publications", params={"status": "takedown_required"}, headers=world.head
    ).json()["items"]
    assert [p["id"] for p in flagged] == [publication["id"]]
    assert flagged[0]["takedown"]["pupil_id"] == pupil
    with media_db.session() as session:
        events = session.execute(
            select(kit_tables.outbox_event.c.type, kit_tables.outbox_event.c.payload)
        ).all()
    takedowns = [e.payload for e in events if e.type == "publication.takedown_required"]
    assert [t["publication_id"] for t in takedowns] == [publication["id"]]


def test_m7_redelivered_consent_event_flags_once(
    world: MediaWorld, client: TestClient, consent_app: FastAPI, media_db: Database
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    world.publish("website", [media_id])
    event = Event(
        id=uuid.uuid4(),
        type="consent.changed",
        school="oakfield",
        payload={
            "pupil_id": pupil,
            "purpose": "website_photo",
            "allowed": False,
            "state": "withdrawn",
        },
        occurred_at=utcnow(),
    )

    first = flag_for_takedown(media_db, event, utcnow())
    second = flag_for_takedown(media_db, event, utcnow())

    assert (first, second) == (1, 0)


def test_m7_withdrawal_for_another_purpose_leaves_the_publication_live(
    world: MediaWorld, media_db: Database
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    world.publish("website", [media_id])
    event = Event(
        id=uuid.uuid4(),
        type="consent.changed",
        school="oakfield",
        payload={"pupil_id": pupil, "purpose": "livestream", "allowed": False, "state": "refused"},
        occurred_at=utcnow(),
    )

    assert flag_for_takedown(media_db, event, utcnow()) == 0


def test_m7_consent_event_media_cannot_read_is_consumed_and_flags_nothing(
    world: MediaWorld, media_db: Database
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    publication = world.publish("website", [media_id])
    event = Event(
        id=uuid.uuid4(),
        type="consent.changed",
        school="oakfield",
        # pupil_id renamed: read through ConsentChangedNotice, this is no pupil at all.
        payload={"child": pupil, "purpose": "website_photo", "allowed": False, "state": "refused"},
        occurred_at=utcnow(),
    )

    assert flag_for_takedown(media_db, event, utcnow()) == 0
    still = world.client.get(f"/v1/publications/{publication['id']}", headers=world.head)
    assert still.json()["status"] == "live"


def test_m7_confirmed_takedown_stops_handing_out_the_copy(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    publication = world.publish("website", [media_id])

    confirmed = world.client.post(
        f"/v1/publications/{publication['id']}:confirm-takedown", headers=world.head
    )
    download = world.client.get(publication["renditions"][0]["download"], headers=world.head)
    again = world.client.post(
        f"/v1/publications/{publication['id']}:confirm-takedown", headers=world.head
    )

    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "taken_down"
    assert_problem(download, 409, "publication_not_live")
    assert_problem(again, 409, "already_taken_down")


def test_rendition_download_is_audited(world: MediaWorld) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    publication = world.publish("website", [media_id])

    _rendition(world, publication)

    trail = world.client.get(
        "/v1/audit", params={"action": "publication.rendition_downloaded"}, headers=world.head
    )
    assert [e["target"] for e in trail.json()["items"]] == [publication["id"]]


def test_listing_by_status_pages_through_publications(
    world: MediaWorld, auth: TokenFactory
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = _scanned_upload(world, images.jpeg(images.photo(500, 400)), pupil)
    published = [world.publish("website", [media_id])["id"] for _ in range(3)]

    first = world.client.get(
        "/v1/publications", params={"status": "live", "limit": 2}, headers=auth("cms")
    ).json()
    second = world.client.get(
        "/v1/publications",
        params={"status": "live", "limit": 2, "cursor": first["next_cursor"]},
        headers=auth("cms"),
    ).json()

    seen = [p["id"] for p in first["items"] + second["items"]]
    assert sorted(seen) == sorted(published)
    assert second["next_cursor"] is None
