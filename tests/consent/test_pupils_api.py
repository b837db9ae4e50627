"""Classes, pupils, carers, safeguarding restrictions, the roster and the class consent sheet."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hallpass_kit.pagination import encode_cursor
from tests.conftest import TokenFactory
from tests.consent.builders import (
    SchoolBuilder,
    SchoolRecords,
    archive,
    assert_problem,
    restrict,
)

SECRET = "Placed with adopters; birth family must not find her"


# --- classes and pupils ------------------------------------------------------------------------


def test_classes_are_created_and_listed_by_year_group(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    year_five = school.school_class("Year 5 Ash", 5)
    reception = school.school_class("Reception Birch", 0)

    response = client.get("/v1/classes", headers=auth("staff"))

    assert response.status_code == 200
    assert response.json() == [
        {"id": reception, "name": "Reception Birch", "year_group": 0},
        {"id": year_five, "name": "Year 5 Ash", "year_group": 5},
    ]


def test_duplicate_class_name_is_a_conflict(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    school.school_class("Year 3 Oak")

    response = client.post(
        "/v1/classes", json={"name": "Year 3 Oak", "year_group": 3}, headers=auth("office")
    )

    assert_problem(response, 409, "duplicate_class")
    assert len(client.get("/v1/classes", headers=auth("staff")).json()) == 1


def test_pupil_is_created_read_and_corrected(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    oak = school.school_class("Year 3 Oak", 3)
    elm = school.school_class("Year 4 Elm", 4)
    created = client.post(
        "/v1/pupils",
        json={
            "mis_id": "A123",
            "given_name": "Amara",
            "family_name": "Okafor",
            "year_group": 3,
            "class_id": oak,
        },
        headers=auth("office"),
    )
    assert created.status_code == 201, created.text
    pupil_id = created.json()["id"]

    changed = client.patch(
        f"/v1/pupils/{pupil_id}",
        json={"preferred_name": "Mara", "year_group": 4, "class_id": elm},
        headers=auth("office"),
    )

    assert changed.status_code == 200, changed.text
    read = client.get(f"/v1/pupils/{pupil_id}", headers=auth("staff"))
    assert read.json() == {
        "id": pupil_id,
        "mis_id": "A123",
        "given_name": "Amara",
        "family_name": "Okafor",
        "preferred_name": "Mara",
        "year_group": 4,
        "class_id": elm,
        "archived_at": None,
        "restricted": False,
    }


def test_pupil_in_an_unknown_class_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = client.post(
        "/v1/pupils",
        json={
            "mis_id": "A124",
            "given_name": "Amara",
            "family_name": "Okafor",
            "year_group": 3,
            "class_id": "00000000-0000-4000-8000-000000000001",
        },
        headers=auth("office"),
    )

    assert_problem(response, 422, "unknown_class")
    assert client.get("/v1/pupils", headers=auth("staff")).json()["items"] == []


def test_pupil_list_pages_through_every_pupil_once(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    # Same names on purpose: the order must still be total (family, given, id).
    names = [
        ("Sam", "Smith"),
        ("Sam", "Smith"),
        ("Sam", "Smith"),
        ("Ada", "Smith"),
        ("Zed", "Adams"),
        ("Amy", "Young"),
        ("Sam", "Smith"),
    ]
    created = {school.pupil(given, family) for given, family in names}
    seen: list[str] = []
    pages = 0
    cursor: str | None = None

    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/pupils", params=params, headers=auth("staff"))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 3
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 5, "the cursor does not advance"

    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


def test_garbled_cursor_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = client.get("/v1/pupils", params={"cursor": "not!a!cursor"}, headers=auth("staff"))

    assert_problem(response, 400, "invalid_cursor")


def test_cursor_with_a_malformed_pupil_id_is_refused_not_restarted(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    school.pupil("Ada", "Ames")
    forged = encode_cursor("Ames", "Ada", "not-a-uuid")

    response = client.get("/v1/pupils", params={"cursor": forged}, headers=auth("staff"))

    assert_problem(response, 400, "invalid_cursor")


def test_leaver_is_archived_not_deleted(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    grant = school.consent(family.pupil_id, family.guardian_ids[0])

    response = client.post(f"/v1/pupils/{family.pupil_id}:archive", headers=auth("office"))

    assert response.status_code == 200, response.text
    assert response.json()["archived_at"] is not None
    assert client.get(f"/v1/pupils/{family.pupil_id}", headers=auth("staff")).status_code == 200
    on_roll = client.get("/v1/pupils", headers=auth("staff")).json()["items"]
    everyone = client.get(
        "/v1/pupils", params={"include_archived": "true"}, headers=auth("staff")
    ).json()["items"]
    assert [p["id"] for p in on_roll] == []
    assert [p["id"] for p in everyone] == [family.pupil_id]
    assert SchoolRecords(client, auth).history(family.pupil_id) == [grant]


def test_archiving_a_leaver_twice_is_a_conflict(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()
    archive(client, auth, pupil_id)
    first = client.get(f"/v1/pupils/{pupil_id}", headers=auth("staff")).json()["archived_at"]

    response = client.post(f"/v1/pupils/{pupil_id}:archive", headers=auth("office"))

    assert_problem(response, 409, "already_archived")
    assert client.get(f"/v1/pupils/{pupil_id}", headers=auth("staff")).json()["archived_at"] == (
        first
    )


def test_duplicate_mis_id_is_a_conflict(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    body = {"mis_id": "UPN-1", "given_name": "Amara", "family_name": "Okafor", "year_group": 3}
    assert client.post("/v1/pupils", json=body, headers=auth("office")).status_code == 201

    response = client.post(
        "/v1/pupils", json={**body, "given_name": "Other"}, headers=auth("office")
    )

    assert_problem(response, 409, "duplicate_mis_id")
    assert len(client.get("/v1/pupils", headers=auth("staff")).json()["items"]) == 1


def test_teacher_cannot_add_pupils_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = client.post(
        "/v1/pupils",
        json={
            "mis_id": "UPN-2",
            "given_name": "Amara",
            "family_name": "Okafor",
            "year_group": 3,
        },
        headers=auth("staff"),
    )

    assert_problem(response, 403, "forbidden")


# --- carers ------------------------------------------------------------------------------------


def test_carer_is_linked_to_children_with_or_without_responsibility_c11(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    older = school.pupil("Amara", "Okafor")
    younger = school.pupil("Tobi", "Okafor")
    created = client.post(
        "/v1/guardians",
        json={
            "given_name": "Grace",
            "family_name": "Okafor",
            "email": "grace@example.org",
            "phone": "+44 7700 900123",
            "children": [{"pupil_id": older, "relationship": "mother"}],
        },
        headers=auth("office"),
    )
    assert created.status_code == 201, created.text
    guardian_id = created.json()["id"]

    linked = client.post(
        f"/v1/guardians/{guardian_id}/children",
        json={"pupil_id": younger, "relationship": "step-mother", "parental_responsibility": False},
        headers=auth("office"),
    )

    assert linked.status_code == 200, linked.text
    assert linked.json()["children"] == [
        {"pupil_id": older, "relationship": "mother", "parental_responsibility": True},
        {"pupil_id": younger, "relationship": "step-mother", "parental_responsibility": False},
    ]
    carers = client.get(f"/v1/pupils/{younger}/guardians", headers=auth("office")).json()
    assert [(c["id"], c["email"]) for c in carers] == [(guardian_id, "grace@example.org")]
    assert client.get(f"/v1/guardians/{guardian_id}", headers=auth("office")).json() == (
        linked.json()
    )


def test_carer_for_an_unknown_child_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = client.post(
        "/v1/guardians",
        json={
            "given_name": "Grace",
            "family_name": "Okafor",
            "children": [{"pupil_id": "00000000-0000-4000-8000-000000000002"}],
        },
        headers=auth("office"),
    )

    assert_problem(response, 422, "unknown_pupil")


def test_carer_with_malformed_email_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()

    response = client.post(
        "/v1/guardians",
        json={
            "given_name": "Grace",
            "family_name": "Okafor",
            "email": "grace-at-example",
            "children": [{"pupil_id": pupil_id}],
        },
        headers=auth("office"),
    )

    problem = assert_problem(response, 422, "invalid_request")
    assert [p["where"] for p in problem["problems"]] == ["body.email"]
    assert client.get(f"/v1/pupils/{pupil_id}/guardians", headers=auth("office")).json() == []


# --- safeguarding restriction (C12) ------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "head", "office", "deputy"])
def test_only_the_dsl_can_set_a_restriction_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, role: str
) -> None:
    pupil_id = school.pupil()

    response = client.put(
        f"/v1/pupils/{pupil_id}/restriction",
        json={"kind": "court_order", "reason": SECRET},
        headers=auth(role),
    )

    assert_problem(response, 403, "forbidden")
    assert client.get(f"/v1/pupils/{pupil_id}", headers=auth("staff")).json()["restricted"] is False


@pytest.mark.parametrize("role", ["staff", "head"])
def test_only_the_dsl_can_read_a_restriction_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, role: str
) -> None:
    pupil_id = school.pupil()
    restrict(client, auth, pupil_id, reason=SECRET)

    response = client.get(f"/v1/pupils/{pupil_id}/restriction", headers=auth(role))

    assert_problem(response, 403, "forbidden")
    assert SECRET not in response.text


@pytest.mark.parametrize("role", ["staff", "head"])
def test_only_the_dsl_can_lift_a_restriction_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, role: str
) -> None:
    pupil_id = school.pupil()
    restrict(client, auth, pupil_id, reason=SECRET)

    response = client.delete(f"/v1/pupils/{pupil_id}/restriction", headers=auth(role))

    assert_problem(response, 403, "forbidden")
    assert client.get(f"/v1/pupils/{pupil_id}", headers=auth("staff")).json()["restricted"] is True


def test_dsl_sets_reads_and_lifts_a_restriction_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()

    set_ = restrict(client, auth, pupil_id, reason=SECRET, kind="adopted")
    read = client.get(f"/v1/pupils/{pupil_id}/restriction", headers=auth("dsl"))
    lifted = client.delete(f"/v1/pupils/{pupil_id}/restriction", headers=auth("dsl"))
    after = client.get(f"/v1/pupils/{pupil_id}/restriction", headers=auth("dsl"))

    assert set_["reason"] == SECRET
    assert set_["set_by"] == "dsl@oakfield"
    assert read.status_code == 200
    assert (read.json()["kind"], read.json()["reason"]) == ("adopted", SECRET)
    assert lifted.status_code == 204
    assert_problem(after, 404, "not_restricted")
    assert client.get(f"/v1/pupils/{pupil_id}", headers=auth("staff")).json()["restricted"] is False


def test_staff_see_restricted_but_never_the_reason_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    oak = school.school_class("Year 3 Oak")
    pupil_id = school.pupil(class_id=oak)
    restrict(client, auth, pupil_id, reason=SECRET)
    staff = auth("staff")

    views = {
        "pupil": client.get(f"/v1/pupils/{pupil_id}", headers=staff),
        "list": client.get("/v1/pupils", headers=staff),
        "consents": client.get(f"/v1/pupils/{pupil_id}/consents", headers=staff),
        "sheet": client.get(f"/v1/classes/{oak}/consent-sheet", headers=staff),
        "sheet.html": client.get(f"/v1/classes/{oak}/consent-sheet.html", headers=staff),
        "roster": client.get("/v1/roster", headers=staff),
        "decisions": client.post(
            "/v1/decisions",
            headers=staff,
            json={"purpose": "website_photo", "pupil_ids": [pupil_id]},
        ),
    }

    for name, response in views.items():
        assert response.status_code == 200, name
        assert SECRET not in response.text, name
        assert "court_order" not in response.text, name
    assert views["pupil"].json()["restricted"] is True
    assert views["list"].json()["items"][0]["restricted"] is True
    assert views["consents"].json()["restricted"] is True


def test_restriction_reason_never_enters_the_audit_trail_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()
    restrict(client, auth, pupil_id, reason=SECRET)
    client.get(f"/v1/pupils/{pupil_id}/restriction", headers=auth("staff"))  # refused, audited
    client.delete(f"/v1/pupils/{pupil_id}/restriction", headers=auth("dsl"))

    for role in ("head", "dsl"):
        response = client.get("/v1/audit", params={"limit": "500"}, headers=auth(role))
        assert response.status_code == 200
        actions = {e["action"] for e in response.json()["items"]}
        assert {"restriction.set", "restriction.lifted"} <= actions
        assert SECRET not in response.text


def test_parent_sees_held_by_school_not_restricted_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0])
    restrict(client, auth, family.pupil_id, reason=SECRET)

    response = client.get(
        f"/v1/me/children/{family.pupil_id}",
        headers=auth("parent", guardian=family.guardian_ids[0]),
    )

    assert response.status_code == 200, response.text
    consents = response.json()["consents"]
    assert consents
    assert {c["state"] for c in consents} == {"held_by_school"}
    assert not any(c["allowed"] for c in consents)
    website = next(c for c in consents if c["purpose"] == "website_photo")
    assert website["your_decision"] == "granted"
    assert "restricted" not in response.text
    assert SECRET not in response.text


# --- roster ------------------------------------------------------------------------------------


def test_unchanged_roster_answers_304_to_its_etag(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()
    first = client.get("/v1/roster", headers=auth("service"))
    assert first.status_code == 200
    assert [p["id"] for p in first.json()["pupils"]] == [pupil_id]

    again = client.get(
        "/v1/roster", headers={**auth("service"), "If-None-Match": first.headers["etag"]}
    )

    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_roster_version_moves_when_a_pupil_changes(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil("Amara", "Okafor")
    first = client.get("/v1/roster", headers=auth("service"))

    client.patch(f"/v1/pupils/{pupil_id}", json={"preferred_name": "Mara"}, headers=auth("office"))
    again = client.get(
        "/v1/roster", headers={**auth("service"), "If-None-Match": first.headers["etag"]}
    )

    assert again.status_code == 200
    assert again.headers["etag"] != first.headers["etag"]
    assert again.json()["version"] > first.json()["version"]
    assert again.json()["pupils"][0]["preferred_name"] == "Mara"


def test_roster_keeps_leavers_off_roll(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    pupil_id = school.pupil()
    before = client.get("/v1/roster", headers=auth("service")).json()["version"]

    archive(client, auth, pupil_id)

    roster = client.get("/v1/roster", headers=auth("service")).json()
    assert roster["version"] > before
    assert [(p["id"], p["on_roll"]) for p in roster["pupils"]] == [(pupil_id, False)]


# --- class consent sheet (C7) ------------------------------------------------------------------


def test_consent_sheet_shows_every_pupil_against_every_purpose_c7(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    oak = school.school_class("Year 3 Oak")
    allowed = school.family("Ada", "Ames", class_id=oak)
    silent = school.family("Ben", "Bose", class_id=oak)
    hidden = school.family("Cai", "Chen", class_id=oak)
    school.pupil("Dee", "Dunn")  # in no class: not on this sheet
    school.consent(allowed.pupil_id, allowed.guardian_ids[0])
    restrict(client, auth, hidden.pupil_id, reason=SECRET)

    response = client.get(f"/v1/classes/{oak}/consent-sheet", headers=auth("staff"))

    assert response.status_code == 200, response.text
    sheet = response.json()
    assert sheet["class_name"] == "Year 3 Oak"
    assert sheet["school_name"] == "Oakfield Primary"
    codes = [p["code"] for p in sheet["purposes"]]
    assert "internal_assessment" not in codes
    assert {"website_photo", "livestream", "newspaper_named", "pupil_work_publish"} <= set(codes)
    rows = {row["pupil_id"]: row for row in sheet["rows"]}
    assert set(rows) == {allowed.pupil_id, silent.pupil_id, hidden.pupil_id}
    cells = {c["purpose"]: c for c in rows[allowed.pupil_id]["cells"]}
    assert [c["purpose"] for c in rows[allowed.pupil_id]["cells"]] == codes
    assert (cells["website_photo"]["allowed"], cells["website_photo"]["reason"]) == (
        True,
        "granted",
    )
    assert (cells["livestream"]["allowed"], cells["livestream"]["reason"]) == (False, "no_record")
    assert rows[hidden.pupil_id]["restricted"] is True
    assert {c["reason"] for c in rows[hidden.pupil_id]["cells"]} == {"restricted"}
    assert rows[silent.pupil_id]["restricted"] is False


def test_printable_consent_sheet_marks_the_restricted_pupil_c7_c12(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    oak = school.school_class("Year 3 Oak")
    school.pupil("Ada", "Ames", class_id=oak)
    hidden = school.pupil("Cai", "Chen", class_id=oak)
    restrict(client, auth, hidden, reason=SECRET)

    response = client.get(f"/v1/classes/{oak}/consent-sheet.html", headers=auth("staff"))

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/html"
    page = response.text
    assert "Year 3 Oak" in page
    assert "Ada Ames" in page
    assert page.count("RESTRICTED —") == 1
    assert "Cai Chen" in page.split("RESTRICTED —")[0].rsplit("<tr", 1)[1]
    assert SECRET not in page


def test_consent_sheet_of_an_unknown_class_is_not_found(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = client.get(
        "/v1/classes/00000000-0000-4000-8000-000000000003/consent-sheet", headers=auth("staff")
    )

    assert_problem(response, 404, "unknown_class")
