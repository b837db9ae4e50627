"""Who may call what on the media service (A1, M6, M8), and one school's media stays in it.

The matrix is the documented policy written out by hand from the role groups in
``hallpass_media/common.py``; it is deliberately not computed from the code it checks. The
endpoints are read from the app's routes, so a new endpoint without a row fails the matrix.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx2 import Response

from hallpass_kit.auth import Role
from hallpass_kit.settings import CommonSettings
from hallpass_media.context import media_context
from hallpass_media.media.scan import scan_pending
from tests.conftest import OTHER_SCHOOL, SCHOOL, TokenFactory, TrustTokenFactory
from tests.consent.builders import SchoolBuilder
from tests.media import images

PROBLEM_JSON = "application/problem+json"

R = Role
EVERYONE = frozenset(Role)
TRUST_OFFICERS = frozenset({R.trust_admin, R.trust_dpo})
# A trust's administrator is an administrator in each school of the trust; its data protection
# officer reads the audit trail and answers subject access requests (M8), nothing else.
ADMINS = frozenset({R.admin, R.trust_admin})
STAFF = frozenset({R.staff, R.head, R.deputy, R.dsl, R.office, R.social_media}) | ADMINS
DEVICE_REGISTRARS = frozenset({R.office, R.head, R.deputy}) | ADMINS
CHECKERS = STAFF | {R.cms}
PUBLISHERS = frozenset({R.head, R.deputy, R.social_media})  # M6
PUBLICATION_READERS = STAFF | {R.cms}
SETTINGS_ADMINS = frozenset({R.head}) | ADMINS
SUBJECT_ACCESS = frozenset({R.office, R.head, R.deputy, R.dsl, R.parent, R.trust_dpo}) | ADMINS
AUDITORS = frozenset({R.head, R.dsl, R.trust_dpo})
WEBHOOK_MANAGERS = frozenset({R.head}) | ADMINS
NOBODY: frozenset[Role] = frozenset()


@dataclass(frozen=True)
class World:
    class_id: str
    pupil: str
    guardian: str
    device: str
    spare_device: str
    media: str
    publication: str


Body = dict[str, Any] | Callable[[World], dict[str, Any]] | None
Files = Callable[[World], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    allowed: frozenset[Role]
    json: Body = None
    form: Body = None
    files: Files = None
    # Not for people: the sender's signature, not a bearer token, lets the request in.
    signed: bool = False


def _picture(_world: World) -> dict[str, Any]:
    return {"file": ("IMG_7.jpg", images.jpeg(images.photo(200, 150)), "image/jpeg")}


def _check_files(_world: World) -> dict[str, Any]:
    return {"file": ("IMG_8.jpg", images.jpeg(images.photo(200, 150, seed=3)), "image/jpeg")}


Endpoint = tuple[str, str]

MATRIX: dict[Endpoint, Row] = {
    ("GET", "/v1/ping"): Row(EVERYONE),
    ("POST", "/v1/devices"): Row(
        DEVICE_REGISTRARS, json=lambda w: {"name": "Tablet", "serial": uuid.uuid4().hex}
    ),
    ("GET", "/v1/devices"): Row(STAFF),
    ("POST", "/v1/devices/{device_id}:retire"): Row(DEVICE_REGISTRARS),
    ("POST", "/v1/media"): Row(
        STAFF,
        form=lambda w: {"device_id": w.device, "pupils": json.dumps([{"pupil_id": w.pupil}])},
        files=_picture,
    ),
    ("GET", "/v1/media"): Row(STAFF),
    ("GET", "/v1/media/{media_id}"): Row(STAFF),
    ("GET", "/v1/media/{media_id}/scan"): Row(STAFF),
    ("GET", "/v1/media/{media_id}/original"): Row(STAFF),
    ("POST", "/v1/publications:check"): Row(
        CHECKERS, json=lambda w: {"channel": "website", "media_ids": [w.media]}
    ),
    ("POST", "/v1/publications:check-file"): Row(
        CHECKERS, form={"channel": "website"}, files=_check_files
    ),
    ("POST", "/v1/publications"): Row(
        PUBLISHERS, json=lambda w: {"channel": "website", "media_ids": [w.media]}
    ),
    ("GET", "/v1/publications"): Row(PUBLICATION_READERS),
    ("GET", "/v1/publications/{publication_id}"): Row(PUBLICATION_READERS),
    ("POST", "/v1/publications/{publication_id}:confirm-takedown"): Row(PUBLISHERS),
    ("GET", "/v1/publications/{publication_id}/renditions/{media_id}"): Row(PUBLICATION_READERS),
    ("POST", "/v1/livestreams:check"): Row(STAFF, json=lambda w: {"class_id": w.class_id}),
    ("GET", "/v1/pupils/{pupil_id}/media"): Row(SUBJECT_ACCESS),
    ("GET", "/v1/pupils/{pupil_id}/media:export"): Row(SUBJECT_ACCESS),
    ("GET", "/v1/settings"): Row(STAFF),
    ("PUT", "/v1/settings"): Row(
        SETTINGS_ADMINS, json={"forbid_first_names": False, "blur_untagged_faces": False}
    ),
    ("GET", "/v1/audit"): Row(AUDITORS),
    ("GET", "/v1/audit:verify"): Row(AUDITORS),
    ("GET", "/v1/audit:checkpoint"): Row(AUDITORS),
    ("GET", "/v1/audit/checkpoints"): Row(AUDITORS),
    ("GET", "/v1/audit:checkpoint-keys"): Row(AUDITORS),
    ("POST", "/v1/webhook-subscriptions"): Row(
        WEBHOOK_MANAGERS,
        json={
            "name": "cms",
            "url": "https://cms.oakfield.example/hooks",
            "events": ["publication.takedown_required"],
        },
    ),
    ("GET", "/v1/webhook-subscriptions"): Row(WEBHOOK_MANAGERS),
    ("DELETE", "/v1/webhook-subscriptions/{subscription_id}"): Row(WEBHOOK_MANAGERS),
    ("GET", "/v1/webhook-dead-letters"): Row(WEBHOOK_MANAGERS),
    ("POST", "/v1/webhook-dead-letters/{delivery_id}:replay"): Row(WEBHOOK_MANAGERS),
    ("POST", "/v1/webhooks/{source}"): Row(NOBODY, json={}, signed=True),
}
SIGNED = [endpoint for endpoint, row in MATRIX.items() if row.signed]


def endpoints(app: FastAPI) -> list[Endpoint]:
    found: list[Endpoint] = []
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if isinstance(route.original_route, APIRoute) and path and path.startswith("/v1/"):
            found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def build_world(
    media_client: TestClient, consent_client: TestClient, auth: TokenFactory, school: str = SCHOOL
) -> World:
    builder = SchoolBuilder(consent_client, auth, school)
    builder.set_up()
    class_id = builder.school_class()
    family = builder.family("Amara", "Okafor", class_id=class_id)
    builder.consent(family.pupil_id, family.guardian_ids[0], "website_photo")
    office = auth("office", school=school)

    def device(serial: str) -> str:
        response = media_client.post(
            "/v1/devices", json={"name": "Camera", "serial": serial}, headers=office
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    camera = device(f"CAM-{school}")
    upload = media_client.post(
        "/v1/media",
        data={"device_id": camera, "pupils": json.dumps([{"pupil_id": family.pupil_id}])},
        files={"file": ("IMG_1.jpg", images.jpeg(images.photo(300, 200)), "image/jpeg")},
        headers=auth("staff", school=school),
    )
    assert upload.status_code == 201, upload.text
    media_id = str(upload.json()["id"])
    context = media_client.app.state.hallpass  # type: ignore[attr-defined]
    media = media_context(context)
    scan_pending(context.database, media.storage, media.get_scanner())
    published = media_client.post(
        "/v1/publications",
        json={"channel": "website", "media_ids": [media_id]},
        headers=auth("head", school=school),
    )
    assert published.status_code == 201, published.text
    return World(
        class_id=class_id,
        pupil=family.pupil_id,
        guardian=family.guardian_ids[0],
        device=camera,
        spare_device=device(f"SPARE-{school}"),
        media=media_id,
        publication=str(published.json()["id"]),
    )


def call(client: TestClient, world: World, endpoint: Endpoint, headers: dict[str, str]) -> Response:
    method, path = endpoint
    row = MATRIX[endpoint]
    url = path.format(
        device_id=world.spare_device,
        media_id=world.media,
        publication_id=world.publication,
        pupil_id=world.pupil,
        subscription_id=uuid.UUID(int=1),
        delivery_id=uuid.UUID(int=2),
        source="consent",
    )
    body = row.json(world) if callable(row.json) else row.json
    if row.files is not None:
        form = row.form(world) if callable(row.form) else row.form
        return client.request(method, url, data=form, files=row.files(world), headers=headers)
    return client.request(method, url, json=body, headers=headers)


def token_for(
    auth: TokenFactory, trust_auth: TrustTokenFactory, role: Role, world: World
) -> dict[str, str]:
    # A trust officer's token names the trust, whose first school is this one.
    if role in TRUST_OFFICERS:
        return trust_auth(role)
    return auth(role, guardian=world.guardian) if role is Role.parent else auth(role)


def is_problem(response: Response, status: int) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0]
    return response.status_code == status and content_type == PROBLEM_JSON


def test_every_endpoint_has_a_matrix_row(media_app: FastAPI) -> None:
    served = endpoints(media_app)
    assert len(served) == len(set(served)), "an endpoint is declared twice"
    assert len(served) > 20, served
    missing = sorted(set(served) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(served))
    assert not missing, f"endpoints without a row in the role matrix: {missing}"
    assert not stale, f"matrix rows for endpoints that no longer exist: {stale}"


@pytest.fixture
def common_settings(trust_settings: CommonSettings) -> CommonSettings:
    """The test trusts are known, so a trust officer's token is one every row can be asked with."""
    return trust_settings


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_role_matrix(
    role: Role,
    media_client: TestClient,
    client: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
    media_app: FastAPI,
) -> None:
    world = build_world(media_client, client, auth)
    headers = token_for(auth, trust_auth, role, world)
    wrong: list[str] = []
    for endpoint in endpoints(media_app):
        if endpoint in SIGNED:
            continue
        response = call(media_client, world, endpoint, headers)
        if role in MATRIX[endpoint].allowed:
            if response.status_code in (401, 403) or response.status_code >= 500:
                wrong.append(f"{endpoint}: allowed, got {response.status_code} {response.text}")
        elif not is_problem(response, 403):
            wrong.append(f"{endpoint}: should be 403, got {response.status_code}")
    assert not wrong, f"role {role}:\n" + "\n".join(wrong)


