"""Media reads each consent answer through a model: an answer it cannot read (a field renamed
or missing) is an answer consent could not give, so the check fails closed with 503 and never
says "allowed". Consent is a small fake here: the point is an answer the real one never sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from hallpass_media.app import create_app
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from tests.conftest import TokenFactory

PUPIL = uuid.UUID("00000000-0000-4000-8000-00000000a11a")


def drifted_consent() -> FastAPI:
    """A consent service whose answers renamed or dropped fields media reads."""
    consent = FastAPI()

    @consent.get("/v1/roster")
    def roster() -> dict[str, Any]:
        pupil = {"id": str(PUPIL), "first_name": "Amara", "family_name": "Okafor"}
        return {"version": 1, "pupils": [pupil]}

    @consent.post("/v1/decisions")
    def decisions() -> dict[str, Any]:
        entry = {"pupil_id": str(PUPIL), "reason": "granted"}
        return {"purpose": "livestream", "at": "2026-01-01T00:00:00Z", "decisions": [entry]}

    return consent


@pytest.fixture
def drifted_media(
    media_db: Database, issuer: DevIssuer, common_settings: CommonSettings, scanner: Scanner
) -> Iterator[TestClient]:
    app = create_app(
        common=common_settings,
        settings=MediaSettings(ocr=False),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=ServiceClient(
            name="consent", app=drifted_consent(), tokens=DevServiceTokens(issuer, "media")
        ),
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_check_fails_closed_when_the_roster_names_a_field_media_does_not_know(
    drifted_media: TestClient, auth: TokenFactory
) -> None:
    response = drifted_media.post(
        "/v1/publications:check",
        json={"channel": "website", "media_ids": [], "caption": "Sports day"},
        headers=auth("cms"),
    )

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "consent_unavailable"


def test_livestream_check_fails_closed_when_a_decision_has_no_allowed_field(
    drifted_media: TestClient, auth: TokenFactory
) -> None:
    response = drifted_media.post(
        "/v1/livestreams:check", json={"pupil_ids": [str(PUPIL)]}, headers=auth("staff")
    )

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "consent_unavailable"
