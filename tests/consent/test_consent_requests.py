"""Consent requests (issue 11): the office asks the carers of a class, a year or the school for
chosen purposes; each carer answers by a personal link, through the same recording path as the
office (C1, C3, C10, C11); progress per class; reminders only to those not answered; close."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hallpass_consent.app import create_app
from hallpass_consent.models import ConsentRecord, ConsentRequestLink, kit_tables
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.db import Database, utcnow
from hallpass_kit.settings import CommonSettings
from tests.conftest import OTHER_SCHOOL, Headers, TokenFactory
from tests.consent.builders import SchoolBuilder, SchoolRecords, assert_problem

PURPOSES = ["website_photo", "livestream"]


class Clock:
    """The consent service's clock, moved by the test (closing dates pass by it)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def consent_app(
    consent_db: Database, issuer: DevIssuer, common_settings: CommonSettings, clock: Clock
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=ConsentSettings(),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        database=consent_db,
        run_background=False,
        migrate=False,
        clock=clock,
    )


class Class3:
    """Year 3 Oak: Amara (two carers with addresses), Oliver (one carer), Isla (a carer with no
    address, and one without parental responsibility); and Year 4 Elm with Tobi."""

    def __init__(self, school: SchoolBuilder) -> None:
        self.oak = school.school_class("Year 3 Oak", 3)
        self.elm = school.school_class("Year 4 Elm", 4)
        amara = school.family("Amara", "Okafor", carers=2, class_id=self.oak)
        oliver = school.family("Oliver", "Shaw", class_id=self.oak)
        self.amara, (self.grace, self.daniel) = amara.pupil_id, amara.guardian_ids
        self.oliver, self.oliver_carer = oliver.pupil_id, oliver.guardian_ids[0]
        self.isla = school.pupil("Isla", "Brennan", class_id=self.oak)
        response = school.client.post(
            "/v1/guardians",
            json={
                "given_name": "Mairead",
                "family_name": "Brennan",
                "children": [{"pupil_id": self.isla, "parental_responsibility": True}],
            },
            headers=school.office,
        )
        assert response.status_code == 201, response.text
        self.isla_carer = str(response.json()["id"])
        school.guardian(self.isla, given="Sean", family="Brennan", responsible=False)
        self.tobi = school.pupil("Tobi", "Adeyemi", class_id=self.elm, year_group=4)
        school.guardian(self.tobi, given="Ade", family="Adeyemi")


@pytest.fixture
def world(school: SchoolBuilder) -> Class3:
    return Class3(school)


def create(client: TestClient, office: Headers, **body: Any) -> dict[str, Any]:
    body = {"title": "Photos this year", "purposes": PURPOSES, **body}
    response = client.post("/v1/consent-requests", json=body, headers=office)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def progress(client: TestClient, office: Headers, request_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/consent-requests/{request_id}", headers=office)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def links(
    client: TestClient, auth: TokenFactory, request_id: str, round_: int = 1
) -> dict[str, dict[str, Any]]:
    """The round's links as comms receives them, by carer."""
    response = client.post(
        f"/v1/consent-requests/{request_id}/rounds/{round_}:links", headers=auth("service")
    )
    assert response.status_code == 200, response.text
    return {c["guardian_id"]: c for c in response.json()["carers"]}


def answers(pupil: str, decision: str = "granted", version: int = 1) -> list[dict[str, Any]]:
    return [
        {"pupil_id": pupil, "purpose": p, "decision": decision, "wording_version": version}
        for p in PURPOSES
    ]


def answer(client: TestClient, token: str, items: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(
        "/v1/consent-requests:answer-link", json={"token": token, "answers": items, **extra}
    )


def count_records(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(select(func.count()).select_from(ConsentRecord)).scalar_one())


def mail_due(database: Database) -> list[dict[str, Any]]:
    t = kit_tables.outbox_event
    with database.session() as session:
        rows = session.execute(
            select(t.c.payload)
            .where(t.c.type == "consent_request.mail_due")
            .order_by(t.c.occurred_at)
        ).scalars()
        return [dict(p) for p in rows]


# --- creating and progress ---------------------------------------------------------------------


def test_request_for_a_class_asks_responsible_carers_with_an_address_c11(
    client: TestClient, school: SchoolBuilder, world: Class3, consent_db: Database
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})

    assert created["total"] == 3
    assert created["answered"] == 0
    # Grace and Daniel for Amara, Oliver's carer; not Isla's (no address) nor Sean (no PR).
    assert created["carers_asked"] == 3
    assert [p["pupil_id"] for p in created["pupils_without_address"]] == [world.isla]
    [oak] = created["classes"]
    assert oak["class_name"] == "Year 3 Oak"
    assert oak["total"] == 3
    assert {p["given_name"] for p in oak["not_yet"]} == {"Amara", "Oliver", "Isla"}
    assert mail_due(consent_db) == [
        {"request_id": created["id"], "school_id": school.school, "round": 1}
    ]


