"""The README tour, and a compact role matrix, with people's tokens from each identity provider
schools use, shaped as that provider shapes them and mapped by the example identity files.

The all-in-one gateway reads an example file of ``deploy/identity/`` (``HALLPASS_IDENTITY_FILE``)
with its issuers pointed at loopback OpenID Connect providers: Entra ID v2.0 for a trust of two
academies in one tenant told apart by security group (``trust.toml``), Keycloak with client
roles and groups (``keycloak.toml``), Google Workspace brokered through Keycloak
(``google-via-keycloak.toml``); carers sign in to a parents' realm with their own accounts and
are linked to the school's record by their verified address. The website CMS, a machine client,
is added to each file as a deployment adds it: an app role (Entra ID) or a client role or realm
role (Keycloak) on the CMS's own client, with the school it serves.
"""

from __future__ import annotations

import copy
import json
import tomllib
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from hallpass_comms.context import CommsContext
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_kit.app import ServiceContext
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.settings import CommonSettings, Environment
from hallpass_media.context import media_context
from hallpass_media.media.scan import scan_pending
from hallpass_media.settings import MediaSettings
from tests.identity.examples import DEPLOY_IDENTITY
from tests.identity.provider import OidcProvider, running_provider
from tests.identity.shapes import (
    KEYCLOAK_PATH,
    OAKFIELD_STAFF_GROUP,
    PARENTS_PATH,
    RIVERSIDE_STAFF_GROUP,
    TRUST_CLIENT_ID,
    TRUST_PATH,
    TRUST_TENANT_ID,
    UNRELATED_GROUP,
    WORKSPACE_DOMAIN,
    entra_v2,
    google_via_keycloak,
    keycloak,
    parent_keycloak,
    parent_via_google,
)
from tests.media import images

# The providers are shared by the module's tests: they run on one test worker.
pytestmark = pytest.mark.xdist_group("identity_tour")

SCHOOL = "oakfield"
DOMAIN = "oakfield.sch.uk"
# The website CMS's own app registration in the trust's tenant (client credentials).
CMS_APP_ID = "d9a4c7e1-3b5f-4a2d-8c6e-0f1b3d5a7c92"
CMS_CLIENT = "website-cms"


# --- the shapes --------------------------------------------------------------------------------


