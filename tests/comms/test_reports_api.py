"""E10: the designated staff read the reports of offensive messages (GET /v1/reports, GET
/v1/reports/{id}): the DSL, who is told of each at once, and the head."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.comms.conftest import FrozenClock, audit_actions
from tests.conftest import OTHER_SCHOOL, TokenFactory
from tests.consent.builders import assert_problem


def report(comms: TestClient, auth: TokenFactory, n: int, **token: Any) -> dict[str, Any]:
    response = comms.post(
        "/v1/reports",
        json={"received_from": f"troll{n}@example.net", "description": f"Abuse number {n}"},
        headers=auth("staff", **token),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("role", ["dsl", "head"])
def test_e10_the_dsl_and_head_read_reports_newest_first(
    comms: TestClient,
    auth: TokenFactory,
    clock: FrozenClock,
    mail_settings: dict[str, Any],
    role: str,
) -> None:
    filed = []
    for n in range(3):
        filed.append(report(comms, auth, n))
        clock.advance(minutes=1)

    response = comms.get("/v1/reports", headers=auth(role))

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["reference"] for i in items] == [f["reference"] for f in reversed(filed)]
    newest = items[0]
    assert newest["received_from"] == "troll2@example.net"
    assert newest["description"] == "Abuse number 2"
    assert newest["reported_by"] == "staff@oakfield"
    assert newest["notice_message_id"] is not None


def test_e10_reports_come_a_page_at_a_time(
    comms: TestClient, auth: TokenFactory, clock: FrozenClock, mail_settings: dict[str, Any]
) -> None:
    references = []
    for n in range(5):
        references.append(report(comms, auth, n)["reference"])
        clock.advance(seconds=30)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = comms.get("/v1/reports", params=params, headers=auth("dsl")).json()
        seen.extend(i["reference"] for i in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert seen == list(reversed(references))
    assert pages == 3


def test_e10_one_report_is_read_with_its_words_and_the_reading_audited(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    filed = report(comms, auth, 7)

    response = comms.get(f"/v1/reports/{filed['id']}", headers=auth("dsl"))

    assert response.status_code == 200, response.text
    assert response.json()["reference"] == filed["reference"]
    assert response.json()["description"] == "Abuse number 7"
    assert "report.read" in audit_actions(comms, auth)


@pytest.mark.parametrize("role", ["staff", "office", "deputy", "pastoral", "social_media"])
def test_e10_other_staff_cannot_read_reports(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any], role: str
) -> None:
    filed = report(comms, auth, 1)

    assert_problem(comms.get("/v1/reports", headers=auth(role)), 403, "forbidden")
    assert_problem(comms.get(f"/v1/reports/{filed['id']}", headers=auth(role)), 403, "forbidden")


def test_e10_another_schools_reports_are_neither_listed_nor_found(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    filed = report(comms, auth, 1)

    listed = comms.get("/v1/reports", headers=auth("dsl", school=OTHER_SCHOOL))
    one = comms.get(f"/v1/reports/{filed['id']}", headers=auth("dsl", school=OTHER_SCHOOL))

    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    assert_problem(one, 404, "unknown_report")


def test_e10_an_unknown_report_or_cursor_is_refused(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    assert_problem(
        comms.get(f"/v1/reports/{uuid.uuid4()}", headers=auth("dsl")), 404, "unknown_report"
    )
    assert_problem(
        comms.get("/v1/reports", params={"cursor": "nonsense"}, headers=auth("dsl")),
        400,
        "invalid_cursor",
    )


@pytest.mark.parametrize("role", ["dsl", "head"])
def test_e10_a_report_is_marked_handled_once_with_what_was_done(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any], role: str
) -> None:
    filed = report(comms, auth, 3)

    resolved = comms.post(
        f"/v1/reports/{filed['id']}:resolve",
        json={"resolution": "Blocked the sender; told the carer."},
        headers=auth(role),
    )
    again = comms.post(
        f"/v1/reports/{filed['id']}:resolve",
        json={"resolution": "Something else."},
        headers=auth("dsl"),
    )

    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["resolved_by"] == f"{role}@oakfield"
    assert resolved.json()["resolution"] == "Blocked the sender; told the carer."
    assert resolved.json()["resolved_at"] is not None
    assert_problem(again, 409, "report_resolved")
    shown = comms.get(f"/v1/reports/{filed['id']}", headers=auth("dsl")).json()
    assert shown["resolution"] == "Blocked the sender; told the carer."
    assert audit_actions(comms, auth).count("report.resolve") == 1


def test_e10_an_open_report_says_so_and_a_blank_resolution_changes_nothing(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    filed = report(comms, auth, 4)

    blank = comms.post(
        f"/v1/reports/{filed['id']}:resolve", json={"resolution": "   "}, headers=auth("dsl")
    )

    assert blank.status_code == 422, blank.text
    shown = comms.get(f"/v1/reports/{filed['id']}", headers=auth("dsl")).json()
    assert (shown["resolved_at"], shown["resolved_by"], shown["resolution"]) == (None, None, None)


def test_e10_other_staff_and_other_schools_cannot_mark_a_report_handled(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    filed = report(comms, auth, 5)
    path = f"/v1/reports/{filed['id']}:resolve"
    body = {"resolution": "Done."}

    assert_problem(comms.post(path, json=body, headers=auth("office")), 403, "forbidden")
    assert_problem(
        comms.post(path, json=body, headers=auth("dsl", school=OTHER_SCHOOL)), 404, "unknown_report"
    )
    assert (
        comms.get(f"/v1/reports/{filed['id']}", headers=auth("dsl")).json()["resolved_at"] is None
    )
