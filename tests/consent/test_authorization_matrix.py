"""Who may call what (A1), one school's data stays in it, one family's stays with it (A2).

The role matrix below is the documented policy, written out by hand from the role groups in
``hallpass_consent/common.py``; it is deliberately not computed from the code it checks. The
endpoints are read from the app's routes, so a new endpoint without a row fails the matrix.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx2 import Response
from joserfc import jwt
from joserfc.jwk import RSAKey

from hallpass_kit.auth import DevIssuer, Role
from hallpass_kit.settings import CommonSettings
from tests.conftest import OTHER_SCHOOL, SCHOOL, TokenFactory, TrustTokenFactory
from tests.consent.builders import SchoolBuilder

PROBLEM_JSON = "application/problem+json"
PROBLEM_FIELDS = {
    "type",
    "title",
    "status",
    "detail",
    "code",
    "rule",
    "problems",
    "instance",
    "request_id",
}

# --- the policy, by role group (common.py) ---------------------------------------------------

R = Role
EVERYONE = frozenset(Role)
TRUST_OFFICERS = frozenset({R.trust_admin, R.trust_dpo})
# A trust's administrator is an administrator in each school of the trust; its data protection
# officer reads the audit trail and what a subject access request asks, nothing else.
ADMINS = frozenset({R.admin, R.trust_admin})
STAFF = frozenset({R.staff, R.head, R.deputy, R.dsl, R.office, R.social_media}) | ADMINS
REGISTRARS = frozenset({R.office, R.head, R.deputy}) | ADMINS
SCHOOL_ADMINS = frozenset({R.head}) | ADMINS
AUDITORS = frozenset({R.head, R.dsl, R.trust_dpo})
PUPIL_READERS = STAFF | {R.service}
PUPIL_RECORD_READERS = PUPIL_READERS | {R.trust_dpo}  # one pupil and their consent history
GUARDIAN_READERS = frozenset({R.office, R.head, R.deputy, R.dsl, R.service}) | ADMINS
DECIDERS = STAFF | {R.cms, R.service}
WEBHOOK_MANAGERS = frozenset({R.head}) | ADMINS
RECORD_READERS = REGISTRARS | {R.dsl, R.trust_dpo}
DSL_ONLY = frozenset({R.dsl})  # C12: only the DSL sees or changes a safeguarding restriction
CARERS = frozenset({R.parent})  # A2: carers act only through /v1/me
# Who sees the accounts that sign in as a carer: GUARDIAN_READERS but no other service.
ACCOUNT_READERS = GUARDIAN_READERS - {R.service}


@dataclass(frozen=True)
class World:
    """One school with three families; pupil C takes the calls that change a pupil."""

    class_id: str
    pupil_a: str
    pupil_b: str
    pupil_c: str
    guardian_a: str
    guardian_b: str
    record_a: str
    record_b: str


Body = dict[str, Any] | Callable[[World], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    allowed: frozenset[Role]
    json: Body = None
    csv: str | None = None
    pupil: str = "a"  # which family's pupil fills {pupil_id}


Endpoint = tuple[str, str]

MATRIX: dict[Endpoint, Row] = {
    ("GET", "/v1/ping"): Row(EVERYONE),
    ("GET", "/v1/school"): Row(EVERYONE),
    ("PUT", "/v1/school"): Row(SCHOOL_ADMINS, json={"name": "Oakfield Primary"}),
    ("GET", "/v1/purposes"): Row(EVERYONE),
    ("GET", "/v1/purposes/{code}"): Row(EVERYONE),
    ("PATCH", "/v1/purposes/{code}"): Row(SCHOOL_ADMINS, json={"basis": "opt_in"}),
    ("POST", "/v1/purposes/{code}/wordings"): Row(
        SCHOOL_ADMINS, json={"text": "New words for parents about the school website."}
    ),
    ("GET", "/v1/classes"): Row(PUPIL_READERS),
    ("POST", "/v1/classes"): Row(REGISTRARS, json={"name": "Year 4 Elm", "year_group": 4}),
    ("GET", "/v1/classes/{class_id}/consent-sheet"): Row(PUPIL_READERS),
    ("GET", "/v1/classes/{class_id}/consent-sheet.html"): Row(PUPIL_READERS),
    ("GET", "/v1/pupils"): Row(PUPIL_READERS),
    ("POST", "/v1/pupils"): Row(
        REGISTRARS,
        json={"mis_id": "MX-1", "given_name": "Tobi", "family_name": "Adeyemi", "year_group": 3},
    ),
    ("POST", "/v1/pupils:import"): Row(
        REGISTRARS, csv="mis_id,given_name,family_name,year_group\nMX-2,Lena,Berg,4\n"
    ),
    ("POST", "/v1/imports"): Row(
        REGISTRARS, csv="mis_id,given_name,family_name,year_group\nMX-3,Ada,Berg,4\n"
    ),
    ("GET", "/v1/imports/{import_id}"): Row(REGISTRARS),
    ("GET", "/v1/pupils/{pupil_id}"): Row(PUPIL_RECORD_READERS),
    ("PATCH", "/v1/pupils/{pupil_id}"): Row(REGISTRARS, json={"preferred_name": "Cal"}, pupil="c"),
    ("POST", "/v1/pupils/{pupil_id}:archive"): Row(REGISTRARS, pupil="c"),
    ("GET", "/v1/pupils/{pupil_id}/guardians"): Row(GUARDIAN_READERS),
    ("GET", "/v1/pupils/{pupil_id}/consents"): Row(PUPIL_RECORD_READERS),
    ("PUT", "/v1/pupils/{pupil_id}/restriction"): Row(
        DSL_ONLY, json={"kind": "court_order", "reason": "Must not be locatable"}, pupil="c"
    ),
    ("GET", "/v1/pupils/{pupil_id}/restriction"): Row(DSL_ONLY, pupil="c"),
    ("DELETE", "/v1/pupils/{pupil_id}/restriction"): Row(DSL_ONLY, pupil="c"),
    ("POST", "/v1/guardians"): Row(
        REGISTRARS,
        json=lambda w: {
            "given_name": "Olu",
            "family_name": "Berg",
            "children": [{"pupil_id": w.pupil_c}],
        },
    ),
    ("GET", "/v1/guardians/{guardian_id}"): Row(GUARDIAN_READERS),
    ("POST", "/v1/guardians/{guardian_id}/children"): Row(
        REGISTRARS, json=lambda w: {"pupil_id": w.pupil_c, "parental_responsibility": False}
    ),
    ("POST", "/v1/consents"): Row(
        REGISTRARS,
        json=lambda w: {
            "pupil_id": w.pupil_a,
            "purpose": "livestream",
            "decision": "granted",
            "guardian_id": w.guardian_a,
            "method": "paper",
        },
    ),
    ("GET", "/v1/consents/{record_id}"): Row(RECORD_READERS),
    ("GET", "/v1/consents/{record_id}/receipt"): Row(RECORD_READERS),
    ("POST", "/v1/consents/{record_id}:withdraw"): Row(REGISTRARS, json={"method": "email"}),
    ("GET", "/v1/renewals"): Row(REGISTRARS | {R.service}),
    ("POST", "/v1/decisions"): Row(
        DECIDERS, json=lambda w: {"purpose": "website_photo", "pupil_ids": [w.pupil_a]}
    ),
    ("GET", "/v1/roster"): Row(PUPIL_READERS),
    ("POST", "/v1/families:resolve"): Row(
        GUARDIAN_READERS, json=lambda w: {"pupil_ids": [w.pupil_a], "class_ids": [w.class_id]}
    ),
    ("GET", "/v1/audit"): Row(AUDITORS),
    ("GET", "/v1/audit:verify"): Row(AUDITORS),
    ("GET", "/v1/audit:checkpoint"): Row(AUDITORS),
    ("GET", "/v1/audit/checkpoints"): Row(AUDITORS),
    ("GET", "/v1/audit:checkpoint-keys"): Row(AUDITORS),
    # The school's own webhook subscribers (a CMS hearing consent.changed), and their dead letters.
    ("POST", "/v1/webhook-subscriptions"): Row(
        WEBHOOK_MANAGERS,
        json={
            "name": "parent-app",
            "url": "https://app.oakfield.example/hooks",
            "events": ["consent.changed"],
        },
    ),
    ("GET", "/v1/webhook-subscriptions"): Row(WEBHOOK_MANAGERS),
    ("DELETE", "/v1/webhook-subscriptions/{subscription_id}"): Row(WEBHOOK_MANAGERS),
    ("GET", "/v1/webhook-dead-letters"): Row(WEBHOOK_MANAGERS),
    ("POST", "/v1/webhook-dead-letters/{delivery_id}:replay"): Row(WEBHOOK_MANAGERS),
    ("GET", "/v1/me/children"): Row(CARERS),
    ("GET", "/v1/me/children/{pupil_id}"): Row(CARERS),
    ("GET", "/v1/me/children/{pupil_id}/consents"): Row(CARERS),
    ("POST", "/v1/me/children/{pupil_id}/consents"): Row(
        CARERS, json={"purpose": "social_media_photo", "decision": "refused"}
    ),
    ("POST", "/v1/me/children/{pupil_id}/consents/{purpose}:withdraw"): Row(CARERS),
    ("GET", "/v1/me/consents/{record_id}/receipt"): Row(CARERS),
    # Carers' own accounts: their links, a code redeemed (this one is nobody's: 422), and the
    # office's side. An unknown account: an allowed role gets 404, the others 403.
    ("GET", "/v1/me/links"): Row(CARERS),
    ("POST", "/v1/me/invitations:redeem"): Row(CARERS, json={"code": "AAAA-BBBB-CCCC-DDDD"}),
    ("POST", "/v1/guardians/{guardian_id}/invitations"): Row(REGISTRARS),
    ("GET", "/v1/guardians/{guardian_id}/accounts"): Row(ACCOUNT_READERS),
    ("DELETE", "/v1/guardians/{guardian_id}/accounts/{account_id}"): Row(REGISTRARS),
    # Scans of signed forms (C10): kept by the registrars, read by them and the DSL; carers do
    # not download them through the API. Without the multipart parts an allowed role gets 422.
    ("POST", "/v1/consents:with-evidence"): Row(REGISTRARS),
    ("POST", "/v1/consents/{record_id}/evidence"): Row(REGISTRARS),
    ("GET", "/v1/consents/{record_id}/evidence"): Row(REGISTRARS | {R.dsl}),
    ("GET", "/v1/evidence/{scan_id}"): Row(REGISTRARS | {R.dsl}),
    # Consent requests: the office asks carers by email; comms fetches each round's links.
    ("POST", "/v1/consent-requests"): Row(
        REGISTRARS,
        json=lambda w: {
            "title": "Photos this year",
            "purposes": ["website_photo"],
            "scope": {"class_ids": [w.class_id]},
        },
    ),
    ("GET", "/v1/consent-requests"): Row(REGISTRARS),
    # Nobody's request: an allowed role gets 404, the others 403 before the lookup.
    ("GET", "/v1/consent-requests/{request_id}"): Row(REGISTRARS),
    ("POST", "/v1/consent-requests/{request_id}:remind"): Row(REGISTRARS),
    ("POST", "/v1/consent-requests/{request_id}:close"): Row(REGISTRARS),
    ("POST", "/v1/consent-requests/{request_id}/rounds/{round}:links"): Row(frozenset({R.service})),
    # Deliberately public: the personal link is the credential; a token nobody was sent is 404
    # whoever asks (and whatever bearer token comes with it).
    ("POST", "/v1/consent-requests:open-link"): Row(EVERYONE, json={"token": "A" * 43}),
    ("POST", "/v1/consent-requests:answer-link"): Row(
        EVERYONE,
        json=lambda w: {
            "token": "A" * 43,
            "answers": [
                {
                    "pupil_id": w.pupil_a,
                    "purpose": "website_photo",
                    "decision": "granted",
                    "wording_version": 1,
                }
            ],
        },
    ),
}

# Routes with no bearer check at all, each one a deliberate choice.
PUBLIC: frozenset[Endpoint] = frozenset(
    {
        ("POST", "/v1/consent-requests:open-link"),
        ("POST", "/v1/consent-requests:answer-link"),
    }
)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app serves under /v1, as its router knows them."""
    found: list[Endpoint] = []
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if isinstance(route.original_route, APIRoute) and path and path.startswith("/v1/"):
            found.extend((method, path) for method in sorted(route.methods or ()))
    return found