def _subject(role: str, school: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{role}@{school}"))


# App role values on the trust's Entra app registration (deploy/identity/trust.toml).
ENTRA_APP_ROLES = {
    "head": "Hallpass.Head",
    "deputy": "Hallpass.Deputy",
    "dsl": "Hallpass.DSL",
    "office": "Hallpass.Office",
    "social_media": "Hallpass.SocialMedia",
    "staff": "Hallpass.Staff",
    "trust_admin": "Hallpass.TrustAdmin",
    "trust_dpo": "Hallpass.TrustDPO",
}
ACADEMY_GROUPS = {"oakfield": OAKFIELD_STAFF_GROUP, "riverside": RIVERSIDE_STAFF_GROUP}


def entra_person(role: str, school: str = SCHOOL) -> dict[str, Any]:
    """A member of the trust's tenant: app role assigned, in their academy's staff group (trust
    officers in none); the address only in ``preferred_username``, as Entra ID does by default."""
    academy = [] if role.startswith("trust_") else [ACADEMY_GROUPS[school]]
    return entra_v2(
        roles=[ENTRA_APP_ROLES[role]],
        preferred_username=f"{role}@{school}.sch.uk",
        name=f"{role.title()} Person",
        tid=TRUST_TENANT_ID,
        oid=_subject(role, school),
        client_id=TRUST_CLIENT_ID,
        groups=[*academy, UNRELATED_GROUP],
    )


def entra_cms() -> dict[str, Any]:
    """The CMS's app-only token (client credentials): its app role, no person's claims."""
    claims = entra_v2(
        roles=["Hallpass.CMS"],
        tid=TRUST_TENANT_ID,
        oid=_subject("cms", SCHOOL),
        client_id=TRUST_CLIENT_ID,
        scp=None,
    )
    for person_only in ("preferred_username", "name"):
        claims.pop(person_only)
    claims.update(azp=CMS_APP_ID, idtyp="app")
    return claims


def entra_adds_the_cms(identity: dict[str, Any]) -> None:
    staff = _issuer(identity, "entra")
    staff["roles"]["map"]["Hallpass.CMS"] = "cms"
    # The CMS's app is in no group: it serves Oakfield because it is Oakfield's CMS.
    staff["school"]["rules"].append(
        {"when": {"tid": TRUST_TENANT_ID, "azp": CMS_APP_ID}, "schools": [SCHOOL]}
    )


def keycloak_person(role: str, school: str = SCHOOL) -> dict[str, Any]:
    """A member of the school's realm: Hallpass's client role, in the school's staff group."""
    return keycloak(
        username=role,
        email=f"{role}@{school}.sch.uk",
        name=f"{role.title()} Person",
        client_roles=(role,),
        groups=(f"/{school}/staff",),
        sub=_subject(role, school),
    )


def keycloak_cms() -> dict[str, Any]:
    """The CMS client's service account: Hallpass's ``cms`` client role, in a systems group."""
    claims = keycloak(
        username=f"service-account-{CMS_CLIENT}",
        email=None,
        name="Website CMS",
        client_roles=("cms",),
        groups=(f"/{SCHOOL}/systems",),
        sub=_subject("cms", SCHOOL),
    )
    claims["azp"] = CMS_CLIENT
    return claims


def keycloak_adds_the_cms(identity: dict[str, Any]) -> None:
    _issuer(identity, "keycloak")["school"]["map"][f"/{SCHOOL}/systems"] = SCHOOL


# Realm roles of the school's realm (deploy/identity/google-via-keycloak.toml).
GOOGLE_REALM_ROLES = {
    "head": "hallpass-head",
    "deputy": "hallpass-deputy",
    "dsl": "hallpass-dsl",
    "office": "hallpass-office",
    "social_media": "hallpass-social-media",
    "staff": "hallpass-staff",
    "admin": "hallpass-admin",
    "pastoral": "hallpass-pastoral",
}


def google_person(role: str, school: str = SCHOOL) -> dict[str, Any]:
    """A Workspace account brokered into the school's realm: its realm role, ``hd`` kept."""
    return google_via_keycloak(
        email=f"{role}@{school}.sch.uk",
        name=f"{role.title()} Person",
        realm_roles=(GOOGLE_REALM_ROLES[role],),
        hd=f"{school}.sch.uk",
        sub=_subject(role, school),
    )


def google_cms() -> dict[str, Any]:
    """The CMS client's service account in the realm: a realm role, and the Workspace domain
    from a hardcoded claim on the CMS's client (a service account has no Google account)."""
    claims = keycloak(
        username=f"service-account-{CMS_CLIENT}",
        email=None,
        name="Website CMS",
        realm_roles=("hallpass-cms",),
        client_roles=(),
        groups=None,
        sub=_subject("cms", SCHOOL),
        attributes={"hd": WORKSPACE_DOMAIN},
    )
    claims["azp"] = CMS_CLIENT
    return claims


def google_adds_the_cms(identity: dict[str, Any]) -> None:
    _issuer(identity, "workspace")["roles"]["map"]["hallpass-cms"] = "cms"


@dataclass(frozen=True)
class Shape:
    """One way a school's people sign in: the example file and each token as its provider
    makes it."""

    example: str
    staff_issuer: str
    staff_path: str
    person: Callable[..., dict[str, Any]]
    cms: Callable[[], dict[str, Any]]
    adds_the_cms: Callable[[dict[str, Any]], None]
    carer: Callable[[str], dict[str, Any]]
    carer_email: str
    # The roles this file maps, beside parent and cms.
    roles: tuple[str, ...]


SHAPES = {
    "entra-trust": Shape(
        example="trust.toml",
        staff_issuer="entra",
        staff_path=TRUST_PATH,
        person=entra_person,
        cms=entra_cms,
        adds_the_cms=entra_adds_the_cms,
        carer=lambda email: parent_keycloak(email=email, sub=_subject("carer", email)),
        carer_email="siobhan.obrien@example.org",
        roles=(
            "staff",
            "head",
            "deputy",
            "dsl",
            "office",
            "social_media",
            "trust_admin",
            "trust_dpo",
        ),
    ),
    "keycloak": Shape(
        example="keycloak.toml",
        staff_issuer="keycloak",
        staff_path=KEYCLOAK_PATH,
        person=keycloak_person,
        cms=keycloak_cms,
        adds_the_cms=keycloak_adds_the_cms,
        carer=lambda email: parent_keycloak(email=email, sub=_subject("carer", email)),
        carer_email="siobhan.obrien@example.org",
        roles=("staff", "head", "deputy", "dsl", "office", "social_media", "admin", "pastoral"),
    ),
    "google-via-keycloak": Shape(
        example="google-via-keycloak.toml",
        staff_issuer="workspace",
        staff_path=KEYCLOAK_PATH,
        person=google_person,
        cms=google_cms,
        adds_the_cms=google_adds_the_cms,
        carer=lambda email: parent_via_google(email=email, sub=_subject("carer", email)),
        carer_email="siobhan.obrien@gmail.com",
        roles=("staff", "head", "deputy", "dsl", "office", "social_media", "admin", "pastoral"),
    ),
}


# --- the identity file -------------------------------------------------------------------------


def _issuer(identity: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in identity["issuers"] if i["name"] == name)
    return found


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string takes JSON's escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _toml_table(path: list[str], table: dict[str, Any], lines: list[str]) -> None:
    def header(keys: list[str]) -> str:
        return ".".join(json.dumps(key) for key in keys)

    def is_table_list(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and isinstance(value[0], dict)

    for key, value in table.items():
        if not isinstance(value, dict) and not is_table_list(value):
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append(f"[{header([*path, key])}]")
            _toml_table([*path, key], value, lines)
        elif is_table_list(value):
            for item in value:
                lines.append(f"[[{header([*path, key])}]]")
                _toml_table([*path, key], item, lines)


def identity_file(shape: Shape, staff: OidcProvider, parents: OidcProvider, at: Path) -> Path:
    """The shape's example file as a deployment would write it: its issuers at the loopback
    providers, and the CMS added."""
    identity = tomllib.loads((DEPLOY_IDENTITY / shape.example).read_text(encoding="utf-8"))
    identity = copy.deepcopy(identity)
    _issuer(identity, shape.staff_issuer)["issuer"] = staff.issuer
    _issuer(identity, "parents")["issuer"] = parents.issuer
    shape.adds_the_cms(identity)
    lines: list[str] = []
    _toml_table([], identity, lines)
    path = at / "identity.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the deployment ----------------------------------------------------------------------------


@dataclass
class Providers:
    staff: OidcProvider
    parents: OidcProvider


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, Providers]]:
    """Each shape's providers, staff's and parents', listening for the module's tests."""
    with ExitStack() as stack:
        yield {
            name: Providers(
                staff=stack.enter_context(running_provider(shape.staff_path)),
                parents=stack.enter_context(running_provider(PARENTS_PATH)),
            )
            for name, shape in SHAPES.items()
        }


