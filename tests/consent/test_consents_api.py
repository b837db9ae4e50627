"""Recording consent through the API: evidence, history, withdrawal, receipts, renewals, wording."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TokenFactory
from tests.consent.builders import (
    Family,
    SchoolBuilder,
    SchoolRecords,
    archive,
    assert_problem,
    parse_time,
)

DAY = dt.timedelta(days=1)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def soon(days: float) -> str:
    return iso(dt.datetime.now(dt.UTC) + dt.timedelta(days=days))


# --- recording and history --------------------------------------------------------------------


def test_staff_recorded_grant_keeps_its_evidence_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    before = dt.datetime.now(dt.UTC)
    response = client.post(
        "/v1/consents",
        json={
            "pupil_id": family.pupil_id,
            "purpose": "social_media_photo",
            "decision": "granted",
            "guardian_id": family.guardian_ids[0],
            "method": "email",
            "evidence_ref": "email 2026-11-03 from Grace",
            "wording_version": 1,
        },
        headers=auth("office"),
    )

    assert response.status_code == 201, response.text
    record = response.json()
    assert record["pupil_id"] == family.pupil_id
    assert record["purpose"] == "social_media_photo"
    assert record["decision"] == "granted"
    assert record["given_by"] == "guardian"
    assert record["guardian_id"] == family.guardian_ids[0]
    assert record["method"] == "email"
    assert record["evidence_ref"] == "email 2026-11-03 from Grace"
    assert record["wording_version"] == 1
    assert record["recorded_by"] == "office@oakfield"
    assert before - dt.timedelta(seconds=5) <= parse_time(record["recorded_at"])
    assert parse_time(record["recorded_at"]) <= dt.datetime.now(dt.UTC)
    stored = client.get(f"/v1/consents/{record['id']}", headers=auth("office"))
    assert stored.status_code == 200
    assert stored.json() == record


def test_history_keeps_every_record_and_never_overwrites_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    first = school.consent(family.pupil_id, family.guardian_ids[0], decision="granted")
    second = school.consent(family.pupil_id, family.guardian_ids[0], decision="refused")
    third = school.consent(family.pupil_id, family.guardian_ids[0], decision="granted")

    history = records.history(family.pupil_id)

    assert [r["id"] for r in history] == [third["id"], second["id"], first["id"]]
    assert history[2] == first  # the first record is still exactly as it was made
    assert client.get(f"/v1/consents/{first['id']}", headers=auth("office")).json() == first


def test_withdraw_endpoint_adds_a_withdrawal_that_blocks_at_once_c5(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    grant = school.consent(family.pupil_id, family.guardian_ids[0])

    response = client.post(
        f"/v1/consents/{grant['id']}:withdraw",
        json={"method": "paper", "evidence_ref": "letter 12"},
        headers=auth("office"),
    )

    assert response.status_code == 201, response.text
    withdrawal = response.json()
    assert withdrawal["decision"] == "withdrawn"
    assert withdrawal["withdraws_record_id"] == grant["id"]
    assert withdrawal["guardian_id"] == family.guardian_ids[0]
    assert withdrawal["evidence_ref"] == "letter 12"
    assert [r["id"] for r in records.history(family.pupil_id)] == [withdrawal["id"], grant["id"]]
    assert school.decide("website_photo", family.pupil_id)[family.pupil_id] == {
        "pupil_id": family.pupil_id,
        "allowed": False,
        "reason": "withdrawn",
        "record_id": withdrawal["id"],
    }


def test_only_a_grant_can_be_withdrawn_c5(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    refusal = school.consent(family.pupil_id, family.guardian_ids[0], decision="refused")

    response = client.post(
        f"/v1/consents/{refusal['id']}:withdraw", json={"method": "paper"}, headers=auth("office")
    )

    assert_problem(response, 422, "not_a_grant")
    assert len(records.history(family.pupil_id)) == 1


def test_parent_withdraws_in_one_call_citing_their_grant_c5(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    grant = school.consent(family.pupil_id, family.guardian_ids[0], purpose="livestream")
    parent = auth("parent", guardian=family.guardian_ids[0], sub="grace@example.org")

    response = client.post(
        f"/v1/me/children/{family.pupil_id}/consents/livestream:withdraw", headers=parent
    )

    assert response.status_code == 201, response.text
    withdrawal = response.json()
    assert withdrawal["decision"] == "withdrawn"
    assert withdrawal["withdraws_record_id"] == grant["id"]
    assert withdrawal["method"] == "app"
    assert withdrawal["recorded_by"] == "grace@example.org"
    assert records.history(family.pupil_id)[0]["id"] == withdrawal["id"]
    assert school.decide("livestream", family.pupil_id)[family.pupil_id]["reason"] == "withdrawn"


def test_grant_lasts_until_the_end_of_the_academic_year_by_default(
    school: SchoolBuilder,
) -> None:
    family = school.family()
    now = dt.datetime.now(dt.UTC)

    grant = school.consent(family.pupil_id, family.guardian_ids[0])

    # The academic year ends at the end of 31 August, school time (Europe/London).
    london = ZoneInfo("Europe/London")
    end = dt.datetime(now.astimezone(london).year, 9, 1, tzinfo=london)
    if end <= now:
        end = dt.datetime(end.year + 1, 9, 1, tzinfo=london)
    assert parse_time(grant["valid_until"]) == end
    assert grant["valid_until"] == end.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_school_without_consent_expiry_records_open_ended_grants(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    school.set_up(consent_expiry="never")
    family = school.family()

    grant = school.consent(family.pupil_id, family.guardian_ids[0])

    assert grant["valid_until"] is None


def test_refusal_stands_until_changed(school: SchoolBuilder) -> None:
    family = school.family()

    refusal = school.consent(family.pupil_id, family.guardian_ids[0], decision="refused")

    assert refusal["valid_until"] is None


def test_pupil_answers_for_their_own_work_without_a_carer_c8(
    school: SchoolBuilder,
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0], purpose="pupil_work_publish")
    assert school.decide("pupil_work_publish", family.pupil_id)[family.pupil_id]["reason"] == (
        "pupil_agreement_missing"
    )

    agreement = school.consent(
        family.pupil_id, None, purpose="pupil_work_publish", given_by="pupil"
    )

    assert agreement["given_by"] == "pupil"
    assert agreement["guardian_id"] is None
    assert school.decide("pupil_work_publish", family.pupil_id)[family.pupil_id]["allowed"] is True


def test_parent_cannot_record_through_the_staff_endpoint_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()

    response = client.post(
        "/v1/consents",
        json={
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": family.guardian_ids[0],
            "method": "app",
        },
        headers=auth("parent", guardian=family.guardian_ids[0]),
    )

    assert_problem(response, 403, "forbidden")
    assert records.history(family.pupil_id) == []


# --- bad input: a problem, and nothing changes -----------------------------------------------


@dataclass
class Scene:
    family: Family
    uncle_id: str  # linked to the pupil without parental responsibility
    stranger_id: str  # a carer of another pupil, not linked to this one
    leaver: Family


@pytest.fixture
def scene(client: TestClient, auth: TokenFactory, school: SchoolBuilder) -> Scene:
    family = school.family()
    uncle = school.guardian(family.pupil_id, given="Tunde", responsible=False)
    other = school.family("Bea", "Lind")
    leaver = school.family("Lee", "Hart")
    archive(client, auth, leaver.pupil_id)
    return Scene(family, uncle, other.guardian_ids[0], leaver)


@dataclass(frozen=True)
class BadCase:
    change: Callable[[Scene], dict[str, Any]]
    code: str
    rule: str | None = None
    problem: tuple[str, str] | None = None  # (code, where) of one listed problem


BAD_REQUESTS = {
    "unknown_pupil": BadCase(lambda s: {"pupil_id": str(uuid.uuid4())}, "unknown_pupil"),
    "unknown_purpose_c1": BadCase(lambda s: {"purpose": "yearbook_cover"}, "unknown_purpose", "C1"),
    "internal_assessment_needs_no_consent_c6": BadCase(
        lambda s: {"purpose": "internal_assessment"}, "no_consent_needed", "C6"
    ),
    "guardian_not_linked_a2": BadCase(
        lambda s: {"guardian_id": s.stranger_id}, "not_a_carer", "A2"
    ),
    "guardian_without_parental_responsibility_c11": BadCase(
        lambda s: {"guardian_id": s.uncle_id}, "no_parental_responsibility", "C11"
    ),
    "no_guardian_named_c10": BadCase(lambda s: {"guardian_id": None}, "guardian_required", "C10"),
    "valid_from_in_the_past": BadCase(
        lambda s: {"valid_from": soon(-2)},
        "invalid_dates",
        problem=("date_in_past", "body.valid_from"),
    ),
    "valid_until_before_valid_from": BadCase(
        lambda s: {"valid_from": soon(20), "valid_until": soon(10)},
        "invalid_dates",
        problem=("dates_reversed", "body.valid_until"),
    ),
    "valid_until_in_the_past": BadCase(
        lambda s: {"valid_until": soon(-1)},
        "invalid_dates",
        problem=("date_in_past", "body.valid_until"),
    ),
    "archived_pupil": BadCase(
        lambda s: {"pupil_id": s.leaver.pupil_id, "guardian_id": s.leaver.guardian_ids[0]},
        "pupil_not_on_roll",
    ),
    "pupil_answer_where_not_asked_c8": BadCase(
        lambda s: {"given_by": "pupil", "guardian_id": None}, "pupil_answer_not_asked", "C8"
    ),
    "unknown_wording_version_c10": BadCase(
        lambda s: {"wording_version": 9}, "unknown_wording_version", "C10"
    ),
    "naive_timestamp": BadCase(
        lambda s: {"valid_until": "2027-01-01T00:00:00"},
        "invalid_request",
        problem=("timezone_aware", "body.valid_until"),
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_consent_request_is_refused_and_changes_nothing_c10(
    client: TestClient, auth: TokenFactory, records: SchoolRecords, scene: Scene, case: BadCase
) -> None:
    body = {
        "pupil_id": scene.family.pupil_id,
        "purpose": "website_photo",
        "decision": "granted",
        "guardian_id": scene.family.guardian_ids[0],
        "method": "paper",
        **case.change(scene),
    }
    pupils = {scene.family.pupil_id, scene.leaver.pupil_id}
    histories = {p: records.history(p) for p in pupils}
    audited = records.audit_entries()

    response = client.post("/v1/consents", json=body, headers=auth("office"))

    problem = assert_problem(response, 422, case.code)
    assert problem.get("rule") == case.rule
    if case.problem is not None:
        assert case.problem in {(p["code"], p["where"]) for p in problem["problems"]}
    assert {p: records.history(p) for p in pupils} == histories
    assert records.audit_entries() == audited


def test_recording_before_the_school_is_set_up_is_refused(
    client: TestClient, auth: TokenFactory, records: SchoolRecords
) -> None:
    response = client.post(
        "/v1/consents",
        json={
            "pupil_id": str(uuid.uuid4()),
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": str(uuid.uuid4()),
            "method": "paper",
        },
        headers=auth("office"),
    )

    assert_problem(response, 409, "school_not_set_up")
    assert records.audit_entries() == 0


# --- idempotency -------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_replays_the_first_response(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    body = {
        "pupil_id": family.pupil_id,
        "purpose": "website_photo",
        "decision": "granted",
        "guardian_id": family.guardian_ids[0],
        "method": "paper",
    }
    headers = {**auth("office"), "Idempotency-Key": "form-2026-118"}
    audited = records.audit_entries()

    first = client.post("/v1/consents", json=body, headers=headers)
    again = client.post("/v1/consents", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert [r["id"] for r in records.history(family.pupil_id)] == [first.json()["id"]]
    assert records.audit_entries() == audited + 1


def test_same_idempotency_key_with_another_body_is_a_conflict(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    body = {
        "pupil_id": family.pupil_id,
        "purpose": "website_photo",
        "decision": "granted",
        "guardian_id": family.guardian_ids[0],
        "method": "paper",
    }
    headers = {**auth("office"), "Idempotency-Key": "form-2026-119"}
    first = client.post("/v1/consents", json=body, headers=headers)
    assert first.status_code == 201

    response = client.post("/v1/consents", json={**body, "decision": "refused"}, headers=headers)

    assert_problem(response, 409, "idempotency_key_reused")
    assert [r["id"] for r in records.history(family.pupil_id)] == [first.json()["id"]]


# --- receipts ----------------------------------------------------------------------------------


def test_receipt_names_controller_subject_carer_and_hashed_wording_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family("Amara", "Okafor")
    grant = school.consent(family.pupil_id, family.guardian_ids[0])

    response = client.get(f"/v1/consents/{grant['id']}/receipt", headers=auth("office"))

    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["receipt_id"] == grant["id"]
    assert receipt["controller"] == {"id": "oakfield", "name": "Oakfield Primary"}
    assert receipt["subject"] == {"id": family.pupil_id, "name": "Amara Okafor"}
    assert receipt["given_by"] == {"id": family.guardian_ids[0], "name": "Grace Okafor"}
    assert receipt["decision"] == "granted"
    assert receipt["method"] == "paper"
    assert receipt["evidence_ref"] == "form-1"
    shown = client.get("/v1/purposes/website_photo", headers=auth("office")).json()
    assert receipt["purpose"]["wording"] == shown["wording"]
    assert (
        receipt["purpose"]["wording_sha256"]
        == hashlib.sha256(shown["wording"].encode()).hexdigest()
    )
    assert receipt["withdrawal"]["withdrawn_at"] is None
    assert receipt["withdrawal"]["withdrawal_record_id"] is None


def test_receipts_show_the_withdrawal_once_withdrawn_c5(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    grant = school.consent(family.pupil_id, family.guardian_ids[0])
    withdrawal = client.post(
        f"/v1/consents/{grant['id']}:withdraw", json={"method": "email"}, headers=auth("office")
    ).json()
    parent = auth("parent", guardian=family.guardian_ids[0])

    staff_view = client.get(f"/v1/consents/{grant['id']}/receipt", headers=auth("office"))
    parent_view = client.get(f"/v1/me/consents/{grant['id']}/receipt", headers=parent)

    for response in (staff_view, parent_view):
        assert response.status_code == 200, response.text
        ended = response.json()["withdrawal"]
        assert ended["withdrawal_record_id"] == withdrawal["id"]
        assert parse_time(ended["withdrawn_at"]) == parse_time(withdrawal["recorded_at"])


def test_parent_cannot_read_another_familys_receipt_a2(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    ours = school.family()
    theirs = school.family("Bea", "Lind")
    grant = school.consent(theirs.pupil_id, theirs.guardian_ids[0])

    response = client.get(
        f"/v1/me/consents/{grant['id']}/receipt",
        headers=auth("parent", guardian=ours.guardian_ids[0]),
    )

    body = assert_problem(response, 404, "not_found")
    assert "Lind" not in response.text
    assert body["rule"] == "A2"


# --- renewals ----------------------------------------------------------------------------------


def renewal_ids(client: TestClient, auth: TokenFactory, within_days: int) -> list[str]:
    response = client.get(
        "/v1/renewals", params={"within_days": within_days}, headers=auth("office")
    )
    assert response.status_code == 200, response.text
    return [r["record_id"] for r in response.json()]


def test_renewals_list_grants_ending_within_the_window(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    guardian = family.guardian_ids[0]
    ten_days = school.consent(family.pupil_id, guardian, valid_until=soon(10))
    sixty_days = school.consent(
        family.pupil_id, guardian, purpose="livestream", valid_until=soon(60)
    )
    school.consent(family.pupil_id, guardian, purpose="print_publication")  # academic year end

    assert renewal_ids(client, auth, 30) == [ten_days["id"]]
    assert renewal_ids(client, auth, 90) == [ten_days["id"], sixty_days["id"]]
    due = client.get("/v1/renewals", params={"within_days": 30}, headers=auth("office")).json()
    assert due[0]["guardian_id"] == guardian
    assert due[0]["purpose"] == "website_photo"
    assert due[0]["guardian_email"].startswith("grace.")


def test_renewed_grant_drops_off_the_renewals_list(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0], valid_until=soon(10))
    assert len(renewal_ids(client, auth, 30)) == 1

    school.consent(family.pupil_id, family.guardian_ids[0], valid_until=soon(400))

    assert renewal_ids(client, auth, 30) == []


# --- wording versions and purpose basis --------------------------------------------------------

NEW_WORDING = (
    "I agree that photographs and video of my child may be published on the school website, "
    "without my child's name, until I withdraw this consent."
)


def test_new_wording_is_a_new_version_and_old_records_keep_theirs_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    old = school.consent(family.pupil_id, family.guardian_ids[0])

    response = client.post(
        "/v1/purposes/website_photo/wordings", json={"text": NEW_WORDING}, headers=auth("head")
    )

    assert response.status_code == 201, response.text
    purpose = response.json()
    assert purpose["wording_version"] == 2
    assert [v["version"] for v in purpose["versions"]] == [1, 2]
    assert purpose["wording_sha256"] == hashlib.sha256(NEW_WORDING.encode()).hexdigest()
    new = school.consent(family.pupil_id, family.guardian_ids[0])
    assert new["wording_version"] == 2
    assert (
        client.get(f"/v1/consents/{old['id']}", headers=auth("office")).json()["wording_version"]
        == 1
    )
    old_receipt = client.get(f"/v1/consents/{old['id']}/receipt", headers=auth("office")).json()
    assert old_receipt["purpose"]["wording_version"] == 1
    assert old_receipt["purpose"]["wording"] == purpose["versions"][0]["text"]


def test_record_may_cite_an_earlier_wording_the_carer_signed_c10(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    client.post(
        "/v1/purposes/website_photo/wordings", json={"text": NEW_WORDING}, headers=auth("head")
    )

    record = school.consent(family.pupil_id, family.guardian_ids[0], wording_version=1)

    assert record["wording_version"] == 1


def test_staff_cannot_change_the_wording_a1(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    response = client.post(
        "/v1/purposes/website_photo/wordings", json={"text": NEW_WORDING}, headers=auth("office")
    )

    assert_problem(response, 403, "forbidden")
    assert (
        client.get("/v1/purposes/website_photo", headers=auth("office")).json()["wording_version"]
        == 1
    )


@pytest.mark.parametrize(
    ("purpose", "rule"),
    [("livestream", "C3"), ("newspaper_named", "C4"), ("pupil_work_publish", "C8")],
)
def test_explicit_consent_purpose_cannot_become_objection_based_c3_c4(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, purpose: str, rule: str
) -> None:
    response = client.patch(
        f"/v1/purposes/{purpose}", json={"basis": "objection"}, headers=auth("head")
    )

    problem = assert_problem(response, 422, "explicit_consent_required")
    assert problem["rule"] == rule
    assert client.get(f"/v1/purposes/{purpose}", headers=auth("head")).json()["basis"] == "opt_in"


def test_objection_based_purpose_is_allowed_without_a_record_c2(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    response = client.patch(
        "/v1/purposes/print_publication", json={"basis": "objection"}, headers=auth("head")
    )
    assert response.status_code == 200, response.text
    assert response.json()["basis"] == "objection"

    verdict = school.decide("print_publication", family.pupil_id)[family.pupil_id]

    assert verdict == {
        "pupil_id": family.pupil_id,
        "allowed": True,
        "reason": "no_objection",
        "record_id": None,
    }


def test_objection_by_a_carer_blocks_an_objection_based_purpose_c5(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    client.patch(
        "/v1/purposes/print_publication", json={"basis": "objection"}, headers=auth("head")
    )

    objection = school.consent(
        family.pupil_id, family.guardian_ids[0], purpose="print_publication", decision="refused"
    )

    assert school.decide("print_publication", family.pupil_id)[family.pupil_id] == {
        "pupil_id": family.pupil_id,
        "allowed": False,
        "reason": "refused",
        "record_id": objection["id"],
    }


def test_leap_day_year_end_falls_back_to_end_of_february_in_other_years(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    school.set_up(academic_year_ends="02-29")
    family = school.family()
    now = dt.datetime.now(dt.UTC)

    response = client.post(
        "/v1/consents",
        json={
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "decision": "granted",
            "guardian_id": family.guardian_ids[0],
            "method": "paper",
        },
        headers=auth("office"),
    )

    assert response.status_code == 201, response.text
    london = ZoneInfo("Europe/London")
    end = dt.datetime(now.astimezone(london).year, 3, 1, tzinfo=london)
    if end <= now:
        end = dt.datetime(end.year + 1, 3, 1, tzinfo=london)
    assert parse_time(response.json()["valid_until"]) == end


def test_renewal_recorded_in_advance_keeps_the_current_grant_in_force_c2(
    school: SchoolBuilder,
) -> None:
    family = school.family()
    current = school.consent(family.pupil_id, family.guardian_ids[0], valid_until=soon(10))

    school.consent(
        family.pupil_id, family.guardian_ids[0], valid_from=soon(10), valid_until=soon(400)
    )

    # The carer said yes twice; nobody said no. The renewal must not suspend today's consent.
    assert school.decide("website_photo", family.pupil_id)[family.pupil_id] == {
        "pupil_id": family.pupil_id,
        "allowed": True,
        "reason": "granted",
        "record_id": current["id"],
    }


def test_refusal_carrying_dates_is_refused_and_changes_nothing(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    family = school.family()
    entries = records.audit_entries()
    response = client.post(
        "/v1/consents",
        json={
            "pupil_id": family.pupil_id,
            "purpose": "website_photo",
            "decision": "refused",
            "guardian_id": family.guardian_ids[0],
            "method": "paper",
            "valid_until": soon(30),
        },
        headers=auth("office"),
    )
    body = assert_problem(response, 422, "invalid_dates")
    assert [p["code"] for p in body["problems"]] == ["dates_on_refusal"]
    assert records.audit_entries() == entries


def test_grant_given_in_the_last_weeks_of_the_year_also_covers_the_next_year(
    school: SchoolBuilder,
) -> None:
    family = school.family()
    london = ZoneInfo("Europe/London")
    today = dt.datetime.now(london)
    year = today.year if today < dt.datetime(today.year, 7, 15, tzinfo=london) else today.year + 1
    start = dt.datetime(year, 7, 15, 9, 0, tzinfo=london)

    record = school.consent(family.pupil_id, family.guardian_ids[0], valid_from=iso(start))

    ends = dt.datetime(year + 1, 9, 1, tzinfo=london).astimezone(dt.UTC)
    assert dt.datetime.fromisoformat(record["valid_until"]) == ends


def test_renewal_that_ends_no_later_keeps_the_grant_on_the_renewals_list(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()
    first = school.consent(family.pupil_id, family.guardian_ids[0], valid_until=soon(10))
    school.consent(family.pupil_id, family.guardian_ids[0], valid_until=soon(5))

    assert first["id"] in renewal_ids(client, auth, within_days=30)
