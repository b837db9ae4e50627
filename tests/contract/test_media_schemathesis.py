"""The media service against its own OpenAPI document: schemathesis, in-process over ASGI.

Every operation is fuzzed with schemathesis' default checks, with a token that reaches the whole
API, against a school with real pupils, a registered device, scanned media and a publication;
generated ids are swapped for real ones part of the time so requests get past "not found".
Multipart operations (uploads, file checks) are fuzzed too: random bytes must be refused as
415/413/422, never a 500.

``HALLPASS_FUZZ_EXAMPLES`` sets the examples per operation (25 by default; ``make fuzz`` uses 500).
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from hallpass_consent.app import create_app as create_consent_app
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings, Environment
from hallpass_media import migrations
from hallpass_media.app import create_app
from hallpass_media.context import media_context
from hallpass_media.media.scan import scan_pending
from hallpass_media.scanning import Scanner
from hallpass_media.settings import MediaSettings
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.contract.support import WEBHOOK_REJECTIONS, config, is_listed, is_uuid, rejected_problem
from tests.media import images

Case: TypeAlias = schemathesis.Case[Any]

EXAMPLES = int(os.environ.get("HALLPASS_FUZZ_EXAMPLES", "25"))

IMAGE_REFUSALS = {
    (415, "unsupported_media_type"),
    (413, "image_too_large"),
    (413, "too_many_pixels"),
    (422, "corrupt_image"),
}
CHECK_REFUSALS = {
    (422, "unknown_media"),
    (422, "duplicate_media"),
    (422, "nothing_to_check"),
    (422, "too_many_items"),
}
# Schema-valid requests the API rightly refuses because of what they refer to or a rule.
BUSINESS_REJECTIONS: dict[str, frozenset[tuple[int, str]]] = {
    "GET /v1/devices": frozenset({(400, "invalid_cursor")}),
    "GET /v1/media": frozenset({(400, "invalid_cursor")}),
    "GET /v1/publications": frozenset({(400, "invalid_cursor")}),
    "GET /v1/audit": frozenset({(400, "invalid_cursor")}),
    "GET /v1/audit/checkpoints": frozenset({(400, "invalid_cursor")}),
    **WEBHOOK_REJECTIONS,
    "POST /v1/devices": frozenset({(409, "device_exists")}),
    "POST /v1/media": frozenset(
        IMAGE_REFUSALS
        | {
            (422, code)
            for code in (
                "unregistered_device",
                "invalid_pupils",
                "unknown_pupil",
                "duplicate_pupil",
                "face_outside_image",
                "source_required",
                "invalid_taken_at",
            )
        }
    ),
    "POST /v1/publications:check": frozenset(CHECK_REFUSALS),
    "POST /v1/publications:check-file": frozenset(IMAGE_REFUSALS | CHECK_REFUSALS),
    "POST /v1/publications": frozenset(
        CHECK_REFUSALS
        | {
            (422, "publication_refused"),
            (422, "channel_not_publishable"),
            (409, "idempotency_key_reused"),
        }
    ),
    "POST /v1/publications/{publication_id}:confirm-takedown": frozenset(
        {(409, "already_taken_down")}
    ),
    "GET /v1/publications/{publication_id}/renditions/{media_id}": frozenset(
        {(409, "publication_not_live")}
    ),
    "POST /v1/livestreams:check": frozenset({(422, "unknown_pupil"), (422, "nobody_to_check")}),
}


def _schema_app() -> FastAPI:
    common = CommonSettings(env=Environment.test)
    return create_app(
        common=common,
        settings=MediaSettings(ocr=False),
        verifier=TokenVerifier(common),
        consent=ServiceClient(name="consent"),
        database=Database("sqlite://"),
        run_background=False,
        migrate=False,
    )


schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _schema_app(),
    config=config(),
)


@schema.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Any,
    case: Case,
    response: schemathesis.Response,
) -> bool:
    """Keep every failure but a schema-valid request refused for one of the reasons above."""
    problem = rejected_problem(failure, response)
    return problem is None or not is_listed(case, response, problem, BUSINESS_REJECTIONS)


ID_NAMES = ("pupil_id", "media_id", "publication_id", "device_id", "class_id")


@dataclass
class Fuzzed:
    app: FastAPI
    staff: dict[str, str]
    parent: dict[str, str]
    real: dict[str, str]

    def substitute(self, case: Case) -> None:
        """Point about two cases in three at real records; the generated values decide which."""
        body = dict(case.body) if isinstance(case.body, dict) else None
        candidates = [*case.path_parameters.items(), *sorted((body or {}).items())]
        seed = next(
            (zlib.crc32(str(v).encode()) for _, v in candidates if isinstance(v, str)), None
        )
        if seed is None or seed % 3 == 0:
            return
        if case.path_parameters:
            case.path_parameters = {
                k: self.real[k] if k in self.real and is_uuid(v) else v
                for k, v in case.path_parameters.items()
            }
        if body is None:
            return
        for name, value in body.items():
            if name in self.real and is_uuid(value):
                body[name] = self.real[name]
            elif name == "media_ids" and isinstance(value, list):
                body[name] = [self.real["media_id"] if is_uuid(v) else v for v in value[:1]]
            elif name == "pupil_ids" and isinstance(value, list):
                body[name] = [self.real["pupil_id"] if is_uuid(v) else v for v in value[:1]]
        case.body = body


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    return Scanner(ocr=False)


@pytest.fixture
def fuzzed(
    tmp_path: Path,
    sqlite_template: Path,
    issuer: DevIssuer,
    auth: TokenFactory,
    scanner: Scanner,
) -> Iterator[Fuzzed]:
    consent_path = tmp_path / "consent.db"
    shutil.copyfile(sqlite_template, consent_path)
    consent_db = Database(f"sqlite:///{consent_path}")
    media_db = Database(f"sqlite:///{tmp_path / 'media.db'}")
    migrations.upgrade(media_db)
    common = CommonSettings(env=Environment.test, data_dir=tmp_path / "data")
    verifier = TokenVerifier(common, key_set=issuer.key_set())
    consent_app = create_consent_app(
        common=common,
        settings=ConsentSettings(),
        verifier=verifier,
        database=consent_db,
        run_background=False,
        migrate=False,
    )
    app = create_app(
        common=common,
        settings=MediaSettings(ocr=False),
        verifier=verifier,
        consent=ServiceClient(
            name="consent", app=consent_app, tokens=DevServiceTokens(issuer, "media")
        ),
        database=media_db,
        run_background=False,
        migrate=False,
        scanner=scanner,
    )
    with TestClient(consent_app) as consent, TestClient(app) as media:
        school = SchoolBuilder(consent, auth)
        school.set_up()
        class_id = school.school_class()
        family = school.family("Amara", "Okafor", class_id=class_id)
        school.consent(family.pupil_id, family.guardian_ids[0], "website_photo")
        device = media.post(
            "/v1/devices", json={"name": "Camera", "serial": "FUZZ-1"}, headers=auth("office")
        ).json()["id"]
        upload = media.post(
            "/v1/media",
            data={"device_id": device, "pupils": json.dumps([{"pupil_id": family.pupil_id}])},
            files={"file": ("IMG_1.jpg", images.jpeg(images.photo(300, 200)), "image/jpeg")},
            headers=auth("staff"),
        ).json()
        context = app.state.hallpass
        scan_pending(context.database, media_context(context).storage, scanner)
        publication = media.post(
            "/v1/publications",
            json={"channel": "website", "media_ids": [upload["id"]]},
            headers=auth("head"),
        ).json()
    yield Fuzzed(
        app=app,
        staff=auth("head", "office", "dsl", "admin", "staff"),
        parent=auth("parent", guardian=family.guardian_ids[0]),
        real={
            "pupil_id": family.pupil_id,
            "media_id": upload["id"],
            "publication_id": publication["id"],
            "device_id": device,
            "class_id": class_id,
        },
    )
    consent_db.dispose()
    media_db.dispose()


@pytest.mark.contract
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@schema.parametrize()
def test_media_api_keeps_its_openapi_contract(case: Case, fuzzed: Fuzzed) -> None:
    fuzzed.substitute(case)
    case.call_and_validate(headers=fuzzed.staff, app=fuzzed.app)