def test_every_endpoint_refuses_a_request_without_a_token(
    media_client: TestClient, client: TestClient, auth: TokenFactory, media_app: FastAPI
) -> None:
    world = build_world(media_client, client, auth)
    for endpoint in endpoints(media_app):
        if endpoint in SIGNED:
            continue
        response = call(media_client, world, endpoint, {})
        assert is_problem(response, 401), (endpoint, response.status_code, response.text)
        assert response.json()["code"] == "unauthenticated", endpoint


@pytest.mark.parametrize("endpoint", SIGNED, ids=str)
@pytest.mark.parametrize("token", ["none", "every role"])
def test_a_signed_endpoint_refuses_an_unsigned_request_whatever_token_it_carries(
    endpoint: Endpoint,
    token: str,
    media_client: TestClient,
    client: TestClient,
    auth: TokenFactory,
) -> None:
    world = build_world(media_client, client, auth)
    headers = auth(*sorted(set(Role) - TRUST_OFFICERS)) if token == "every role" else {}

    response = call(media_client, world, endpoint, headers)

    assert is_problem(response, 401), (response.status_code, response.text)
    assert response.json()["code"] == "webhook_signature_invalid"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/media/{media}"),
        ("GET", "/v1/media/{media}/scan"),
        ("GET", "/v1/media/{media}/original"),
        ("GET", "/v1/publications/{publication}"),
        ("GET", "/v1/publications/{publication}/renditions/{media}"),
        ("POST", "/v1/publications/{publication}:confirm-takedown"),
        ("POST", "/v1/devices/{spare_device}:retire"),
        ("GET", "/v1/pupils/{pupil}/media"),
        ("GET", "/v1/pupils/{pupil}/media:export"),
    ],
)
def test_another_school_cannot_reach_this_schools_media(
    method: str, path: str, media_client: TestClient, client: TestClient, auth: TokenFactory
) -> None:
    ours = build_world(media_client, client, auth)
    staff = auth(*sorted(STAFF - TRUST_OFFICERS), school=OTHER_SCHOOL)

    response = media_client.request(method, path.format(**ours.__dict__), headers=staff)

    assert is_problem(response, 404), response.text
    assert ours.pupil not in response.text or ours.pupil in str(response.url)