def build_world(client: TestClient, auth: TokenFactory, school: str = SCHOOL) -> World:
    builder = SchoolBuilder(client, auth, school)
    builder.set_up()
    class_id = builder.school_class()
    a = builder.family("Amara", "Okafor", class_id=class_id)
    b = builder.family("Oliver", "Shaw", class_id=class_id)
    c = builder.family("Isla", "Brennan", class_id=class_id)
    record_a = builder.consent(a.pupil_id, a.guardian_ids[0])
    record_b = builder.consent(b.pupil_id, b.guardian_ids[0])
    return World(
        class_id,
        a.pupil_id,
        b.pupil_id,
        c.pupil_id,
        a.guardian_ids[0],
        b.guardian_ids[0],
        str(record_a["id"]),
        str(record_b["id"]),
    )


def call(client: TestClient, world: World, endpoint: Endpoint, headers: dict[str, str]) -> Response:
    method, path = endpoint
    row = MATRIX[endpoint]
    pupil = {"a": world.pupil_a, "b": world.pupil_b, "c": world.pupil_c}[row.pupil]
    url = path.format(
        pupil_id=pupil,
        guardian_id=world.guardian_a,
        record_id=world.record_a,
        class_id=world.class_id,
        code="website_photo",
        purpose="website_photo",
        # Nobody's: an allowed role gets 404, the others 403 before the lookup.
        subscription_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        delivery_id=uuid.uuid4(),
        scan_id=uuid.uuid4(),
        import_id=uuid.uuid4(),
        request_id=uuid.uuid4(),
        round=1,
    )
    body = row.json(world) if callable(row.json) else row.json
    if row.csv is not None:
        return client.request(
            method, url, content=row.csv.encode(), headers={**headers, "Content-Type": "text/csv"}
        )
    return client.request(method, url, json=body, headers=headers)


