"""Uploads (M4, M9): only from registered devices, only real images, nothing stored on refusal."""

from __future__ import annotations

import io
import time
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import event

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import LocalStorage
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem
from tests.media.builders import MediaWorld, plain_photo


def _stored_files(storage: LocalStorage) -> list[Path]:
    return [p for p in storage.root.rglob("*") if p.is_file()] if storage.root.exists() else []


def _media_rows(media_client: TestClient, auth: TokenFactory) -> int:
    response = media_client.get("/v1/media", headers=auth("head"))
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


def test_upload_from_registered_device_is_stored_and_waits_for_its_scan(
    world: MediaWorld, storage: LocalStorage
) -> None:
    pupil, _ = world.consented_pupil()
    response = world.upload_response(
        plain_photo(), pupils=[pupil], caption="Sports day", filename="sports.jpg"
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mime"] == "image/jpeg"
    assert body["scan"]["status"] == "pending"
    assert body["pupils"] == [{"pupil_id": pupil, "face": None}]
    assert len(_stored_files(storage)) == 1


def test_m4_unregistered_device_is_refused_and_nothing_is_stored(
    world: MediaWorld, storage: LocalStorage, media_client: TestClient, auth: TokenFactory
) -> None:
    response = world.upload_response(
        plain_photo(), device_id="00000000-0000-4000-8000-000000000001"
    )

    problem = assert_problem(response, 422, "unregistered_device")
    assert problem["rule"] == "M4"
    assert _stored_files(storage) == []
    assert _media_rows(media_client, auth) == 0


def test_m4_upload_without_a_device_is_refused(world: MediaWorld, storage: LocalStorage) -> None:
    response = world.upload_response(plain_photo(), device_id=None)

    assert_problem(response, 422, "unregistered_device")
    assert _stored_files(storage) == []


def test_m4_retired_device_is_refused_and_the_refusal_is_audited(
    world: MediaWorld, storage: LocalStorage, media_client: TestClient, auth: TokenFactory
) -> None:
    device = world.device("CAM-LOST")
    retired = media_client.post(f"/v1/devices/{device}:retire", headers=auth("office"))
    assert retired.status_code == 200, retired.text

    response = world.upload_response(plain_photo(), device_id=device)

    assert_problem(response, 422, "unregistered_device")
    assert _stored_files(storage) == []
    trail = media_client.get("/v1/audit", params={"action": "media.upload"}, headers=auth("head"))
    assert [e["outcome"] for e in trail.json()["items"]] == ["refused"]


def test_wrong_content_type_is_refused_by_its_bytes_and_nothing_is_stored(
    world: MediaWorld, storage: LocalStorage
) -> None:
    response = world.upload_response(
        b"%PDF-1.7 not a picture at all", filename="photo.jpg", content_type="image/jpeg"
    )

    assert_problem(response, 415, "unsupported_media_type")
    assert _stored_files(storage) == []


def test_truncated_jpeg_is_refused_and_nothing_is_stored(
    world: MediaWorld, storage: LocalStorage
) -> None:
    data = plain_photo(640, 480)

    response = world.upload_response(data[: len(data) // 2])

    assert_problem(response, 422, "corrupt_image")
    assert _stored_files(storage) == []


def test_decompression_bomb_is_refused_and_nothing_is_stored(
    world: MediaWorld, storage: LocalStorage
) -> None:
    # 10,000 x 10,000 pixels of one colour: a tiny file that would decode to 300 MB.
    out = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(out, format="PNG", optimize=True)

    response = world.upload_response(out.getvalue(), filename="bomb.png", content_type="image/png")

    assert_problem(response, 413, "too_many_pixels")
    assert _stored_files(storage) == []


def test_unknown_pupil_is_refused_and_nothing_is_stored(
    world: MediaWorld, storage: LocalStorage
) -> None:
    response = world.upload_response(plain_photo(), pupils=["00000000-0000-4000-8000-0000000000aa"])

    assert_problem(response, 422, "unknown_pupil")
    assert _stored_files(storage) == []


def test_face_box_outside_the_picture_is_refused(world: MediaWorld, storage: LocalStorage) -> None:
    pupil, _ = world.consented_pupil()
    face = {"x": 300, "y": 10, "width": 50, "height": 50}

    response = world.upload_response(
        plain_photo(320, 240), pupils=[{"pupil_id": pupil, "face": face}]
    )

    assert_problem(response, 422, "face_outside_image")
    assert _stored_files(storage) == []


def test_m9_third_party_media_needs_its_source(world: MediaWorld, storage: LocalStorage) -> None:
    response = world.upload_response(plain_photo(), device_id=None, owner="third_party")

    problem = assert_problem(response, 422, "source_required")
    assert problem["rule"] == "M9"
    assert _stored_files(storage) == []


def test_failed_transaction_removes_the_stored_original(
    world: MediaWorld, storage: LocalStorage, media_db: Database
) -> None:
    pupil, _ = world.consented_pupil()
    assert world.default_device  # registered before the fault is armed

    def refuse_pupil_rows(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MEDIA_PUPIL"):
            raise RuntimeError("the database went away")

    event.listen(media_db.engine, "before_cursor_execute", refuse_pupil_rows)
    try:
        response = world.upload_response(plain_photo(), pupils=[pupil])
    finally:
        event.remove(media_db.engine, "before_cursor_execute", refuse_pupil_rows)

    assert response.status_code == 500
    assert _stored_files(storage) == []


def test_upload_is_in_the_audit_trail(
    world: MediaWorld, media_client: TestClient, auth: TokenFactory
) -> None:
    media_id = world.upload()

    trail = media_client.get("/v1/audit", params={"action": "media.uploaded"}, headers=auth("head"))

    assert [e["target"] for e in trail.json()["items"]] == [media_id]


def test_original_download_streams_the_uploaded_bytes_and_is_audited(
    world: MediaWorld, media_client: TestClient, auth: TokenFactory
) -> None:
    data = plain_photo(seed=3)
    media_id = world.upload(data)

    response = media_client.get(f"/v1/media/{media_id}/original", headers=auth("head"))

    assert response.status_code == 200
    assert response.content == data
    trail = media_client.get(
        "/v1/audit", params={"action": "media.original_downloaded"}, headers=auth("head")
    )
    assert [e["target"] for e in trail.json()["items"]] == [media_id]


def test_scan_job_scans_new_uploads_in_the_background(
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
    school: SchoolBuilder,
    auth: TokenFactory,
) -> None:
    app = create_app(
        common=common_settings,
        settings=MediaSettings(ocr=False, scan_interval_seconds=0.1),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=True,
        migrate=False,
        scanner=scanner,
    )
    with TestClient(app) as http:
        world = MediaWorld(http, school, auth, app)
        media_id = world.upload()
        status = "pending"
        for _ in range(300):  # waits for the job, up to a minute on a busy machine
            status = http.get(f"/v1/media/{media_id}", headers=auth("staff")).json()["scan"][
                "status"
            ]
            if status == "done":
                break
            time.sleep(0.2)

    assert status == "done"
