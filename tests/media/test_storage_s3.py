"""Storage against a real S3 server on loopback (SeaweedFS), with its keys enforced."""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.context import media_context
from hallpass_media.media.scan import scan_pending
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import S3Storage, StorageUnavailable
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem
from tests.media import images
from tests.media.seaweed import S3Server


def _storage(server: S3Server, bucket: str, *, secret: str | None = None) -> S3Storage:
    return S3Storage(
        bucket=bucket,
        endpoint_url=server.endpoint_url,
        region="eu-west-2",
        access_key_id=server.access_key,
        secret_access_key=secret or server.secret_key,
    )


@pytest.fixture
def bucket() -> str:
    return f"media-{uuid.uuid4().hex[:12]}"


def test_s3_storage_keeps_reads_and_deletes_a_file(s3_server: S3Server, bucket: str) -> None:
    storage = _storage(s3_server, bucket)
    storage.ensure_bucket()

    storage.put("originals/oakfield/a.jpg", b"picture bytes", "image/jpeg")
    kept = storage.get("originals/oakfield/a.jpg")
    streamed = b"".join(storage.stream("originals/oakfield/a.jpg"))
    storage.delete("originals/oakfield/a.jpg")

    assert kept == b"picture bytes"
    assert streamed == b"picture bytes"
    assert storage.exists("originals/oakfield/a.jpg") is False


def test_s3_presigned_link_downloads_the_file_until_it_expires(
    s3_server: S3Server, bucket: str
) -> None:
    storage = _storage(s3_server, bucket)
    storage.ensure_bucket()
    storage.put("renditions/oakfield/b.jpg", b"clean copy", "image/jpeg")

    url = storage.download_url(
        "renditions/oakfield/b.jpg", file_name="b.jpg", content_type="image/jpeg"
    )

    assert url is not None
    response = httpx.get(url)
    assert response.content == b"clean copy"
    assert 'filename="b.jpg"' in response.headers["content-disposition"]
    tampered = httpx.get(url.replace("b.jpg", "a.jpg", 1))
    assert tampered.status_code == 403


def test_s3_wrong_credentials_fail_closed(s3_server: S3Server, bucket: str) -> None:
    _storage(s3_server, bucket).ensure_bucket()
    wrong = _storage(s3_server, bucket, secret="not-the-secret")

    with pytest.raises(StorageUnavailable):
        wrong.put("originals/oakfield/c.jpg", b"x", "image/jpeg")
    assert _storage(s3_server, bucket).exists("originals/oakfield/c.jpg") is False


@pytest.fixture
def s3_media_app(
    s3_server: S3Server,
    bucket: str,
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
) -> FastAPI:
    settings = MediaSettings(
        ocr=False,
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_region="eu-west-2",
        s3_access_key_id=s3_server.access_key,
        s3_secret_access_key=SecretStr(s3_server.secret_key),
    )
    app = create_app(
        common=common_settings,
        settings=settings,
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )
    storage = media_context(app.state.hallpass).storage
    assert isinstance(storage, S3Storage)
    storage.ensure_bucket()
    return app


def test_upload_scan_and_publish_in_s3_mode_hand_out_presigned_links(
    s3_media_app: FastAPI, school: SchoolBuilder, auth: TokenFactory
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0], "website_photo")
    original = images.jpeg(images.photo(600, 400, seed=4), exif_block=images.exif(gps=(51.5, 0.1)))
    with TestClient(s3_media_app) as http:
        device = http.post(
            "/v1/devices", json={"name": "Camera", "serial": "S3-1"}, headers=auth("office")
        ).json()["id"]
        upload = http.post(
            "/v1/media",
            data={"device_id": device, "pupils": json.dumps([{"pupil_id": family.pupil_id}])},
            files={"file": ("IMG_2.jpg", original, "image/jpeg")},
            headers=auth("staff"),
        )
        assert upload.status_code == 201, upload.text
        context = s3_media_app.state.hallpass
        media = media_context(context)
        assert scan_pending(context.database, media.storage, media.get_scanner()) == 1
        publication = http.post(
            "/v1/publications",
            json={"channel": "website", "media_ids": [upload.json()["id"]]},
            headers=auth("head"),
        )
        assert publication.status_code == 201, publication.text
        download = http.get(
            publication.json()["renditions"][0]["download"],
            headers=auth("cms"),
            follow_redirects=False,
        )

    assert download.status_code == 307
    clean = httpx.get(download.headers["location"])
    assert clean.status_code == 200
    assert dict(Image.open(io.BytesIO(clean.content)).getexif()) == {}


def test_s3_store_refusing_the_upload_leaves_no_row(
    s3_server: S3Server,
    bucket: str,
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
    school: SchoolBuilder,
    auth: TokenFactory,
) -> None:
    _storage(s3_server, bucket).ensure_bucket()
    settings = MediaSettings(
        ocr=False,
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id=s3_server.access_key,
        s3_secret_access_key=SecretStr("wrong-secret"),
    )
    app = create_app(
        common=common_settings,
        settings=settings,
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )
    with TestClient(app, raise_server_exceptions=False) as http:
        device = http.post(
            "/v1/devices", json={"name": "Camera", "serial": "S3-2"}, headers=auth("office")
        ).json()["id"]
        upload = http.post(
            "/v1/media",
            data={"device_id": device},
            files={"file": ("IMG_3.jpg", images.jpeg(images.photo(300, 200)), "image/jpeg")},
            headers=auth("staff"),
        )
        listed = http.get("/v1/media", headers=auth("head")).json()

    assert_problem(upload, 503, "storage_unavailable")
    assert listed["items"] == []