def token_for(
    auth: TokenFactory, trust_auth: TrustTokenFactory, role: Role, world: World
) -> dict[str, str]:
    # A carer's token names the guardian (A2); family A's carer is the one calling. A trust
    # officer's names the trust, whose first school is this one.
    if role in TRUST_OFFICERS:
        return trust_auth(role)
    return auth(role, guardian=world.guardian_a) if role is Role.parent else auth(role)


def is_problem(response: Response, status: int) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0]
    return response.status_code == status and content_type == PROBLEM_JSON


# --- the matrix ------------------------------------------------------------------------------


def test_every_endpoint_has_a_matrix_row(consent_app: FastAPI) -> None:
    served = endpoints(consent_app)
    assert len(served) == len(set(served)), "an endpoint is declared twice"
    assert len(served) > 30, served  # the routes really were found
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
    auth: TokenFactory,
    trust_auth: TrustTokenFactory,
    consent_app: FastAPI,
) -> None:
    world = build_world(client, auth)
    headers = token_for(auth, trust_auth, role, world)
    wrong: list[str] = []
    for endpoint in endpoints(consent_app):
        if endpoint not in MATRIX:
            wrong.append(f"{endpoint}: no row in the matrix")
            continue
        response = call(client, world, endpoint, headers)
        if role in MATRIX[endpoint].allowed:
            if response.status_code in (401, 403) or response.status_code >= 500:
                wrong.append(f"{endpoint}: allowed, got {response.status_code} {response.text}")
        elif not is_problem(response, 403):
            wrong.append(f"{endpoint}: should be 403, got {response.status_code}")
    assert not wrong, f"role {role}:\n" + "\n".join(wrong)