@dataclass
class School:
    """The gateway of one deployment, and how each of its people calls it."""

    http: TestClient
    gateway: Gateway
    shape: Shape
    providers: Providers

    def person(self, role: str, school: str = SCHOOL, **headers: str) -> dict[str, str]:
        token = self.providers.staff.mint(self.shape.person(role, school))
        return {"Authorization": f"Bearer {token}", **headers}

    def cms(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.providers.staff.mint(self.shape.cms())}"}

    def carer(self) -> dict[str, str]:
        token = self.providers.parents.mint(self.shape.carer(self.shape.carer_email))
        return {"Authorization": f"Bearer {token}"}

    def context(self, prefix: str) -> ServiceContext:
        context: ServiceContext = self.gateway.services[prefix].state.hallpass
        return context


@pytest.fixture(params=list(SHAPES))
def school(
    request: pytest.FixtureRequest, providers: dict[str, Providers], tmp_path: Path
) -> Iterator[School]:
    shape = SHAPES[request.param]
    running = providers[request.param]
    common = CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        identity_file=identity_file(shape, running.staff, running.parents, tmp_path),
    )
    gateway = create_gateway(
        common, settings={"media": MediaSettings(ocr=False)}, run_background=False
    )
    with TestClient(gateway, raise_server_exceptions=False) as http:
        yield School(http, gateway, shape, running)
    for service in gateway.services.values():
        service.state.hallpass.database.dispose()


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def set_up(school: School) -> tuple[str, str]:
    """The school as ``make run`` leaves the demo one: named, a class, a camera, mail rules.
    Returns the class and the camera."""
    http, head, office = school.http, school.person("head"), school.person("office")
    ok(http.put("/consent/v1/school", json={"name": "Oakfield Primary"}, headers=head))
    class_id = ok(
        http.post(
            "/consent/v1/classes", json={"name": "Year 3 Oak", "year_group": 3}, headers=office
        ),
        201,
    )["id"]
    device = ok(
        http.post(
            "/media/v1/devices", json={"name": "Camera", "serial": "OAK-CAM-1"}, headers=office
        ),
        201,
    )["id"]
    rules = {
        "domains": [DOMAIN],
        "head_address": f"head@{DOMAIN}",
        "deputy_address": f"deputy@{DOMAIN}",
        "dsl_address": f"dsl@{DOMAIN}",
        "office_address": f"office@{DOMAIN}",
        "cc_policy": "both",
        "school_day_start": "08:30",
        "school_day_end": "16:00",
        "morning_send_time": "08:00",
    }
    ok(http.put("/comms/v1/settings", json=rules, headers=head))
    return class_id, device


