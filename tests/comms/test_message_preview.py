"""POST /v1/messages:preview and GET /v1/approvals: what a send would do before it is sent, and
the outside mail waiting for the head or deputy."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from tests.comms.conftest import DEPUTY, HEAD, FrozenClock, audit_actions, sent
from tests.conftest import OTHER_SCHOOL, TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem

# Wednesday 18 November 2026, 19:00 in London: after school, so mail waits for the morning.
EVENING = dt.datetime(2026, 11, 18, 19, 0, tzinfo=dt.UTC)


def _preview(
    comms: TestClient, headers: dict[str, str], recipients: dict[str, Any], **fields: Any
) -> Any:
    body = {"recipients": recipients, "subject": "Trip on Friday", "body_text": "Bring a coat."}
    body.update(fields)
    return comms.post("/v1/messages:preview", json=body, headers=headers)


def _family_history(comms: TestClient, auth: TokenFactory, pupil_id: str) -> list[Any]:
    response = comms.get(f"/v1/families/{pupil_id}/messages", headers=auth("head"))
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


def test_a_class_preview_counts_families_and_names_leadership_copied_writing_nothing(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    oak = school.school_class()
    amara = school.family("Amara", "Okafor", carers=2, class_id=oak)
    school.family("Oliver", "Shaw", class_id=oak)

    response = _preview(comms, auth("staff"), {"class_ids": [oak]})

    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["families"] == 2
    assert preview["pupils"] == 2
    assert preview["cc"] == [HEAD, DEPUTY]
    assert preview["approval"] == "not_needed"
    assert preview["scheduled_for"] is None
    assert preview["sender_address"] == "staff@oakfield.sch.uk"
    assert _family_history(comms, auth, amara.pupil_id) == []


def test_an_evening_preview_says_when_the_morning_send_is(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    clock.now = EVENING

    preview = _preview(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}).json()
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    assert preview["scheduled_for"] == receipt["scheduled_for"]
    assert preview["scheduled_for"] is not None


def test_an_outside_address_previews_as_waiting_for_approval(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    preview = _preview(comms, auth("staff"), {"addresses": ["referrals@council.gov.uk"]}).json()

    assert preview["approval"] == "pending"
    assert preview["outside_addresses"] == 1
    assert preview["families"] == 0


def test_a_chain_message_is_refused_at_preview_as_at_send(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    response = _preview(
        comms,
        auth("staff"),
        {"pupil_ids": [family.pupil_id]},
        body_text="Forward this to ten other parents or bad luck will follow.",
    )

    assert_problem(response, 422, "chain_message")
    assert "refused:preview_message" in audit_actions(comms, auth)


def test_approvals_list_the_held_outside_mail_until_it_is_approved(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    held = sent(comms, auth("staff"), {"addresses": ["referrals@council.gov.uk"]})
    sent(comms, auth("staff"), {"addresses": ["office@oakfield.sch.uk"]})

    waiting = comms.get("/v1/approvals", headers=auth("deputy")).json()
    comms.post(f"/v1/messages/{held['id']}:approve", headers=auth("head"))
    after = comms.get("/v1/approvals", headers=auth("deputy")).json()

    assert [m["id"] for m in waiting] == [held["id"]]
    assert after == []


def test_another_schools_approvals_do_not_hold_this_schools_mail(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    sent(comms, auth("staff"), {"addresses": ["referrals@council.gov.uk"]})

    theirs = comms.get("/v1/approvals", headers=auth("head", school=OTHER_SCHOOL))

    assert theirs.status_code == 200, theirs.text
    assert theirs.json() == []
