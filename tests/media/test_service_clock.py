"""The media service takes the time from its one clock (ServiceContext.clock): a media app built
with a frozen clock stamps devices, uploads, publications and takedowns with that time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.media.builders import MediaWorld, plain_photo

# A moment no test run happens at, so a stamp from the wall clock cannot pass for it.
FROZEN = dt.datetime(2031, 3, 14, 9, 26, 53, tzinfo=dt.UTC)


@pytest.fixture
def frozen_world(
    media_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    scanner: Scanner,
    school: SchoolBuilder,
    auth: TokenFactory,
) -> Iterator[MediaWorld]:
    app: FastAPI = create_app(
        common=common_settings,
        settings=MediaSettings(ocr=False),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
        clock=lambda: FROZEN,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield MediaWorld(client, school, auth, app)


def _at(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_device_registration_and_retirement_are_stamped_by_the_service_clock(
    frozen_world: MediaWorld,
) -> None:
    device = frozen_world.device()

    retired = frozen_world.client.post(f"/v1/devices/{device}:retire", headers=frozen_world.office)

    assert retired.status_code == 200, retired.text
    assert _at(retired.json()["registered_at"]) == FROZEN
    assert _at(retired.json()["retired_at"]) == FROZEN


def test_upload_publication_and_confirmed_takedown_are_stamped_by_the_service_clock(
    frozen_world: MediaWorld,
) -> None:
    pupil, _ = frozen_world.consented_pupil()
    media_id = frozen_world.upload(plain_photo(), pupils=[pupil])
    frozen_world.scan()
    publication = frozen_world.publish("website", [media_id])

    uploaded = frozen_world.client.get(f"/v1/media/{media_id}", headers=frozen_world.head)
    confirmed = frozen_world.client.post(
        f"/v1/publications/{publication['id']}:confirm-takedown", headers=frozen_world.head
    )

    assert _at(uploaded.json()["uploaded_at"]) == FROZEN
    assert _at(publication["published_at"]) == FROZEN
    assert confirmed.status_code == 200, confirmed.text
    assert _at(confirmed.json()["taken_down_at"]) == FROZEN
