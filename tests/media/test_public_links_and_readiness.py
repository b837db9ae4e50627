"""Download links signed for the store's public address, and /readyz checking the store, against
a real S3 server on loopback (SeaweedFS)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import S3Storage, build_storage
from tests.comms.smtp import free_port
from tests.consent.builders import assert_problem
from tests.media.seaweed import S3Server

PUBLIC_HOST = "media.oakfield.sch.uk"


@pytest.fixture
def bucket() -> str:
    return f"media-{uuid.uuid4().hex[:12]}"


def _s3_settings(
    endpoint_url: str, bucket: str, server: S3Server, *, public: str | None = None
) -> MediaSettings:
    return MediaSettings(
        ocr=False,
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint_url=endpoint_url,
        s3_public_endpoint_url=public,
        s3_access_key_id=server.access_key,
        s3_secret_access_key=SecretStr(server.secret_key),
    )


def _stored(storage: S3Storage) -> str:
    storage.ensure_bucket()
    storage.put("renditions/oakfield/sports-day.jpg", b"clean copy", "image/jpeg")
    url = storage.download_url(
        "renditions/oakfield/sports-day.jpg", file_name="sports-day.jpg", content_type="image/jpeg"
    )
    assert url is not None
    return url


def test_download_link_is_signed_for_the_public_address(
    s3_server: S3Server, bucket: str, common_settings: CommonSettings
) -> None:
    settings = _s3_settings(
        s3_server.endpoint_url, bucket, s3_server, public=f"https://{PUBLIC_HOST}"
    )
    storage = build_storage(common_settings, settings)
    assert isinstance(storage, S3Storage)

    link = urlsplit(_stored(storage))

    assert (link.scheme, link.netloc) == ("https", PUBLIC_HOST)
    # The store behind the school's proxy, which passes the public Host through, serves it: the
    # signature covers the public host, not the internal one.
    served = httpx.get(
        f"{s3_server.endpoint_url}{link.path}?{link.query}", headers={"Host": PUBLIC_HOST}
    )
    assert served.status_code == 200, served.text
    assert served.content == b"clean copy"


def test_link_signed_for_the_public_address_is_refused_at_the_internal_one(
    s3_server: S3Server, bucket: str, common_settings: CommonSettings
) -> None:
    settings = _s3_settings(
        s3_server.endpoint_url, bucket, s3_server, public=f"https://{PUBLIC_HOST}"
    )
    storage = build_storage(common_settings, settings)
    assert isinstance(storage, S3Storage)
    link = urlsplit(_stored(storage))

    # Same path and signature, internal Host: not the address it was signed for.
    refused = httpx.get(f"{s3_server.endpoint_url}{link.path}?{link.query}")

    assert refused.status_code == 403


def test_without_a_public_address_links_carry_the_configured_endpoint(
    s3_server: S3Server, bucket: str, common_settings: CommonSettings
) -> None:
    storage = build_storage(
        common_settings, _s3_settings(s3_server.endpoint_url, bucket, s3_server)
    )
    assert isinstance(storage, S3Storage)

    link = urlsplit(_stored(storage))

    assert link.netloc == urlsplit(s3_server.endpoint_url).netloc


# --- /readyz checks the store ----------------------------------------------------------------


def _media_app(
    settings: MediaSettings,
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=settings,
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )


def test_media_is_ready_when_its_bucket_answers(
    s3_server: S3Server,
    bucket: str,
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
) -> None:
    settings = _s3_settings(s3_server.endpoint_url, bucket, s3_server)
    storage = build_storage(common_settings, settings)
    assert isinstance(storage, S3Storage)
    storage.ensure_bucket()
    app = _media_app(settings, media_db, issuer, common_settings, consent_client, scanner)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


def test_media_is_not_ready_when_s3_does_not_answer(
    s3_server: S3Server,
    bucket: str,
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
) -> None:
    # Nothing listens there: the store is down.
    settings = _s3_settings(f"http://127.0.0.1:{free_port()}", bucket, s3_server)
    app = _media_app(settings, media_db, issuer, common_settings, consent_client, scanner)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")

    problem = assert_problem(response, 503, "not_ready")
    assert "storage (unavailable)" in problem["detail"]
    assert "database" not in problem["detail"]


def test_media_is_not_ready_when_its_bucket_is_missing(
    s3_server: S3Server,
    bucket: str,
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
) -> None:
    settings = _s3_settings(s3_server.endpoint_url, bucket, s3_server)
    app = _media_app(settings, media_db, issuer, common_settings, consent_client, scanner)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")

    problem = assert_problem(response, 503, "not_ready")
    assert "storage (unavailable)" in problem["detail"]


def test_media_on_local_storage_checks_its_folder(media_client: TestClient) -> None:
    response = media_client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "storage": "ok"}