# --- the tour ----------------------------------------------------------------------------------


def test_the_readme_tour(school: School, tmp_path: Path) -> None:
    http = school.http
    class_id, device = set_up(school)
    office, cms = school.person("office"), school.cms()

    # 1. a new pupil in Year 3 Oak, and her mother, with the address she signs in with
    pupil = ok(
        http.post(
            "/consent/v1/pupils",
            json={
                "mis_id": "T0001",
                "given_name": "Emily-Rose",
                "family_name": "O'Brien",
                "year_group": 3,
                "class_id": class_id,
            },
            headers=office,
        ),
        201,
    )["id"]
    carer = ok(
        http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Siobhan",
                "family_name": "O'Brien",
                "email": school.shape.carer_email,
                "children": [{"pupil_id": pupil}],
            },
            headers=office,
        ),
        201,
    )["id"]

    # 2. the office records the signed paper form: website photos, yes
    ok(
        http.post(
            "/consent/v1/consents",
            json={
                "pupil_id": pupil,
                "purpose": "website_photo",
                "decision": "granted",
                "guardian_id": carer,
                "method": "paper",
                "evidence_ref": "form 2026-031",
            },
            headers={**office, "Idempotency-Key": "form-2026-031"},
        ),
        201,
    )

    # 3. the website CMS asks before publishing: allowed, with the record behind it
    decision = {"purpose": "website_photo", "pupil_ids": [pupil]}
    before = ok(http.post("/consent/v1/decisions", json=decision, headers=cms))["decisions"]
    assert [(d["allowed"], d["record_id"] is not None) for d in before] == [(True, True)]

    # 4. a photo of her from the school's registered camera, scanned
    media = ok(
        http.post(
            "/media/v1/media",
            data={"device_id": device, "pupils": json.dumps([{"pupil_id": pupil}])},
            files={"file": ("sports.jpg", images.jpeg(images.photo(640, 480)), "image/jpeg")},
            headers=school.person("staff"),
        ),
        201,
    )["id"]
    media_service = school.context("/media")
    scan_pending(
        media_service.database,
        media_context(media_service).storage,
        media_context(media_service).get_scanner(),
    )

    # 5. the CMS checks a caption that names her: not allowed, name_in_text (M1)
    check = ok(
        http.post(
            "/media/v1/publications:check",
            json={
                "channel": "website",
                "media_ids": [media],
                "caption": "Emily-Rose O'Brien wins the sack race",
            },
            headers=cms,
        )
    )
    assert check["allowed"] is False
    assert [(p["code"], p["where"]) for p in check["text_problems"]] == [
        ("name_in_text", "caption")
    ]

    # 6. without her name it may go out; the head publishes
    publication = ok(
        http.post(
            "/media/v1/publications",
            json={"channel": "website", "media_ids": [media], "caption": "Sports day"},
            headers={**school.person("head"), "Idempotency-Key": "sports-day-1"},
        ),
        201,
    )["id"]

    # 7. her mother signs in with her own account, linked by her verified address (no guardian
    #    id anywhere in her token), sees her daughter and withdraws: one call (C5)
    mother = school.carer()
    children = ok(http.get("/consent/v1/me/children", headers=mother))
    assert [(c["school"], c["pupil_id"]) for c in children] == [(SCHOOL, pupil)]
    ok(
        http.post(
            f"/consent/v1/me/children/{pupil}/consents/website_photo:withdraw", headers=mother
        ),
        201,
    )

    # 8. the very next decision says no: withdrawn
    after = ok(http.post("/consent/v1/decisions", json=decision, headers=cms))["decisions"]
    assert [(d["allowed"], d["reason"]) for d in after] == [(False, "withdrawn")]

    # 9. the published photo must come down (M7): the CMS finds it; the head confirms
    school.context("/consent").dispatcher.dispatch_pending()
    flagged = ok(
        http.get("/media/v1/publications", params={"status": "takedown_required"}, headers=cms)
    )["items"]
    assert [p["id"] for p in flagged] == [publication]
    ok(
        http.post(
            f"/media/v1/publications/{publication}:confirm-takedown",
            headers=school.person("head"),
        )
    )

    # 11. a teacher writes to Year 3 Oak, from their own school address as their token gives it
    teacher = f"staff@{DOMAIN}"
    message = ok(
        http.post(
            "/comms/v1/messages",
            json={
                "recipients": {"class_ids": [class_id]},
                "subject": "Trip on Friday",
                "body_text": "Please bring a packed lunch.",
                "urgent": True,
            },
            headers={**school.person("staff"), "Idempotency-Key": "trip-2026-11"},
        ),
        202,
    )
    assert message["sender_address"] == teacher
    assert [d["to"] for d in message["deliveries"]] == [[school.shape.carer_email]]

    # 12. what went out: one .eml for the family, from the teacher, head and deputy copied
    comms = school.context("/comms")
    assert isinstance(comms, CommsContext)
    assert comms.delivery_worker is not None
    comms.delivery_worker.run_once()
    sent = sorted((tmp_path / "data" / "outbox").glob("*.eml"))
    assert len(sent) == 1
    envelope = message_from_bytes(sent[0].read_bytes(), policy=default)
    assert envelope["From"] == teacher
    assert envelope["To"] == school.shape.carer_email
    assert sorted(str(envelope["Cc"]).replace(" ", "").split(",")) == [
        f"deputy@{DOMAIN}",
        f"head@{DOMAIN}",
    ]

    # 13. the family's history, as her mother sees it (E3)
    history = ok(http.get(f"/comms/v1/families/{pupil}/messages", headers=mother))
    assert [(m["subject"], m["sender_address"]) for m in history["items"]] == [
        ("Trip on Friday", teacher)
    ]


