"""GET and PUT /v1/settings: the school's mail rules, validated whole (E1, E2, E8)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.comms.conftest import DOMAIN, HEAD, settings_body
from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem


def test_settings_are_missing_until_the_head_makes_them(
    comms: TestClient, auth: TokenFactory
) -> None:
    assert_problem(comms.get("/v1/settings", headers=auth("head")), 404, "mail_settings_missing")


def test_the_head_sets_and_reads_back_the_settings(comms: TestClient, auth: TokenFactory) -> None:
    put = comms.put(
        "/v1/settings",
        json=settings_body(term_dates=[{"start": "2026-09-03", "end": "2026-10-23"}]),
        headers=auth("head"),
    )
    got = comms.get("/v1/settings", headers=auth("admin"))

    assert put.status_code == 200, put.text
    assert got.json() == put.json()
    assert got.json()["domains"] == [DOMAIN]
    assert got.json()["school_day_start"] == "08:30"
    assert got.json()["updated_by"] == "head@oakfield"


def test_a_settings_change_is_audited(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    comms.put("/v1/settings", json=settings_body(cc_policy="head"), headers=auth("head"))

    entries = comms.get("/v1/audit", headers=auth("head")).json()["items"]
    assert [e["action"] for e in entries][:2] == ["settings.changed", "settings.created"]
    assert entries[0]["details"]["cc_policy"] == "head"


@pytest.mark.parametrize(
    ("changes", "code", "where"),
    [
        ({"head_address": "head@gmail.com"}, "address_off_domain", "body.head_address"),
        ({"dsl_address": "dsl@oakfield.sch.uk.evil.com"}, "address_off_domain", "body.dsl_address"),
        (
            {"cc_policy": "both", "deputy_address": None},
            "cc_address_missing",
            "body.deputy_address",
        ),
        ({"timezone": "Europe/Londres"}, "unknown_timezone", "body.timezone"),
        (
            {"school_day_start": "16:00", "school_day_end": "08:30"},
            "invalid_school_hours",
            "body.school_day_end",
        ),
        ({"morning_send_time": "17:00"}, "invalid_school_hours", "body.morning_send_time"),
        (
            {
                "term_dates": [
                    {"start": "2027-01-05", "end": "2027-03-26"},
                    {"start": "2026-09-03", "end": "2026-10-23"},
                ]
            },
            "term_dates_out_of_order",
            "body.term_dates",
        ),
        (
            {"term_dates": [{"start": "2026-10-23", "end": "2026-09-03"}]},
            "term_dates_out_of_order",
            "body.term_dates",
        ),
        ({"school_days": [1, 1, 2]}, "duplicate_school_day", "body.school_days"),
    ],
)
def test_unusable_settings_are_refused_whole(
    comms: TestClient, auth: TokenFactory, changes: dict[str, Any], code: str, where: str
) -> None:
    response = comms.put("/v1/settings", json=settings_body(**changes), headers=auth("head"))

    body = assert_problem(response, 422, code)
    assert where in [p["where"] for p in body["problems"]]
    assert_problem(comms.get("/v1/settings", headers=auth("head")), 404, "mail_settings_missing")


def test_a_custom_time_zone_is_kept(comms: TestClient, auth: TokenFactory) -> None:
    response = comms.put(
        "/v1/settings", json=settings_body(timezone="Europe/Dublin"), headers=auth("head")
    )

    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "Europe/Dublin"


def test_a_teacher_cannot_change_the_settings(comms: TestClient, auth: TokenFactory) -> None:
    response = comms.put("/v1/settings", json=settings_body(), headers=auth("staff"))

    assert_problem(response, 403, "forbidden")


def test_addresses_are_kept_in_lower_case(comms: TestClient, auth: TokenFactory) -> None:
    response = comms.put(
        "/v1/settings",
        json=settings_body(head_address=HEAD.upper(), domains=[DOMAIN.upper()]),
        headers=auth("head"),
    )

    assert response.status_code == 200, response.text
    assert response.json()["head_address"] == HEAD
