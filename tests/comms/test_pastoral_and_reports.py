"""E7 pastoral inbox and E10 reports of offensive messages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.comms.conftest import DEPUTY, DSL, HEAD, OFFICE, audit_actions, sent
from tests.conftest import TokenFactory
from tests.consent.builders import Family, SchoolBuilder, assert_problem


def _concern(
    comms: TestClient, auth: TokenFactory, family: Family, **fields: Any
) -> dict[str, Any]:
    body = {"subject": "Worried about lunchtimes", "body": "Amara is upset at lunch.", **fields}
    response = comms.post(
        "/v1/pastoral/concerns", json=body, headers=auth("parent", guardian=family.guardian_ids[0])
    )
    assert response.status_code == 201, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


def test_e7_a_carer_raises_a_concern_and_the_dsl_reads_it(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    receipt = _concern(comms, auth, family, pupil_id=family.pupil_id)

    for role in ("dsl", "pastoral"):
        listed = comms.get("/v1/pastoral/concerns", headers=auth(role)).json()["items"]
        one = comms.get(f"/v1/pastoral/concerns/{receipt['id']}", headers=auth(role)).json()
        assert [c["id"] for c in listed] == [receipt["id"]]
        assert one["body"] == "Amara is upset at lunch."
        assert one["pupil_id"] == family.pupil_id
    actions = audit_actions(comms, auth)
    assert actions.count("pastoral.read") == 2
    assert actions.count("pastoral.list") == 2


def test_e7_the_dsl_is_told_a_concern_is_waiting_without_its_words(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    receipt = _concern(comms, auth, family, body="Something private about home.")

    raised = comms.get(
        "/v1/audit", params={"action": "pastoral.concern_raised"}, headers=auth("head")
    ).json()["items"][0]
    notice = comms.get(f"/v1/messages/{raised['details']['notice']}", headers=auth("dsl")).json()

    assert notice["kind"] == "concern_notice"
    assert [d["to"] for d in notice["deliveries"]] == [[DSL]]
    assert notice["cc"] == []
    assert receipt["id"] in notice["body_text"]
    assert "private" not in notice["body_text"].lower()
    assert "Worried" not in notice["subject"] + notice["body_text"]


def test_e7_a_concern_is_taken_before_the_school_has_mail_settings(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()

    receipt = _concern(comms, auth, family)

    assert receipt["status"] == "open"


@pytest.mark.parametrize("role", ["head", "deputy", "office", "staff", "admin"])
def test_e7_only_the_dsl_and_pastoral_staff_read_the_inbox(
    role: str,
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
) -> None:
    family = school.family()
    receipt = _concern(comms, auth, family)

    assert_problem(comms.get("/v1/pastoral/concerns", headers=auth(role)), 403, "forbidden")
    assert_problem(
        comms.get(f"/v1/pastoral/concerns/{receipt['id']}", headers=auth(role)), 403, "forbidden"
    )


def test_e7_a_concern_about_someone_elses_child_is_refused(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    ours = school.family()
    theirs = school.family("Oliver", "Shaw")

    response = comms.post(
        "/v1/pastoral/concerns",
        json={"subject": "Hi", "body": "About Oliver", "pupil_id": theirs.pupil_id},
        headers=auth("parent", guardian=ours.guardian_ids[0]),
    )

    assert_problem(response, 404, "unknown_pupil")


def test_e7_e1_a_reply_goes_to_the_carer_alone_copied_to_leadership(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family(carers=2)
    concern = _concern(comms, auth, family, pupil_id=family.pupil_id)

    response = comms.post(
        f"/v1/pastoral/concerns/{concern['id']}/replies",
        json={"body_text": "Thank you, we will talk to Amara today."},
        headers=auth("dsl"),
    )

    assert response.status_code == 202, response.text
    reply = response.json()
    assert reply["kind"] == "pastoral_reply"
    assert reply["sender_address"] == DSL
    assert reply["cc"] == [HEAD, DEPUTY]
    assert reply["sensitivity"] == "sensitive"
    assert reply["subject"] == "Re: Worried about lunchtimes"
    (delivery,) = reply["deliveries"]
    assert len(delivery["to"]) == 1
    status = comms.get(f"/v1/pastoral/concerns/{concern['id']}", headers=auth("dsl"))
    assert status.json()["status"] == "answered"


def test_e7_pastoral_replies_stay_out_of_the_offices_view_of_the_history(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    concern = _concern(comms, auth, family, pupil_id=family.pupil_id)
    comms.post(
        f"/v1/pastoral/concerns/{concern['id']}/replies",
        json={"body_text": "We will talk today."},
        headers=auth("pastoral"),
    )
    path = f"/v1/families/{family.pupil_id}/messages"

    assert comms.get(path, headers=auth("office")).json()["items"] == []
    assert len(comms.get(path, headers=auth("dsl")).json()["items"]) == 1


# --- E10 ---------------------------------------------------------------------------------------


def test_e10_a_carer_reports_a_message_and_the_dsl_is_told_with_the_reference(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    message = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    response = comms.post(
        "/v1/reports",
        json={"message_id": message["id"], "description": "The tone of this was offensive."},
        headers=auth("parent", guardian=family.guardian_ids[0]),
    )

    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    assert re.fullmatch(r"R-2026-\d{6}", reference)
    entries = comms.get("/v1/audit", headers=auth("head")).json()["items"]
    filed = next(e for e in entries if e["action"] == "report.filed")
    assert filed["target"] == f"report:{reference}"
    notice = comms.get(f"/v1/messages/{filed['details']['notice']}", headers=auth("dsl")).json()
    assert notice["kind"] == "report_notice"
    assert notice["urgent"] is True
    assert notice["sender_address"] == OFFICE
    assert [d["to"] for d in notice["deliveries"]] == [[DSL]]
    assert reference in notice["subject"]
    assert "The tone of this was offensive." in notice["body_text"]


def test_e10_references_count_up_and_are_unique(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    references = [
        comms.post(
            "/v1/reports",
            json={"received_from": "troll@example.net", "description": f"Abuse {n}"},
            headers=auth("staff"),
        ).json()["reference"]
        for n in range(3)
    ]

    assert references == ["R-2026-000001", "R-2026-000002", "R-2026-000003"]


def test_e10_a_carer_cannot_report_a_message_that_never_reached_them(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    ours = school.family()
    theirs = school.family("Oliver", "Shaw")
    message = sent(comms, auth("staff"), {"pupil_ids": [theirs.pupil_id]})

    response = comms.post(
        "/v1/reports",
        json={"message_id": message["id"], "description": "Nosy"},
        headers=auth("parent", guardian=ours.guardian_ids[0]),
    )

    assert_problem(response, 404, "unknown_message")


@pytest.mark.parametrize(
    "source",
    [{}, {"message_id": "6f1c1c56-3d5e-4a8e-9c1a-0b8f5e1d2a33", "received_from": "a@example.net"}],
)
def test_e10_a_report_names_exactly_one_source(
    source: dict[str, str], comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    response = comms.post(
        "/v1/reports", json={"description": "Rude", **source}, headers=auth("staff")
    )

    assert_problem(response, 422, "report_needs_source")


def test_e10_e6_a_reported_chain_message_reaches_the_dsl_in_the_reporters_words(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    # The notice is the school's own mail quoting what was received: E6 refuses chain messages
    # staff write, never a report of one.
    quoted = "It said: forward this to 10 other parents or bad luck will follow."

    response = comms.post(
        "/v1/reports",
        json={"received_from": "chain@example.net", "description": quoted},
        headers=auth("staff"),
    )

    assert response.status_code == 201, response.text
    entries = comms.get("/v1/audit", headers=auth("head")).json()["items"]
    filed = next(e for e in entries if e["action"] == "report.filed")
    notice = comms.get(f"/v1/messages/{filed['details']['notice']}", headers=auth("dsl")).json()
    assert quoted in notice["body_text"]
    assert notice["cc"] == []