# --- a compact matrix ----------------------------------------------------------------------------

LEADERS = {"head", "deputy"}
# A trust's administrator is an administrator in each school of the trust.
ADMINS = {"admin", "trust_admin"}
SCHOOL_STAFF = {"staff", "head", "deputy", "dsl", "office", "social_media"} | ADMINS

# A few endpoints of each service and who may call them, by role group (each common.py).
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/consent/v1/pupils"): SCHOOL_STAFF,
    ("POST", "/consent/v1/decisions"): SCHOOL_STAFF | {"cms"},
    ("GET", "/consent/v1/pupils/{pupil}/restriction"): {"dsl"},
    ("GET", "/consent/v1/audit"): {"head", "dsl", "trust_dpo"},
    ("GET", "/consent/v1/me/children"): {"parent"},
    ("POST", "/media/v1/publications"): LEADERS | {"social_media"},
    ("GET", "/media/v1/publications"): SCHOOL_STAFF | {"cms"},
    ("GET", "/media/v1/pupils/{pupil}/media"): {"office", "dsl", "trust_dpo", "parent"}
    | LEADERS
    | ADMINS,
    ("PUT", "/media/v1/settings"): {"head"} | ADMINS,
    ("GET", "/comms/v1/settings"): {"head"} | ADMINS,
    ("GET", "/comms/v1/pastoral/concerns"): {"dsl", "pastoral"},
    ("GET", "/comms/v1/audit"): {"head", "dsl", "trust_dpo"},
}
BODIES: dict[tuple[str, str], Callable[[str], Any]] = {
    ("POST", "/consent/v1/decisions"): lambda p: {"purpose": "website_photo", "pupil_ids": [p]},
    ("POST", "/media/v1/publications"): lambda p: {"channel": "website", "media_ids": []},
    ("PUT", "/media/v1/settings"): lambda p: {
        "forbid_first_names": False,
        "blur_untagged_faces": False,
    },
}


