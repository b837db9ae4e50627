"""Who may call what in the comms service (A1), one school's mail stays in it, one family's
stays with it (A2).

The matrix is the documented policy written out by hand from the role groups in
``hallpass_comms/common.py``; it is deliberately not computed from the code it checks. The
endpoints are read from the app's routes, so a new endpoint without a row fails the matrix.
"""

from __future__ import annotations

import dataclasses
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
from tests.comms.conftest import settings_body
from tests.conftest import OTHER_SCHOOL, SCHOOL, TokenFactory, TrustTokenFactory
from tests.consent.builders import SchoolBuilder

PROBLEM_JSON = "application/problem+json"

R = Role
EVERYONE = frozenset(Role)
TRUST_OFFICERS = frozenset({R.trust_admin, R.trust_dpo})
# A trust's administrator is an administrator in each school of the trust; its data protection
# officer reads the audit trail, nothing else: no mail, no family's history, no pastoral matter.
ADMINS = frozenset({R.admin, R.trust_admin})
STAFF = frozenset({R.staff, R.head, R.deputy, R.dsl, R.office, R.social_media}) | ADMINS
SENDERS = frozenset({R.staff, R.head, R.deputy, R.dsl, R.office, R.pastoral})
SETTINGS_ADMINS = frozenset({R.head}) | ADMINS
APPROVERS = frozenset({R.head, R.deputy})
MESSAGE_READERS = SENDERS | {R.head, R.deputy, R.dsl}
HISTORY_READERS = frozenset({R.head, R.deputy, R.dsl, R.pastoral, R.office, R.parent})
PASTORAL = frozenset({R.dsl, R.pastoral})
CARERS = frozenset({R.parent})
REPORTERS = STAFF | {R.pastoral, R.parent}
AUDITORS = frozenset({R.head, R.dsl, R.trust_dpo})
REPORT_READERS = frozenset({R.dsl, R.head})


@dataclass(frozen=True)
class World:
    class_id: str
    pupil_a: str
    pupil_b: str
    guardian_a: str
    guardian_b: str
    message_a: str  # sensitive, to family A
    held: str  # to an outside organisation, waiting for approval
    concern_a: str