def test_year_groups_and_whole_school_scopes(
    client: TestClient, school: SchoolBuilder, world: Class3
) -> None:
    by_year = create(client, school.office, scope={"year_groups": [4]})
    whole = create(client, school.office, scope={"whole_school": True})

    assert by_year["total"] == 1
    assert by_year["classes"][0]["class_name"] == "Year 4 Elm"
    assert whole["total"] == 4
    assert [c["class_name"] for c in whole["classes"]] == ["Year 3 Oak", "Year 4 Elm"]


def test_unknown_purpose_or_empty_scope_is_refused_and_nothing_is_written_c1(
    client: TestClient, school: SchoolBuilder, world: Class3, consent_db: Database
) -> None:
    unknown = client.post(
        "/v1/consent-requests",
        json={
            "title": "T",
            "purposes": ["website_photo", "moon_photo"],
            "scope": {"year_groups": [3]},
        },
        headers=school.office,
    )
    empty = client.post(
        "/v1/consent-requests",
        json={"title": "T", "purposes": ["website_photo"], "scope": {}},
        headers=school.office,
    )

    body = assert_problem(unknown, 422, "unknown_purpose")
    assert body["problems"][0]["where"] == "body.purposes[1]"
    assert_problem(empty, 422, "empty_scope")
    listed = client.get("/v1/consent-requests", headers=school.office).json()
    assert listed["items"] == []
    assert mail_due(consent_db) == []


def test_list_is_newest_first_and_paginated(
    client: TestClient, school: SchoolBuilder, world: Class3, clock: Clock
) -> None:
    first = create(client, school.office, title="Autumn", scope={"year_groups": [3]})
    clock.advance(minutes=1)
    second = create(client, school.office, title="Spring", scope={"year_groups": [3]})

    page = client.get("/v1/consent-requests", params={"limit": 1}, headers=school.office).json()
    rest = client.get(
        "/v1/consent-requests", params={"cursor": page["next_cursor"]}, headers=school.office
    ).json()

    assert [r["id"] for r in page["items"]] == [second["id"]]
    assert [r["id"] for r in rest["items"]] == [first["id"]]
    assert rest["next_cursor"] is None


# --- links and answers -------------------------------------------------------------------------