def test_each_role_reaches_what_its_group_allows(school: School) -> None:
    set_up(school)
    pupil = ok(
        school.http.post(
            "/consent/v1/pupils",
            json={
                "mis_id": "T0002",
                "given_name": "Kai",
                "family_name": "Brennan",
                "year_group": 3,
            },
            headers=school.person("office"),
        ),
        201,
    )["id"]
    ok(
        school.http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Siobhan",
                "family_name": "Brennan",
                "email": school.shape.carer_email,
                "children": [{"pupil_id": pupil}],
            },
            headers=school.person("office"),
        ),
        201,
    )
    callers: dict[str, dict[str, str]] = {
        role: school.person(role, **({SCHOOL_HEADER: SCHOOL} if role.startswith("trust_") else {}))
        for role in school.shape.roles
    }
    callers["cms"] = school.cms()
    callers["parent"] = school.carer()
    wrong: list[str] = []
    for (method, path), allowed in MATRIX.items():
        body = BODIES[(method, path)](pupil) if (method, path) in BODIES else None
        for role, headers in callers.items():
            response = school.http.request(
                method, path.format(pupil=pupil), json=body, headers=headers
            )
            if role in allowed:
                if response.status_code in (401, 403) or response.status_code >= 500:
                    wrong.append(f"{role} {method} {path}: allowed, got {response.text}")
            elif response.status_code != 403:
                wrong.append(f"{role} {method} {path}: should be 403, got {response.text}")
    assert not wrong, "\n".join(wrong)