Body = dict[str, Any] | Callable[[World], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    allowed: frozenset[Role]
    json: Body = None
    # Authenticated by a webhook signature, never by a bearer token.
    signed: bool = False


Endpoint = tuple[str, str]

MATRIX: dict[Endpoint, Row] = {
    ("GET", "/v1/ping"): Row(EVERYONE),
    ("GET", "/v1/settings"): Row(SETTINGS_ADMINS),
    ("PUT", "/v1/settings"): Row(SETTINGS_ADMINS, json=settings_body()),
    ("POST", "/v1/messages"): Row(
        SENDERS,
        json=lambda w: {
            "recipients": {"pupil_ids": [w.pupil_b]},
            "subject": "PE kit",
            "body_text": "Please bring PE kit on Monday.",
        },
    ),
    ("POST", "/v1/messages:preview"): Row(
        SENDERS,
        json=lambda w: {
            "recipients": {"class_ids": [w.class_id]},
            "subject": "PE kit",
            "body_text": "Please bring PE kit on Monday.",
        },
    ),
    ("GET", "/v1/approvals"): Row(APPROVERS),
    ("GET", "/v1/messages/{message_id}"): Row(MESSAGE_READERS),
    ("POST", "/v1/messages/{message_id}:approve"): Row(APPROVERS),
    ("GET", "/v1/messages/{message_id}/secure-view"): Row(CARERS),
    ("GET", "/v1/families/{pupil_id}/messages"): Row(HISTORY_READERS),
    ("POST", "/v1/pastoral/concerns"): Row(
        CARERS, json={"subject": "Playground", "body": "Something happened at break."}
    ),
    ("GET", "/v1/pastoral/concerns"): Row(PASTORAL),
    ("GET", "/v1/pastoral/concerns/{concern_id}"): Row(PASTORAL),
    ("POST", "/v1/pastoral/concerns/{concern_id}/replies"): Row(
        PASTORAL, json={"body_text": "Thank you for telling us."}
    ),
    ("POST", "/v1/reports"): Row(
        REPORTERS,
        json=lambda w: {"message_id": w.message_a, "description": "This was rude."},
    ),
    ("GET", "/v1/reports"): Row(REPORT_READERS),
    ("GET", "/v1/reports/{report_id}"): Row(REPORT_READERS),
    ("POST", "/v1/reports/{report_id}:resolve"): Row(
        REPORT_READERS, json={"resolution": "Spoken to the sender."}
    ),
    ("GET", "/v1/audit"): Row(AUDITORS),
    ("GET", "/v1/audit:verify"): Row(AUDITORS),
    ("GET", "/v1/audit:checkpoint"): Row(AUDITORS),
    ("GET", "/v1/audit/checkpoints"): Row(AUDITORS),
    ("GET", "/v1/audit:checkpoint-keys"): Row(AUDITORS),
    # consent_request.mail_due from consent (the consent request emails): the signature alone.
    ("POST", "/v1/webhooks/{source}"): Row(frozenset(), json={}, signed=True),
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
    client: TestClient, comms: TestClient, auth: TokenFactory, school: str = SCHOOL
) -> World:
    builder = SchoolBuilder(client, auth, school)
    builder.set_up()
    class_id = builder.school_class()
    a = builder.family("Amara", "Okafor", class_id=class_id)
    b = builder.family("Oliver", "Shaw", class_id=class_id)
    domain = f"{school}.sch.uk"
    settings = settings_body(
        domains=[domain],
        head_address=f"head@{domain}",
        deputy_address=f"deputy@{domain}",
        dsl_address=f"dsl@{domain}",
        office_address=f"office@{domain}",
    )
    put = comms.put("/v1/settings", json=settings, headers=auth("head", school=school))
    assert put.status_code == 200, put.text
    staff = auth("staff", school=school)
    message = comms.post(
        "/v1/messages",
        json={
            "recipients": {"pupil_ids": [a.pupil_id]},
            "subject": "About Amara",
            "body_text": "Private words.",
            "sensitivity": "sensitive",
        },
        headers=staff,
    )
    held = comms.post(
        "/v1/messages",
        json={
            "recipients": {"addresses": ["referrals@council.gov.uk"]},
            "subject": "Referral",
            "body_text": "Please see the attached notes.",
        },
        headers=staff,
    )
    concern = comms.post(
        "/v1/pastoral/concerns",
        json={"subject": "Lunchtimes", "body": "Amara is upset.", "pupil_id": a.pupil_id},
        headers=auth("parent", school=school, guardian=a.guardian_ids[0]),
    )
    for response in (message, held, concern):
        assert response.status_code in (201, 202), response.text
    return World(
        class_id,
        a.pupil_id,
        b.pupil_id,
        a.guardian_ids[0],
        b.guardian_ids[0],
        message.json()["id"],
        held.json()["id"],
        concern.json()["id"],
    )


def call(comms: TestClient, world: World, endpoint: Endpoint, headers: dict[str, str]) -> Response:
    method, path = endpoint
    row = MATRIX[endpoint]
    message = world.held if path.endswith(":approve") else world.message_a
    url = path.format(
        message_id=message,
        pupil_id=world.pupil_a,
        concern_id=world.concern_a,
        report_id=uuid.uuid4(),  # none such: a reader is told 404, anyone else 403
        source="consent",
    )
    body = row.json(world) if callable(row.json) else row.json
    return comms.request(method, url, json=body, headers=headers)


def token_for(
    auth: TokenFactory, trust_auth: TrustTokenFactory, role: Role, world: World
) -> dict[str, str]:
    # A trust officer's token names the trust, whose first school is this one.
    if role in TRUST_OFFICERS:
        return trust_auth(role)
    return auth(role, guardian=world.guardian_a) if role is Role.parent else auth(role)


def is_problem(response: Response, status: int) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0]
    return response.status_code == status and content_type == PROBLEM_JSON


def test_every_endpoint_has_a_matrix_row(comms_app: FastAPI) -> None:
    served = endpoints(comms_app)
    assert len(served) == len(set(served)), "an endpoint is declared twice"
    assert len(served) > 10, served
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
    client: TestClient,
    comms: TestClient,
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
    comms_app: FastAPI,
) -> None:
    world = build_world(client, comms, auth)
    headers = token_for(auth, trust_auth, role, world)
    wrong: list[str] = []
    for endpoint in endpoints(comms_app):
        if endpoint not in MATRIX:
            wrong.append(f"{endpoint}: no row in the matrix")
            continue
        if endpoint in SIGNED:
            continue
        response = call(comms, world, endpoint, headers)
        if role in MATRIX[endpoint].allowed:
            if response.status_code in (401, 403) or response.status_code >= 500:
                wrong.append(f"{endpoint}: allowed, got {response.status_code} {response.text}")
        elif not is_problem(response, 403):
            wrong.append(f"{endpoint}: should be 403, got {response.status_code}")
    assert not wrong, f"role {role}:\n" + "\n".join(wrong)