def test_answer_by_link_records_through_the_consent_path_and_moves_progress_c10(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    records: SchoolRecords,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    issued = links(client, auth, created["id"])
    grace = issued[world.grace]
    assert set(issued) == {world.grace, world.daniel, world.oliver_carer}
    assert [c["given_name"] for c in grace["children"]] == ["Amara"]
    assert len(grace["token"]) >= 43  # 256 bits, url-safe
    with consent_db.session() as session:
        stored = set(session.execute(select(ConsentRequestLink.token_hash)).scalars())
    assert hashlib.sha256(grace["token"].encode()).hexdigest() in stored
    assert grace["token"] not in stored

    opened = client.post("/v1/consent-requests:open-link", json={"token": grace["token"]})
    assert opened.status_code == 200, opened.text
    [child] = opened.json()["children"]
    assert child["pupil_id"] == world.amara
    assert [q["purpose"] for q in child["purposes"]] == PURPOSES
    assert all(q["current_decision"] is None and q["wording"] for q in child["purposes"])

    response = answer(client, grace["token"], answers(world.amara))

    assert response.status_code == 201, response.text
    history = records.history(world.amara)
    assert {(r["purpose"], r["method"], r["guardian_id"]) for r in history} == {
        (p, "electronic", world.grace) for p in PURPOSES
    }
    assert history[0]["evidence_ref"].startswith(f"consent request {created['id']}, personal link")
    assert history[0]["recorded_by"] == f"carer:{world.grace} via link"
    view = progress(client, school.office, created["id"])
    assert view["answered"] == 1
    assert {p["given_name"] for p in view["classes"][0]["not_yet"]} == {"Oliver", "Isla"}
    assert view["last_round_mailed"] == 1
    assert view["carers_mailed"] == 3
    actions = [e["action"] for e in records.audit()]
    assert "consent_request.answered" in actions
    assert "consent_request.link_opened" in actions


def test_a_paper_form_answers_the_request_too(
    client: TestClient, school: SchoolBuilder, world: Class3
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    for purpose in PURPOSES:
        school.consent(world.oliver, world.oliver_carer, purpose, "refused")

    view = progress(client, school.office, created["id"])

    assert view["answered"] == 1
    assert world.oliver not in {p["pupil_id"] for p in view["classes"][0]["not_yet"]}


def test_a_record_before_the_request_does_not_count(
    client: TestClient, school: SchoolBuilder, world: Class3, clock: Clock
) -> None:
    for purpose in PURPOSES:
        school.consent(world.oliver, world.oliver_carer, purpose)
    clock.advance(minutes=1)

    created = create(client, school.office, scope={"class_ids": [world.oak]})

    assert created["answered"] == 0


def test_reminder_goes_only_to_carers_of_pupils_not_answered(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    first = links(client, auth, created["id"])
    assert answer(client, first[world.daniel]["token"], answers(world.amara)).status_code == 201

    reminded = client.post(f"/v1/consent-requests/{created['id']}:remind", headers=school.office)

    assert reminded.status_code == 200, reminded.text
    assert reminded.json()["rounds"] == 2
    assert mail_due(consent_db)[-1]["round"] == 2
    # Amara is answered (by Daniel), so neither of her carers is reminded.
    assert set(links(client, auth, created["id"], 2)) == {world.oliver_carer}
    # The first round's links keep working until the request closes.
    opened = client.post(
        "/v1/consent-requests:open-link", json={"token": first[world.grace]["token"]}
    )
    assert opened.status_code == 200
    assert {q["current_decision"] for q in opened.json()["children"][0]["purposes"]} == {None}


def test_a_round_not_announced_yet_has_no_links(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, world: Class3
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})

    response = client.post(
        f"/v1/consent-requests/{created['id']}/rounds/2:links", headers=auth("service")
    )

    assert_problem(response, 404, "unknown_round")


def test_closed_request_links_answer_410_and_reminders_409(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]

    closed = client.post(f"/v1/consent-requests/{created['id']}:close", headers=school.office)

    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    assert_problem(
        client.post("/v1/consent-requests:open-link", json={"token": token}), 410, "request_closed"
    )
    assert_problem(answer(client, token, answers(world.amara)), 410, "request_closed")
    assert_problem(
        client.post(f"/v1/consent-requests/{created['id']}:remind", headers=school.office),
        409,
        "request_closed",
    )
    assert_problem(
        client.post(
            f"/v1/consent-requests/{created['id']}/rounds/1:links", headers=auth("service")
        ),
        410,
        "request_closed",
    )
    assert count_records(consent_db) == 0


def test_a_passed_closing_date_closes_the_request(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, world: Class3, clock: Clock
) -> None:
    closes = (clock.now + dt.timedelta(days=7)).isoformat()
    created = create(client, school.office, scope={"class_ids": [world.oak]}, closes_at=closes)
    token = links(client, auth, created["id"])[world.grace]["token"]
    clock.advance(days=8)

    response = client.post("/v1/consent-requests:open-link", json={"token": token})

    assert_problem(response, 410, "request_closed")
    assert progress(client, school.office, created["id"])["status"] == "closed"


def test_a_wrong_token_is_404_link_not_found(
    client: TestClient, school: SchoolBuilder, world: Class3
) -> None:
    create(client, school.office, scope={"class_ids": [world.oak]})

    opened = client.post("/v1/consent-requests:open-link", json={"token": "A" * 43})
    answered = answer(client, "B" * 43, answers(world.amara))

    assert_problem(opened, 404, "link_not_found")
    assert_problem(answered, 404, "link_not_found")


def test_another_carers_child_is_404_and_nothing_is_written_a2(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]

    response = answer(client, token, answers(world.amara) + answers(world.oliver))

    assert_problem(response, 404, "unknown_child")
    assert count_records(consent_db) == 0


def test_a_child_outside_the_request_is_404(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, world: Class3
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]

    assert_problem(answer(client, token, answers(world.tobi)), 404, "unknown_child")


def test_an_explicit_only_purpose_needs_a_decision_c3(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]
    items = answers(world.amara)
    del items[1]["decision"]  # livestream left unanswered

    response = answer(client, token, items)

    assert response.status_code == 422, response.text
    assert count_records(consent_db) == 0


def test_one_bad_answer_refuses_them_all_c10(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]
    items = answers(world.amara)
    items[1]["wording_version"] = 99  # words this carer cannot have been shown

    response = answer(client, token, items)

    assert response.status_code in (409, 422), response.text
    assert response.json()["rule"] == "C10"
    assert count_records(consent_db) == 0
    assert progress(client, school.office, created["id"])["answered"] == 0


def test_a_purpose_not_asked_is_refused(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, world: Class3
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]
    items = [{**answers(world.amara)[0], "purpose": "newspaper_named"}]

    assert_problem(answer(client, token, items), 422, "purpose_not_requested")


# --- who may -----------------------------------------------------------------------------------


def test_another_schools_office_sees_404(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, world: Class3
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    SchoolBuilder(client, auth, OTHER_SCHOOL).set_up(name="Riverside")
    other = auth("office", school=OTHER_SCHOOL)

    for method, path in [
        ("GET", f"/v1/consent-requests/{created['id']}"),
        ("POST", f"/v1/consent-requests/{created['id']}:remind"),
        ("POST", f"/v1/consent-requests/{created['id']}:close"),
    ]:
        assert_problem(client.request(method, path, headers=other), 404, "unknown_consent_request")
    assert client.get("/v1/consent-requests", headers=other).json()["items"] == []
    service = auth("service", school=OTHER_SCHOOL)
    assert_problem(
        client.post(f"/v1/consent-requests/{created['id']}/rounds/1:links", headers=service),
        404,
        "unknown_consent_request",
    )


def test_staff_who_do_not_record_consent_cannot_ask(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, world: Class3
) -> None:
    response = client.post(
        "/v1/consent-requests",
        json={"title": "T", "purposes": PURPOSES, "scope": {"whole_school": True}},
        headers=auth("staff"),
    )

    assert_problem(response, 403, "forbidden")


def test_link_endpoints_are_public_in_the_openapi(consent_app: FastAPI) -> None:
    paths = consent_app.openapi()["paths"]

    for path in ("/v1/consent-requests:open-link", "/v1/consent-requests:answer-link"):
        assert "security" not in paths[path]["post"], path
    assert paths["/v1/consent-requests"]["post"].get("security")


# --- the words shown (C10) ---------------------------------------------------------------------


def new_wording(client: TestClient, auth: TokenFactory, purpose: str, **body: str) -> int:
    response = client.post(
        f"/v1/purposes/{purpose}/wordings",
        json={"text": "New words about the school website.", **body},
        headers=auth("head"),
    )
    assert response.status_code in (200, 201), response.text
    version: int = response.json()["wording_version"]
    return version


def test_words_changed_since_the_page_opened_are_refused_409_with_the_current_version_c10(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]
    current = new_wording(client, auth, "website_photo")

    response = answer(client, token, answers(world.amara))

    body = assert_problem(response, 409, "stale_wording")
    assert body["rule"] == "C10"
    assert f"version {current}" in body["detail"]
    assert count_records(consent_db) == 0


def test_welsh_words_are_offered_and_the_language_shown_is_recorded_c10(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    records: SchoolRecords,
) -> None:
    version = new_wording(
        client, auth, "website_photo", text_cy="Geiriau newydd am wefan yr ysgol, i bawb."
    )
    english_only = new_wording(client, auth, "livestream")
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]
    opened = client.post("/v1/consent-requests:open-link", json={"token": token}).json()
    by_purpose = {q["purpose"]: q for q in opened["children"][0]["purposes"]}
    assert by_purpose["website_photo"]["wording_cy"] == "Geiriau newydd am wefan yr ysgol, i bawb."
    assert by_purpose["livestream"]["wording_cy"] is None
    items = [
        {**answers(world.amara)[0], "wording_version": version},
        # Shown in English on the Welsh page: the school gave no Welsh words for it.
        {**answers(world.amara)[1], "wording_version": english_only, "wording_language": "en"},
    ]

    response = answer(client, token, items, language="cy")

    assert response.status_code == 201, response.text
    shown = {r["purpose"]: r["wording_language"] for r in response.json()["recorded"]}
    assert shown == {"website_photo": "cy", "livestream": "en"}
    history = {r["purpose"]: r for r in records.history(world.amara)}
    assert history["website_photo"]["wording_language"] == "cy"
    assert history["livestream"]["wording_language"] == "en"


def test_welsh_claimed_for_words_without_welsh_refuses_every_answer_c10(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    world: Class3,
    consent_db: Database,
) -> None:
    english_only = new_wording(client, auth, "livestream")
    created = create(client, school.office, scope={"class_ids": [world.oak]})
    token = links(client, auth, created["id"])[world.grace]["token"]
    items = answers(world.amara)
    items[1]["wording_version"] = english_only

    response = answer(client, token, items, language="cy")

    assert_problem(response, 422, "wording_not_in_welsh")
    assert count_records(consent_db) == 0


def test_the_same_idempotency_key_asks_once(
    client: TestClient, school: SchoolBuilder, world: Class3, consent_db: Database
) -> None:
    body = {"title": "Photos", "purposes": PURPOSES, "scope": {"class_ids": [world.oak]}}
    headers = {**school.office, "Idempotency-Key": "request-form-1"}

    first = client.post("/v1/consent-requests", json=body, headers=headers)
    again = client.post("/v1/consent-requests", json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"]
    assert len(mail_due(consent_db)) == 1