def test_the_trusts_academies_are_told_apart_by_group(
    providers: dict[str, Providers], tmp_path: Path
) -> None:
    """Entra ID: one tenant, two academies; the staff group alone says which one a person's."""
    running = providers["entra-trust"]
    shape = SHAPES["entra-trust"]
    common = CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        identity_file=identity_file(shape, running.staff, running.parents, tmp_path),
    )
    gateway = create_gateway(common, run_background=False)
    school = School(TestClient(gateway, raise_server_exceptions=False), gateway, shape, running)
    with school.http:
        set_up(school)
        ok(
            school.http.put(
                "/consent/v1/school",
                json={"name": "Riverside Academy"},
                headers=school.person("head", "riverside"),
            )
        )
        pupil = ok(
            school.http.post(
                "/consent/v1/pupils",
                json={"mis_id": "T3", "given_name": "Ava", "family_name": "Reid", "year_group": 3},
                headers=school.person("office"),
            ),
            201,
        )["id"]

        riverside = school.person("office", "riverside")
        theirs = ok(school.http.get("/consent/v1/pupils", headers=riverside))
        reaching = school.http.get(
            f"/consent/v1/pupils/{pupil}", headers={**riverside, SCHOOL_HEADER: SCHOOL}
        )
        dpo = school.person("trust_dpo")
        unnamed = school.http.get("/consent/v1/audit", headers=dpo)
        oakfield = school.http.get("/consent/v1/audit", headers={**dpo, SCHOOL_HEADER: SCHOOL})
        other = school.http.get("/consent/v1/audit", headers={**dpo, SCHOOL_HEADER: "riverside"})

    assert theirs["items"] == []
    assert reaching.status_code == 403
    assert reaching.json()["code"] == "school_not_allowed"
    assert unnamed.status_code == 400
    assert unnamed.json()["code"] == "school_not_chosen"
    assert pupil in oakfield.text
    assert other.status_code == 200
    assert pupil not in other.text
    for service in gateway.services.values():
        service.state.hallpass.database.dispose()


def test_a_teachers_sending_address_comes_from_upn_when_no_other_claim_holds_one(
    providers: dict[str, Providers], tmp_path: Path
) -> None:
    """Entra ID: no ``email`` claim, and a ``preferred_username`` that is no address (a guest's
    or a changed sign-in name): the optional ``upn`` claim is the address mail goes from."""
    running = providers["entra-trust"]
    shape = SHAPES["entra-trust"]
    common = CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        identity_file=identity_file(shape, running.staff, running.parents, tmp_path),
    )
    gateway = create_gateway(common, run_background=False)
    school = School(TestClient(gateway, raise_server_exceptions=False), gateway, shape, running)
    claims = entra_person("staff")
    claims.update(preferred_username="jokafor", upn=f"j.okafor@{DOMAIN}")
    teacher = {"Authorization": f"Bearer {running.staff.mint(claims)}"}
    with school.http:
        class_id, _device = set_up(school)
        pupil = ok(
            school.http.post(
                "/consent/v1/pupils",
                json={
                    "mis_id": "T4",
                    "given_name": "Ava",
                    "family_name": "Reid",
                    "year_group": 3,
                    "class_id": class_id,
                },
                headers=school.person("office"),
            ),
            201,
        )["id"]
        ok(
            school.http.post(
                "/consent/v1/guardians",
                json={
                    "given_name": "Mia",
                    "family_name": "Reid",
                    "email": "mia.reid@example.org",
                    "children": [{"pupil_id": pupil}],
                },
                headers=school.person("office"),
            ),
            201,
        )
        message = school.http.post(
            "/comms/v1/messages",
            json={
                "recipients": {"class_ids": [class_id]},
                "subject": "Trip on Friday",
                "body_text": "Please bring a packed lunch.",
                "urgent": True,
            },
            headers=teacher,
        )

    assert ok(message, 202)["sender_address"] == f"j.okafor@{DOMAIN}"
    for service in gateway.services.values():
        service.state.hallpass.database.dispose()
