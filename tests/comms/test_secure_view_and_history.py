"""E5 secure view for sensitive mail, and E3 history per family."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.comms.conftest import FrozenClock, audit_actions, sent
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem

SENSITIVE = {"sensitivity": "sensitive", "subject": "About Amara", "body_text": "Private words."}


def test_e5_a_carer_reads_a_sensitive_message_sent_to_them_and_it_is_audited(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family(carers=2)
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, **SENSITIVE)

    for guardian in family.guardian_ids:
        response = comms.get(
            f"/v1/messages/{receipt['id']}/secure-view", headers=auth("parent", guardian=guardian)
        )
        assert response.status_code == 200, response.text
        assert response.json()["body_text"] == "Private words."
        assert response.json()["expires_at"] == "2026-12-02T10:00:00Z"
    assert audit_actions(comms, auth)[:2] == ["message.secure_view"] * 2


def test_e5_another_family_gets_404_and_the_attempt_is_audited(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    ours = school.family()
    theirs = school.family("Oliver", "Shaw")
    receipt = sent(comms, auth("staff"), {"pupil_ids": [ours.pupil_id]}, **SENSITIVE)

    response = comms.get(
        f"/v1/messages/{receipt['id']}/secure-view",
        headers=auth("parent", guardian=theirs.guardian_ids[0]),
    )

    body = assert_problem(response, 404, "unknown_message")
    assert "Private" not in response.text
    assert body["rule"] == "A2"
    assert audit_actions(comms, auth)[0] == "refused:secure_view"


def test_e5_the_secure_link_expires_after_the_schools_days(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, **SENSITIVE)
    clock.advance(days=14)

    response = comms.get(
        f"/v1/messages/{receipt['id']}/secure-view",
        headers=auth("parent", guardian=family.guardian_ids[0]),
    )

    assert_problem(response, 410, "secure_view_expired")


def test_e5_a_held_sensitive_message_cannot_be_read_before_it_is_sent(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    clock.advance(hours=10)  # evening: held for the morning
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, **SENSITIVE)
    path = f"/v1/messages/{receipt['id']}/secure-view"
    carer = auth("parent", guardian=family.guardian_ids[0])

    assert_problem(comms.get(path, headers=carer), 404, "unknown_message")
    clock.advance(hours=12)
    assert comms.get(path, headers=carer).status_code == 200


def test_e5_a_sensitive_message_goes_only_to_families(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    response = comms.post(
        "/v1/messages",
        json={"recipients": {"addresses": ["office@oakfield.sch.uk"]}, **SENSITIVE},
        headers=auth("staff"),
    )

    assert_problem(response, 422, "sensitive_needs_family")
    assert audit_actions(comms, auth)[0] == "refused:send_message"


# --- E3 ------------------------------------------------------------------------------------


def _history(
    comms: TestClient, headers: dict[str, str], pupil_id: str, **params: str
) -> dict[str, Any]:
    response = comms.get(f"/v1/families/{pupil_id}/messages", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_e3_a_familys_messages_are_kept_and_listed_newest_first(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    oak = school.school_class()
    family = school.family(class_id=oak)
    other = school.family("Oliver", "Shaw", class_id=oak)
    first = sent(comms, auth("staff"), {"class_ids": [oak]}, subject="Class trip")
    clock.advance(minutes=5)
    second = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, subject="Reading")
    sent(comms, auth("staff"), {"pupil_ids": [other.pupil_id]}, subject="Not for Amara")

    history = _history(comms, auth("office"), family.pupil_id)

    assert [m["id"] for m in history["items"]] == [second["id"], first["id"]]
    assert history["items"][1]["delivery_statuses"] == ["queued"]


def test_e3_the_history_pages_with_a_cursor(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    ids = []
    for n in range(3):
        ids.append(
            sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, subject=f"N{n}")["id"]
        )
        clock.advance(minutes=1)

    page1 = _history(comms, auth("head"), family.pupil_id, limit="2")
    page2 = _history(comms, auth("head"), family.pupil_id, limit="2", cursor=page1["next_cursor"])

    assert [m["id"] for m in page1["items"] + page2["items"]] == ids[::-1]
    assert page2["next_cursor"] is None


def test_e3_a_carer_reads_their_own_familys_messages(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    history = _history(comms, auth("parent", guardian=family.guardian_ids[0]), family.pupil_id)

    assert [m["id"] for m in history["items"]] == [receipt["id"]]
    assert history["items"][0]["body_text"] == "Bring a coat."


def test_e3_a_carer_asking_for_another_family_gets_404_audited(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    ours = school.family()
    theirs = school.family("Oliver", "Shaw")
    sent(comms, auth("staff"), {"pupil_ids": [theirs.pupil_id]})

    response = comms.get(
        f"/v1/families/{theirs.pupil_id}/messages",
        headers=auth("parent", guardian=ours.guardian_ids[0]),
    )

    assert_problem(response, 404, "unknown_pupil")
    assert audit_actions(comms, auth)[0] == "refused:family_messages"


def test_e3_a_carer_does_not_see_mail_sent_only_to_the_other_carer(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family(carers=2)
    mum, dad = family.guardian_ids
    sent(comms, auth("staff"), {"guardian_ids": [dad]}, subject="For Daniel only")

    assert _history(comms, auth("parent", guardian=mum), family.pupil_id)["items"] == []
    assert len(_history(comms, auth("parent", guardian=dad), family.pupil_id)["items"]) == 1


def test_e3_sensitive_words_are_withheld_from_the_office_and_carers_in_the_history(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, **SENSITIVE)

    carer = auth("parent", guardian=family.guardian_ids[0])
    assert _history(comms, auth("office"), family.pupil_id)["items"][0]["body_text"] is None
    assert _history(comms, carer, family.pupil_id)["items"][0]["body_text"] is None
    assert (
        _history(comms, auth("dsl"), family.pupil_id)["items"][0]["body_text"] == "Private words."
    )


def test_e3_the_head_and_dsl_search_subjects_and_bodies(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    trip = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, subject="Museum trip")
    coat = sent(
        comms,
        auth("staff"),
        {"pupil_ids": [family.pupil_id]},
        subject="Kit",
        body_text="Please label the PE kit_100%",
    )

    for role in ("head", "dsl"):
        found = _history(comms, auth(role), family.pupil_id, q="museum")
        assert [m["id"] for m in found["items"]] == [trip["id"]]
    literal = _history(comms, auth("head"), family.pupil_id, q="kit_100%")
    assert [m["id"] for m in literal["items"]] == [coat["id"]]
    assert _history(comms, auth("head"), family.pupil_id, q="_1000")["items"] == []
    assert audit_actions(comms, auth)[0] == "history.search"


def test_e3_other_staff_cannot_search(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    response = comms.get(
        f"/v1/families/{family.pupil_id}/messages", params={"q": "trip"}, headers=auth("office")
    )

    body = assert_problem(response, 403, "search_not_allowed")
    assert body["rule"] == "E3"


def test_e3_a_teacher_has_no_family_history(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    response = comms.get(f"/v1/families/{family.pupil_id}/messages", headers=auth("staff"))

    assert_problem(response, 403, "forbidden")
