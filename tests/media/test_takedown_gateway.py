"""M7 end to end through the gateway: a carer's withdrawal reaches the published photo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hallpass_gateway.app import Gateway, create_gateway
from hallpass_kit.app import ServiceContext
from hallpass_kit.settings import CommonSettings, Environment
from hallpass_media.context import media_context
from hallpass_media.media.scan import scan_pending
from hallpass_media.models import kit_tables
from hallpass_media.settings import MediaSettings
from tests.media import images


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    common = CommonSettings(env=Environment.test, data_dir=tmp_path / "data")
    app = create_gateway(common, settings={"media": MediaSettings(ocr=False)}, run_background=False)
    yield app
    for service in app.services.values():
        service.state.hallpass.database.dispose()


def _context(gateway: Gateway, prefix: str) -> ServiceContext:
    context: ServiceContext = gateway.services[prefix].state.hallpass
    return context


def test_m7_withdrawn_consent_flags_the_publication_and_tells_the_outbox(
    gateway: Gateway,
) -> None:
    issuer = gateway.dev_issuer
    assert issuer is not None

    def as_(role: str) -> dict[str, str]:
        token = issuer.issue(sub=f"{role}@oakfield", school="oakfield", roles=[role])
        return {"Authorization": f"Bearer {token}"}

    with TestClient(gateway) as http:
        school = http.put("/consent/v1/school", json={"name": "Oakfield"}, headers=as_("head"))
        assert school.status_code == 200, school.text
        pupil = http.post(
            "/consent/v1/pupils",
            json={
                "mis_id": "E2E1",
                "given_name": "Amara",
                "family_name": "Okafor",
                "year_group": 3,
            },
            headers=as_("office"),
        ).json()["id"]
        guardian = http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Grace",
                "family_name": "Okafor",
                "children": [{"pupil_id": pupil, "parental_responsibility": True}],
            },
            headers=as_("office"),
        ).json()["id"]
        grant = http.post(
            "/consent/v1/consents",
            json={
                "pupil_id": pupil,
                "purpose": "website_photo",
                "decision": "granted",
                "guardian_id": guardian,
                "method": "paper",
            },
            headers=as_("office"),
        ).json()
        device = http.post(
            "/media/v1/devices", json={"name": "Camera", "serial": "E2E-CAM"}, headers=as_("office")
        ).json()["id"]
        upload = http.post(
            "/media/v1/media",
            data={"device_id": device, "pupils": json.dumps([{"pupil_id": pupil}])},
            files={"file": ("IMG_1.jpg", images.jpeg(images.photo(500, 400)), "image/jpeg")},
            headers=as_("staff"),
        )
        assert upload.status_code == 201, upload.text
        media = _context(gateway, "/media")
        scan_pending(
            media.database, media_context(media).storage, media_context(media).get_scanner()
        )
        published = http.post(
            "/media/v1/publications",
            json={"channel": "website", "media_ids": [upload.json()["id"]]},
            headers=as_("head"),
        )
        assert published.status_code == 201, published.text

        withdrawn = http.post(
            f"/consent/v1/consents/{grant['id']}:withdraw",
            json={"method": "app"},
            headers=as_("office"),
        )
        assert withdrawn.status_code == 201, withdrawn.text
        _context(gateway, "/consent").dispatcher.dispatch_pending()

        flagged = http.get(
            "/media/v1/publications", params={"status": "takedown_required"}, headers=as_("cms")
        ).json()["items"]

    assert [p["id"] for p in flagged] == [published.json()["id"]]
    assert flagged[0]["takedown"]["state"] == "withdrawn"
    with media.database.session() as session:
        outbox = session.execute(
            select(kit_tables.outbox_event.c.type, kit_tables.outbox_event.c.payload)
        ).all()
    notices = [row.payload for row in outbox if row.type == "publication.takedown_required"]
    assert [n["publication_id"] for n in notices] == [published.json()["id"]]
    assert notices[0]["pupil_id"] == pupil
