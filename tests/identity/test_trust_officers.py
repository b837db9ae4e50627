"""A trust's officers signed in with the trust's Entra ID tenant (``deploy/identity/trust.toml``),
through the all-in-one gateway: its administrator and its data protection officer act in each
academy of the trust they name, every action recorded in that academy's trail; they name no
school outside the trust; a head who is also the trust's officer is head in their own academy
only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_gateway.app import create_gateway
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.settings import CommonSettings, Environment
from tests.identity.provider import running_provider
from tests.identity.shapes import (
    OAKFIELD_STAFF_GROUP,
    PARENTS_PATH,
    TRUST_CLIENT_ID,
    TRUST_PATH,
    TRUST_TENANT_ID,
    entra_v2,
)
from tests.identity.test_tour_under_each_shape import (
    SHAPES,
    Providers,
    School,
    identity_file,
    ok,
    set_up,
)

pytestmark = pytest.mark.xdist_group("identity_tour")

OAKFIELD, RIVERSIDE = "oakfield", "riverside"
# Not a school of the Oak Valley Learning Trust.
ELSEWHERE = "hillcrest"
PUPIL = {"mis_id": "OV-1", "given_name": "Tobi", "family_name": "Adeyemi", "year_group": 3}


@pytest.fixture(scope="module")
def providers() -> Iterator[Providers]:
    with running_provider(TRUST_PATH) as staff, running_provider(PARENTS_PATH) as parents:
        yield Providers(staff=staff, parents=parents)


@pytest.fixture
def trust(providers: Providers, tmp_path: Path) -> Iterator[School]:
    """Both academies of the trust set up by their own heads."""
    shape = SHAPES["entra-trust"]
    common = CommonSettings(
        env=Environment.test,
        data_dir=tmp_path / "data",
        identity_file=identity_file(shape, providers.staff, providers.parents, tmp_path),
    )
    gateway = create_gateway(common, run_background=False)
    with TestClient(gateway, raise_server_exceptions=False) as http:
        school = School(http, gateway, shape, providers)
        set_up(school)
        ok(
            http.put(
                "/consent/v1/school",
                json={"name": "Riverside Academy"},
                headers=school.person("head", RIVERSIDE),
            )
        )
        yield school
    for service in gateway.services.values():
        service.state.hallpass.database.dispose()


def officer(trust: School, *app_roles: str, groups: tuple[str, ...] = ()) -> dict[str, str]:
    """A trust officer's access token: app roles of the trust's registration, no academy group
    unless given."""
    claims = entra_v2(
        roles=list(app_roles),
        preferred_username="r.patel@oakvalley.org.uk",
        name="Ravi Patel",
        tid=TRUST_TENANT_ID,
        oid="1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6",
        client_id=TRUST_CLIENT_ID,
        groups=list(groups),
    )
    return {"Authorization": f"Bearer {trust.providers.staff.mint(claims)}"}


# The officer's stable subject: the ``oid`` (trust.toml's ``subject``), never the pairwise sub.
OFFICER = "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6"


def trail(trust: School, prefix: str, school: str) -> list[dict[str, Any]]:
    response = trust.http.get(
        f"{prefix}/v1/audit", params={"limit": "500"}, headers=trust.person("head", school)
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries


def by_officer(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in entries if e["actor"] == OFFICER]


@pytest.mark.parametrize(("school", "other"), [(OAKFIELD, RIVERSIDE), (RIVERSIDE, OAKFIELD)])
def test_the_trust_admin_acts_in_the_academy_they_name_and_is_audited_there(
    school: str, other: str, trust: School
) -> None:
    admin = {**officer(trust, "Hallpass.TrustAdmin"), SCHOOL_HEADER: school}

    pupil = ok(trust.http.post("/consent/v1/pupils", json=PUPIL, headers=admin), 201)["id"]
    device = ok(
        trust.http.post(
            "/media/v1/devices", json={"name": "Trust camera", "serial": "OV-CAM"}, headers=admin
        ),
        201,
    )["id"]

    listed = {
        s: ok(trust.http.get("/consent/v1/pupils", headers=trust.person("office", s)))
        for s in (school, other)
    }
    assert [p["id"] for p in listed[school]["items"]] == [pupil]
    assert listed[other]["items"] == []
    assert by_officer(trail(trust, "/consent", school)) == [("pupil.created", "ok")]
    assert by_officer(trail(trust, "/media", school)) == [("device.registered", "ok")]
    assert by_officer(trail(trust, "/consent", other)) == []
    assert by_officer(trail(trust, "/media", other)) == []
    devices = trust.http.get("/media/v1/devices", headers=trust.person("office", school))
    assert device in {d["id"] for d in ok(devices)["items"]}


def test_the_trust_admin_names_one_academy_and_none_outside_the_trust(trust: School) -> None:
    admin = officer(trust, "Hallpass.TrustAdmin")

    unnamed = trust.http.post("/consent/v1/pupils", json=PUPIL, headers=admin)
    elsewhere = trust.http.post(
        "/consent/v1/pupils", json=PUPIL, headers={**admin, SCHOOL_HEADER: ELSEWHERE}
    )

    assert unnamed.status_code == 400
    assert unnamed.json()["code"] == "school_not_chosen"
    assert elsewhere.status_code == 403
    assert elsewhere.json()["code"] == "school_not_allowed"
    for school in (OAKFIELD, RIVERSIDE):
        listed = trust.http.get("/consent/v1/pupils", headers=trust.person("office", school))
        assert ok(listed)["items"] == []
        assert by_officer(trail(trust, "/consent", school)) == []


@pytest.mark.parametrize("prefix", ["/consent", "/media", "/comms"])
def test_the_trust_dpo_reads_and_verifies_each_academys_trail(prefix: str, trust: School) -> None:
    dpo = officer(trust, "Hallpass.TrustDPO")

    for school in (OAKFIELD, RIVERSIDE):
        headers = {**dpo, SCHOOL_HEADER: school}
        entries = ok(trust.http.get(f"{prefix}/v1/audit", params={"limit": "500"}, headers=headers))
        verdict = ok(trust.http.get(f"{prefix}/v1/audit:verify", headers=headers))
        assert entries["items"] == trail(trust, prefix, school)
        assert verdict["intact"] is True


def test_a_head_who_is_also_the_trusts_dpo_is_head_only_in_their_own_academy(
    trust: School,
) -> None:
    both = officer(trust, "Hallpass.Head", "Hallpass.TrustDPO", groups=(OAKFIELD_STAFF_GROUP,))

    own = trust.http.post(
        "/consent/v1/pupils", json=PUPIL, headers={**both, SCHOOL_HEADER: OAKFIELD}
    )
    sister = trust.http.post(
        "/consent/v1/pupils", json=PUPIL, headers={**both, SCHOOL_HEADER: RIVERSIDE}
    )
    sister_trail = trust.http.get("/consent/v1/audit", headers={**both, SCHOOL_HEADER: RIVERSIDE})

    assert own.status_code == 201, own.text
    assert sister.status_code == 403
    assert sister.json()["code"] == "forbidden"
    assert sister_trail.status_code == 200
    assert by_officer(trail(trust, "/consent", RIVERSIDE)) == [("refused:create_pupil", "refused")]
    listed = trust.http.get("/consent/v1/pupils", headers=trust.person("office", RIVERSIDE))
    assert ok(listed)["items"] == []
