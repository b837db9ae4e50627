"""POST /v1/messages and reading a message back: the rules every send goes through."""

from __future__ import annotations

import email
import email.policy
import email.utils
import socket
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_comms.app import create_app
from hallpass_comms.delivery import EmlFolderTransport
from hallpass_comms.settings import CommsSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from tests.comms.conftest import (
    DEPUTY,
    HEAD,
    FrozenClock,
    audit_actions,
    delivery_worker,
    headers_with_email,
    send,
    sent,
)
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem


def _deliver(comms_app: FastAPI) -> int:
    return delivery_worker(comms_app).run_once()


def _mail(outbox: Path) -> list[EmailMessage]:
    messages = []
    for path in sorted(outbox.rglob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def _addresses(message: EmailMessage, header: str) -> set[str]:
    return {a.lower() for _, a in email.utils.getaddresses(message.get_all(header, []))}


def test_e1_e9_a_class_send_gives_each_family_its_own_envelope_copied_to_leadership(
    comms: TestClient,
    comms_app: FastAPI,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    outbox: Path,
) -> None:
    oak = school.school_class()
    amara = school.family("Amara", "Okafor", carers=2, class_id=oak)
    oliver = school.family("Oliver", "Shaw", class_id=oak)

    receipt = sent(comms, auth("staff"), {"class_ids": [oak]})
    delivered = _deliver(comms_app)

    assert delivered == 2
    assert {d["status"] for d in receipt["deliveries"]} == {"queued"}
    assert receipt["cc"] == [HEAD, DEPUTY]
    mails = _mail(outbox)
    assert len(mails) == 2
    carers = {
        frozenset(
            g["email"]
            for g in school.client.get(f"/v1/pupils/{p}/guardians", headers=school.office).json()
        )
        for p in (amara.pupil_id, oliver.pupil_id)
    }
    assert {frozenset(_addresses(m, "To")) for m in mails} == carers
    for mail in mails:
        assert _addresses(mail, "Cc") == {HEAD, DEPUTY}
        assert _addresses(mail, "From") == {"staff@oakfield.sch.uk"}


def test_e1_the_head_sending_copies_the_deputy_not_themselves(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    receipt = sent(comms, auth("head"), {"pupil_ids": [family.pupil_id]})

    assert receipt["cc"] == [DEPUTY]
    assert receipt["sender_address"] == HEAD


def test_e1_a_client_cannot_set_or_remove_copies_or_choose_a_from(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    recipients = {"pupil_ids": [family.pupil_id]}

    extras: list[dict[str, Any]] = [
        {"cc": []},
        {"from": "head@oakfield.sch.uk"},
        {"bcc": ["x@example.org"]},
    ]
    for extra in extras:
        response = send(comms, auth("staff"), recipients, **extra)
        body = assert_problem(response, 422, "invalid_request")
        assert body["problems"][0]["code"] == "extra_forbidden"


def test_e2_a_sender_without_a_school_address_is_refused_and_audited(
    comms: TestClient,
    auth: TokenFactory,
    issuer: DevIssuer,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
) -> None:
    family = school.family()

    for address in ("j.smith@gmail.com", None):
        response = send(
            comms, headers_with_email(issuer, "staff", address), {"pupil_ids": [family.pupil_id]}
        )
        body = assert_problem(response, 403, "personal_sender")
        assert body["rule"] == "E2"

    assert audit_actions(comms, auth)[:2] == ["refused:send_message"] * 2
    assert "message.sent" not in audit_actions(comms, auth)


def test_e4_mail_to_an_outside_organisation_waits_for_approval(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    receipt = sent(comms, auth("staff"), {"addresses": ["referrals@council.gov.uk"]})

    assert receipt["approval"] == "pending"
    assert [d["status"] for d in receipt["deliveries"]] == ["pending_approval"]
    assert [d["recipient_kind"] for d in receipt["deliveries"]] == ["external"]


def test_e4_the_deputy_approves_and_the_mail_is_queued(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    held = sent(
        comms, auth("staff"), {"addresses": ["referrals@council.gov.uk", "office@oakfield.sch.uk"]}
    )

    approved = comms.post(f"/v1/messages/{held['id']}:approve", headers=auth("deputy"))

    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"] == "approved"
    assert approved.json()["approved_by"] == "deputy@oakfield"
    assert {d["status"] for d in approved.json()["deliveries"]} == {"queued"}
    assert "message.approved" in audit_actions(comms, auth)


def test_e4_a_teacher_cannot_approve_and_approving_twice_conflicts(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    held = sent(comms, auth("staff"), {"addresses": ["referrals@council.gov.uk"]})

    assert_problem(
        comms.post(f"/v1/messages/{held['id']}:approve", headers=auth("staff")), 403, "forbidden"
    )
    assert comms.post(f"/v1/messages/{held['id']}:approve", headers=auth("head")).status_code == 200
    assert_problem(
        comms.post(f"/v1/messages/{held['id']}:approve", headers=auth("head")),
        409,
        "not_pending_approval",
    )


def test_e4_e8_mail_approved_in_the_evening_waits_for_the_morning(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any], clock: FrozenClock
) -> None:
    held = sent(comms, auth("staff"), {"addresses": ["referrals@council.gov.uk"]})
    clock.advance(hours=9)  # Wednesday 19:00

    approved = comms.post(f"/v1/messages/{held['id']}:approve", headers=auth("head"))

    assert approved.status_code == 200, approved.text
    assert approved.json()["scheduled_for"] == "2026-11-19T08:00:00Z"
    assert [d["status"] for d in approved.json()["deliveries"]] == ["scheduled"]


def test_e4_outside_mail_from_the_head_needs_no_second_approval(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    receipt = sent(comms, auth("head"), {"addresses": ["referrals@council.gov.uk"]})

    assert receipt["approval"] == "approved"
    assert receipt["approved_by"] == "head@oakfield"
    assert [d["status"] for d in receipt["deliveries"]] == ["queued"]


def test_e4_staff_addresses_need_no_approval(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    receipt = sent(comms, auth("staff"), {"addresses": ["Office@Oakfield.sch.uk"]})

    assert receipt["approval"] == "not_needed"
    assert [d["recipient_kind"] for d in receipt["deliveries"]] == ["staff"]
    assert receipt["deliveries"][0]["to"] == ["office@oakfield.sch.uk"]


def test_e6_a_chain_message_is_refused_with_the_phrase_and_audited(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    response = send(
        comms,
        auth("staff"),
        {"pupil_ids": [family.pupil_id]},
        body_text="Lovely news! Now forward this to ten friends or bad luck will follow.",
    )

    body = assert_problem(response, 422, "chain_message")
    assert body["rule"] == "E6"
    assert "forward this to ten friends" in body["detail"]
    assert audit_actions(comms, auth)[0] == "refused:send_message"


def test_e6_a_chain_message_hidden_in_the_html_body_is_refused(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    response = send(
        comms,
        auth("staff"),
        {"pupil_ids": [family.pupil_id]},
        body_html="<p>Don't <b>break the chain</b>!</p>",
    )

    assert_problem(response, 422, "chain_message")


def test_e8_an_evening_message_is_scheduled_for_the_next_school_morning(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    clock.advance(hours=10)  # Wednesday 20:00 in London

    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    assert receipt["scheduled_for"] == "2026-11-19T08:00:00Z"
    assert [d["status"] for d in receipt["deliveries"]] == ["scheduled"]
    assert [d["due_at"] for d in receipt["deliveries"]] == ["2026-11-19T08:00:00Z"]


def test_e8_an_urgent_message_goes_at_once_out_of_hours(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    clock.advance(hours=10)

    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]}, urgent=True)

    assert receipt["scheduled_for"] is None
    assert [d["status"] for d in receipt["deliveries"]] == ["queued"]


def test_e8_a_held_message_is_not_sent_before_its_morning(
    comms: TestClient,
    comms_app: FastAPI,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
    outbox: Path,
) -> None:
    family = school.family()
    clock.advance(hours=10)
    sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    assert _deliver(comms_app) == 0
    clock.advance(hours=12)  # Thursday 08:00
    assert _deliver(comms_app) == 1
    assert len(_mail(outbox)) == 1


def test_nothing_is_sent_before_the_school_has_mail_settings(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    family = school.family()

    response = send(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    assert_problem(response, 409, "mail_settings_missing")


def test_unknown_recipients_are_refused_and_nothing_is_written(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    other = SchoolBuilder(school.client, school.auth, "riverside")
    other.set_up("Riverside")
    theirs = other.family()

    response = send(comms, auth("staff"), {"pupil_ids": [theirs.pupil_id]})

    body = assert_problem(response, 422, "unknown_pupil")
    assert body["problems"][0]["where"] == "body.recipients.pupil_ids"
    assert "message.sent" not in audit_actions(comms, auth)


def test_a_send_with_no_recipients_is_refused(
    comms: TestClient, auth: TokenFactory, mail_settings: dict[str, Any]
) -> None:
    assert_problem(send(comms, auth("staff"), {}), 422, "no_recipients")


def test_a_family_with_no_address_on_record_cannot_be_written_to(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    pupil = school.pupil()

    assert_problem(send(comms, auth("staff"), {"pupil_ids": [pupil]}), 422, "no_recipients")


def test_the_html_body_is_cut_down_to_the_allow_list(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()

    receipt = sent(
        comms,
        auth("staff"),
        {"pupil_ids": [family.pupil_id]},
        body_html='<p onclick="x()">Hi <script>alert(1)</script><a href="javascript:x">a</a>'
        '<img src="https://track.example/p.gif"><b>bold</b></p>',
    )

    html = receipt["body_html"]
    assert "<b>bold</b>" in html
    assert "script" not in html
    assert "onclick" not in html
    assert "javascript" not in html
    assert "<img" not in html


def test_a_retried_send_with_the_same_idempotency_key_is_sent_once(
    comms: TestClient, auth: TokenFactory, school: SchoolBuilder, mail_settings: dict[str, Any]
) -> None:
    family = school.family()
    headers = {**auth("staff"), "Idempotency-Key": "send-1"}

    first = send(comms, headers, {"pupil_ids": [family.pupil_id]})
    again = send(comms, headers, {"pupil_ids": [family.pupil_id]})

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert audit_actions(comms, auth).count("message.sent") == 1


def test_consent_service_down_fails_closed_and_writes_nothing(
    comms_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    auth: TokenFactory,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(
        common=common_settings,
        settings=CommsSettings(reminder_within_days=0),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=ServiceClient(
            name="consent",
            base_url=f"http://127.0.0.1:{port}",
            tokens=DevServiceTokens(issuer, "comms"),
        ),
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(tmp_path / "outbox"),
        clock=clock,
    )
    with TestClient(app, raise_server_exceptions=False) as comms:
        from tests.comms.conftest import settings_body

        assert (
            comms.put("/v1/settings", json=settings_body(), headers=auth("head")).status_code == 200
        )
        response = send(
            comms, auth("staff"), {"class_ids": ["6f1c1c56-3d5e-4a8e-9c1a-0b8f5e1d2a33"]}
        )
        actions = audit_actions(comms, auth)

    assert_problem(response, 503, "consent_unavailable")
    assert "message.sent" not in actions


def test_the_sender_and_leadership_read_a_message_back_others_get_404(
    comms: TestClient,
    auth: TokenFactory,
    issuer: DevIssuer,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
) -> None:
    family = school.family()
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})
    path = f"/v1/messages/{receipt['id']}"

    for role in ("staff", "head", "deputy", "dsl"):
        response = comms.get(path, headers=auth(role))
        assert response.status_code == 200, (role, response.text)
        assert response.json()["deliveries"] == receipt["deliveries"]
    other_teacher = headers_with_email(issuer, "staff", "b.jones@oakfield.sch.uk")
    assert_problem(comms.get(path, headers=other_teacher), 404, "unknown_message")
    assert audit_actions(comms, auth)[0] == "refused:read_message"