def test_another_school_cannot_check_or_publish_this_schools_media(
    media_client: TestClient, client: TestClient, auth: TokenFactory
) -> None:
    ours = build_world(media_client, client, auth)
    SchoolBuilder(client, auth, OTHER_SCHOOL).set_up()
    staff = auth(*sorted(STAFF - TRUST_OFFICERS), school=OTHER_SCHOOL)
    filled = {"channel": "website", "media_ids": [ours.media]}

    checked = media_client.post("/v1/publications:check", json=filled, headers=staff)
    published = media_client.post("/v1/publications", json=filled, headers=staff)

    assert is_problem(checked, 422)
    assert checked.json()["code"] == "unknown_media"
    assert is_problem(published, 422)
    assert published.json()["code"] == "unknown_media"


def test_another_schools_lists_hold_only_their_own(
    media_client: TestClient, client: TestClient, auth: TokenFactory
) -> None:
    ours = build_world(media_client, client, auth)
    theirs = build_world(media_client, client, auth, OTHER_SCHOOL)
    staff = auth(*sorted(STAFF - TRUST_OFFICERS), school=OTHER_SCHOOL)

    media = media_client.get("/v1/media", headers=staff).json()["items"]
    publications = media_client.get("/v1/publications", headers=staff).json()["items"]
    devices = media_client.get("/v1/devices", headers=staff).json()["items"]
    audit = media_client.get("/v1/audit?limit=500", headers=auth("head", school=OTHER_SCHOOL))

    assert [m["id"] for m in media] == [theirs.media]
    assert [p["id"] for p in publications] == [theirs.publication]
    assert {d["id"] for d in devices} == {theirs.device, theirs.spare_device}
    for ours_id in (ours.media, ours.publication, ours.pupil, ours.device):
        assert ours_id not in audit.text