def test_every_endpoint_refuses_a_request_without_a_token(
    client: TestClient, comms: TestClient, auth: TokenFactory, comms_app: FastAPI
) -> None:
    world = build_world(client, comms, auth)
    for endpoint in endpoints(comms_app):
        if endpoint in SIGNED:
            continue
        response = call(comms, world, endpoint, {})
        assert is_problem(response, 401), (endpoint, response.status_code, response.text)
        assert response.headers["www-authenticate"] == "Bearer", endpoint


@pytest.mark.parametrize("endpoint", SIGNED, ids=str)
@pytest.mark.parametrize("token", ["none", "every role"])
def test_a_signed_endpoint_refuses_an_unsigned_request_whatever_token_it_carries(
    endpoint: Endpoint,
    token: str,
    client: TestClient,
    comms: TestClient,
    auth: TokenFactory,
) -> None:
    world = build_world(client, comms, auth)
    headers = auth(*sorted(set(Role) - TRUST_OFFICERS)) if token == "every role" else {}

    response = call(comms, world, endpoint, headers)

    assert is_problem(response, 401), (response.status_code, response.text)
    assert response.json()["code"] == "webhook_signature_invalid"


# --- another school ----------------------------------------------------------------------------


@dataclass
class TwoSchools:
    ours: World
    theirs: World
    ours_ids: list[str]


@pytest.fixture
def two_schools(client: TestClient, comms: TestClient, auth: TokenFactory) -> TwoSchools:
    ours = build_world(client, comms, auth)
    theirs = build_world(client, comms, auth, OTHER_SCHOOL)
    return TwoSchools(ours, theirs, [str(v) for v in dataclasses.asdict(ours).values()])


def fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return value.format(**dataclasses.asdict(world))
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    return value


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("head", "GET", "/v1/messages/{message_a}", None),
        ("deputy", "POST", "/v1/messages/{held}:approve", None),
        ("head", "GET", "/v1/families/{pupil_a}/messages", None),
        ("dsl", "GET", "/v1/pastoral/concerns/{concern_a}", None),
        ("dsl", "POST", "/v1/pastoral/concerns/{concern_a}/replies", {"body_text": "Hello."}),
        ("staff", "POST", "/v1/reports", {"message_id": "{message_a}", "description": "Rude"}),
    ],
)
def test_another_school_cannot_reach_this_schools_mail(
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    two_schools: TwoSchools,
    comms: TestClient,
    auth: TokenFactory,
) -> None:
    ours = two_schools.ours
    response = comms.request(
        method, fill(path, ours), json=fill(body, ours), headers=auth(role, school=OTHER_SCHOOL)
    )

    assert is_problem(response, 404), response.text
    leaked = [i for i in two_schools.ours_ids if i in response.text and i not in response.url.path]
    assert not leaked


def test_a_carer_of_another_school_cannot_open_this_schools_secure_view(
    two_schools: TwoSchools, comms: TestClient, auth: TokenFactory
) -> None:
    ours = two_schools.ours
    # The same guardian id in another school's token: the school scope still holds.
    response = comms.get(
        f"/v1/messages/{ours.message_a}/secure-view",
        headers=auth("parent", school=OTHER_SCHOOL, guardian=ours.guardian_a),
    )

    assert is_problem(response, 404)
    assert "Private" not in response.text


def test_another_schools_lists_hold_only_their_own(
    two_schools: TwoSchools, comms: TestClient, auth: TokenFactory
) -> None:
    theirs = two_schools.theirs
    concerns = comms.get("/v1/pastoral/concerns", headers=auth("dsl", school=OTHER_SCHOOL)).json()[
        "items"
    ]
    audit = comms.get(
        "/v1/audit", params={"limit": "500"}, headers=auth("head", school=OTHER_SCHOOL)
    )

    assert [c["id"] for c in concerns] == [theirs.concern_a]
    leaked = [i for i in two_schools.ours_ids if i in audit.text]
    assert not leaked