def test_every_endpoint_refuses_a_request_without_a_token(
    client: TestClient, auth: TokenFactory, consent_app: FastAPI
) -> None:
    world = build_world(client, auth)
    served = endpoints(consent_app)
    assert served
    for endpoint in served:
        response = call(client, world, endpoint, {})
        if endpoint in PUBLIC:
            # No token is asked for; the link's token in the body is the credential.
            assert is_problem(response, 404), (endpoint, response.status_code, response.text)
            assert response.json()["code"] == "link_not_found", endpoint
            continue
        assert is_problem(response, 401), (endpoint, response.status_code, response.text)
        assert response.headers["www-authenticate"] == "Bearer", endpoint
        assert response.json()["code"] == "unauthenticated", endpoint


# --- bad tokens --------------------------------------------------------------------------------


def _encode(key: RSAKey, claims: dict[str, Any]) -> str:
    kid = key.as_dict(private=False)["kid"]
    return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, key)


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "hallpass-dev",
        "aud": "hallpass",
        "sub": "office@oakfield",
        "iat": now,
        "exp": now + 600,
        "school": SCHOOL,
        "roles": ["office"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([header, payload, signature[:middle] + flipped + signature[middle + 1 :]])


def _forged_claims(token: str, **changes: Any) -> str:
    """The same signature over other claims: a raised role, say."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return ".".join([header, forged, signature])


BAD_TOKENS: dict[str, Callable[[DevIssuer], str]] = {
    "expired": lambda i: i.issue(
        sub="office@oakfield", school=SCHOOL, roles=["office"], ttl_seconds=-3600
    ),
    "wrong audience": lambda i: DevIssuer(i.key, i.issuer, "another-service").issue(
        sub="office@oakfield", school=SCHOOL, roles=["office"]
    ),
    "wrong issuer": lambda i: DevIssuer(i.key, "https://evil.example", i.audience).issue(
        sub="office@oakfield", school=SCHOOL, roles=["office"]
    ),
    "tampered signature": lambda i: _tampered(
        i.issue(sub="office@oakfield", school=SCHOOL, roles=["office"])
    ),
    "forged claims": lambda i: _forged_claims(
        i.issue(sub="staff@oakfield", school=SCHOOL, roles=["staff"]), roles=["office"]
    ),
    "signed by another key": lambda i: DevIssuer.generate(i.issuer, i.audience).issue(
        sub="office@oakfield", school=SCHOOL, roles=["office"]
    ),
    "no school": lambda i: _encode(i.key, _claims(school=None)),
    "empty school": lambda i: _encode(i.key, _claims(school="")),
    "no hallpass role": lambda i: _encode(i.key, _claims(roles=["superuser"])),
    "no expiry": lambda i: _encode(i.key, _claims(exp=None)),
    "parent without guardian": lambda i: i.issue(
        sub="parent@oakfield", school=SCHOOL, roles=["parent"]
    ),
    "malformed guardian": lambda i: i.issue(
        sub="parent@oakfield", school=SCHOOL, roles=["parent"], guardian_id="not-a-uuid"
    ),
    "not a jwt": lambda i: "not.a.jwt",
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_an_unacceptable_token_is_refused_with_401(
    kind: str, client: TestClient, auth: TokenFactory, issuer: DevIssuer
) -> None:
    SchoolBuilder(client, auth).set_up()
    token = BAD_TOKENS[kind](issuer)

    response = client.get(
        "/v1/me/children" if "guardian" in kind else "/v1/pupils",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert is_problem(response, 401), response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "invalid_token"
    assert "items" not in response.json()


def test_a_good_token_of_the_same_shape_is_accepted(
    client: TestClient, auth: TokenFactory, issuer: DevIssuer
) -> None:
    """The refusals above are about the flaw each token carries, not about tokens as such."""
    SchoolBuilder(client, auth).set_up()
    office = _encode(issuer.key, _claims())
    assert (
        client.get("/v1/pupils", headers={"Authorization": f"Bearer {office}"}).status_code == 200
    )
    parent = issuer.issue(
        sub="parent@oakfield", school=SCHOOL, roles=["parent"], guardian_id=uuid.uuid4()
    )
    assert client.get("/v1/me/children", headers={"Authorization": f"Bearer {parent}"}).json() == []


# --- another school ----------------------------------------------------------------------------


@dataclass
class TwoSchools:
    ours: World
    theirs: World
    staff: dict[str, str]  # every staff role, in the other school
    ours_ids: list[str]  # every id of ours, to look for in their answers


@pytest.fixture
def two_schools(client: TestClient, auth: TokenFactory) -> TwoSchools:
    ours = build_world(client, auth)
    theirs = build_world(client, auth, OTHER_SCHOOL)
    staff = auth(*sorted(STAFF - TRUST_OFFICERS | {R.service}), school=OTHER_SCHOOL)
    ours_ids = [
        ours.class_id,
        ours.pupil_a,
        ours.pupil_b,
        ours.pupil_c,
        ours.guardian_a,
        ours.guardian_b,
        ours.record_a,
        ours.record_b,
    ]
    return TwoSchools(ours, theirs, staff, ours_ids)


def fill(value: Any, world: World) -> Any:
    """``"{pupil_a}"`` → that id of ``world``, anywhere in a JSON-shaped value."""
    if isinstance(value, str):
        return value.format(**dataclasses.asdict(world))
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


def _no_trace_of(response: Response, ids: list[str]) -> None:
    leaked = [i for i in ids if i in response.text]
    assert not leaked, f"{response.request.url} gave away {leaked}: {response.text}"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/pupils/{pupil_a}", None),
        ("GET", "/v1/pupils/{pupil_a}/consents", None),
        ("GET", "/v1/pupils/{pupil_a}/guardians", None),
        ("GET", "/v1/pupils/{pupil_a}/restriction", None),
        ("PATCH", "/v1/pupils/{pupil_a}", {"preferred_name": "Ami"}),
        ("POST", "/v1/pupils/{pupil_a}:archive", None),
        ("PUT", "/v1/pupils/{pupil_a}/restriction", {"kind": "other", "reason": "Test reason"}),
        ("GET", "/v1/consents/{record_a}", None),
        ("GET", "/v1/consents/{record_a}/receipt", None),
        ("POST", "/v1/consents/{record_a}:withdraw", {"method": "email"}),
        ("GET", "/v1/guardians/{guardian_a}", None),
        ("POST", "/v1/guardians/{guardian_a}/children", {"pupil_id": "{pupil_a}"}),
        ("GET", "/v1/classes/{class_id}/consent-sheet", None),
        ("GET", "/v1/classes/{class_id}/consent-sheet.html", None),
    ],
)
def test_another_school_cannot_reach_this_schools_records(
    method: str,
    path: str,
    body: dict[str, Any] | None,
    two_schools: TwoSchools,
    client: TestClient,
) -> None:
    ours = two_schools.ours
    response = client.request(
        method, fill(path, ours), json=fill(body, ours), headers=two_schools.staff
    )

    assert is_problem(response, 404), response.text
    assert set(response.json()) <= PROBLEM_FIELDS
    _no_trace_of(response, [i for i in two_schools.ours_ids if i not in response.url.path])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/decisions", {"purpose": "website_photo", "pupil_ids": ["{pupil_a}"]}),
        ("/v1/families:resolve", {"pupil_ids": ["{pupil_a}"]}),
        (
            "/v1/consents",
            {
                "pupil_id": "{pupil_a}",
                "purpose": "website_photo",
                "decision": "granted",
                "guardian_id": "{guardian_a}",
                "method": "paper",
            },
        ),
        (
            "/v1/guardians",
            {"given_name": "Eve", "family_name": "Spy", "children": [{"pupil_id": "{pupil_a}"}]},
        ),
    ],
)
def test_another_school_cannot_use_this_schools_pupils(
    path: str, body: dict[str, Any], two_schools: TwoSchools, client: TestClient
) -> None:
    response = client.post(path, json=fill(body, two_schools.ours), headers=two_schools.staff)

    assert is_problem(response, 422), response.text
    assert response.json()["code"] == "unknown_pupil"
    assert "decisions" not in response.json()


def test_another_schools_lists_hold_only_their_own(
    two_schools: TwoSchools, client: TestClient, auth: TokenFactory
) -> None:
    theirs, staff = two_schools.theirs, two_schools.staff
    head = auth("head", school=OTHER_SCHOOL)

    pupils = client.get("/v1/pupils", headers=staff).json()["items"]
    classes = client.get("/v1/classes", headers=staff).json()
    roster = client.get("/v1/roster", headers=staff).json()["pupils"]
    sheet = client.get(f"/v1/classes/{theirs.class_id}/consent-sheet", headers=staff).json()
    decided = client.post(
        "/v1/decisions",
        headers=staff,
        json={"purpose": "website_photo", "pupil_ids": [theirs.pupil_a, theirs.pupil_b]},
    )

    theirs_pupils = {theirs.pupil_a, theirs.pupil_b, theirs.pupil_c}
    assert {p["id"] for p in pupils} == theirs_pupils
    assert {c["id"] for c in classes} == {theirs.class_id}
    assert {p["id"] for p in roster} == theirs_pupils
    assert {r["pupil_id"] for r in sheet["rows"]} == theirs_pupils
    assert decided.status_code == 200
    lists = [
        client.get(p, headers=staff)
        for p in (
            "/v1/pupils?include_archived=true",
            "/v1/classes",
            "/v1/roster",
            "/v1/renewals?within_days=366",
        )
    ]
    lists.append(client.get("/v1/audit?limit=500", headers=head))
    lists.append(decided)
    for response in lists:
        assert response.status_code == 200, response.text
        _no_trace_of(response, two_schools.ours_ids)
    audit = lists[-2].json()["items"]
    assert audit, "the other school's own trail is there"


def test_a_carer_token_from_another_school_finds_no_children_here(
    two_schools: TwoSchools, client: TestClient, auth: TokenFactory
) -> None:
    # The guardian id is real, but in our school: their school's token must not reach it.
    parent = auth("parent", school=OTHER_SCHOOL, guardian=two_schools.ours.guardian_a)

    assert client.get("/v1/me/children", headers=parent).json() == []
    response = client.get(f"/v1/me/children/{two_schools.ours.pupil_a}", headers=parent)
    assert is_problem(response, 404)
    receipt = client.get(f"/v1/me/consents/{two_schools.ours.record_a}/receipt", headers=parent)
    assert is_problem(receipt, 404)
    _no_trace_of(receipt, [two_schools.ours.pupil_a, "Amara", "Okafor"])


# --- another family ----------------------------------------------------------------------------


def test_a_carer_reaches_only_their_own_children_and_every_refusal_is_audited(
    client: TestClient, auth: TokenFactory
) -> None:
    world = build_world(client, auth)
    parent = auth("parent", guardian=world.guardian_a, sub="grace@example.org")
    office = auth("office")
    history_before = client.get(f"/v1/pupils/{world.pupil_b}/consents", headers=office).json()

    # Own child first: the same calls succeed, so the refusals below are about the family.
    own = client.get(f"/v1/me/children/{world.pupil_a}", headers=parent)
    assert own.status_code == 200
    assert own.json()["given_name"] == "Amara"

    b = world.pupil_b
    attempts = [
        ("GET", f"/v1/me/children/{b}", None, "refused:me.child", b),
        ("GET", f"/v1/me/children/{b}/consents", None, "refused:me.history", b),
        (
            "POST",
            f"/v1/me/children/{b}/consents",
            {"purpose": "website_photo", "decision": "refused"},
            "refused:me.answer",
            b,
        ),
        (
            "POST",
            f"/v1/me/children/{b}/consents/website_photo:withdraw",
            None,
            "refused:me.withdraw",
            b,
        ),
        ("GET", f"/v1/me/consents/{world.record_b}/receipt", None, "refused:me.receipt", b),
    ]
    for method, path, body, _action, _target in attempts:
        response = client.request(method, path, json=body, headers=parent)
        assert is_problem(response, 404), (path, response.status_code, response.text)
        problem = response.json()
        assert problem["code"] == "not_found"
        assert problem["rule"] == "A2"
        assert set(problem) <= PROBLEM_FIELDS
        _no_trace_of(
            response,
            ["Oliver", "Shaw", world.guardian_b, world.record_b]
            if "receipt" not in path
            else ["Oliver", "Shaw", world.guardian_b, b],
        )

    # Nothing was recorded for the other family's child.
    history_after = client.get(f"/v1/pupils/{b}/consents", headers=office).json()
    assert history_after == history_before

    refused = client.get("/v1/audit", params={"limit": "500"}, headers=auth("head")).json()
    refusals = [e for e in refused["items"] if e["outcome"] == "refused"]
    assert sorted((e["action"], e["target"], e["actor"]) for e in refusals) == sorted(
        (action, target, "grace@example.org") for *_, action, target in attempts
    )
    assert all(e["details"] == {"code": "not_found", "status": 404} for e in refusals)
    verdict = client.get("/v1/audit:verify", headers=auth("head")).json()
    assert verdict["intact"] is True
