"""Mail text is literal, end to end: a message sent through the API, delivered by the worker into
the `.eml` outbox and over real SMTP (aiosmtpd on loopback), parsed strictly from the bytes that
arrived. Whatever staff, carers or records typed, carers see exactly that: one From, one To, one
Subject, leadership copied as configured (E1), no header the system did not set; and a chain
phrase in disguise is still refused (E6)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_comms.app import create_app
from hallpass_comms.delivery import (
    DeliveryWorker,
    EmlFolderTransport,
    MailTransport,
    SmtpTransport,
)
from hallpass_comms.settings import CommsSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from tests.comms.conftest import (
    DEPUTY,
    DOMAIN,
    DSL,
    HEAD,
    OFFICE,
    FrozenClock,
    delivery_worker,
    headers_with_email,
    settings_body,
)
from tests.comms.mail_reading import as_typed, assert_school_mail, parse_strictly, shown_text
from tests.comms.smtp import SmtpServer
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, assert_problem

STAFF = f"staff@{DOMAIN}"
CARER = "grace.okafor@parents.example.org"
Q_REPLY_TO = "=?utf-8?q?Trip=0D=0AReply-To:_attacker@evil.example?="
B_BCC = "=?utf-8?b?" + base64.b64encode(b"Trip\r\nBcc: spy@evil.example").decode() + "?="
Q_BODY = "=?utf-8?q?Trip=0D=0A=0D=0A<html>Pay_here</html>?="
CHAIN = "Forward this to 10 people"


@dataclass
class Mailroom:
    """The comms API with a delivery worker and the mail it delivered, as bytes."""

    comms: TestClient
    worker: DeliveryWorker
    delivered_bytes: Callable[[], list[bytes]]

    def deliver(self) -> list[EmailMessage]:
        self.worker.run_until_idle()
        return [parse_strictly(raw) for raw in self.delivered_bytes()]


@pytest.fixture(params=["eml", "smtp"])
def mailroom(
    request: pytest.FixtureRequest,
    comms_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    clock: FrozenClock,
    auth: TokenFactory,
    tmp_path: Path,
) -> Iterator[Mailroom]:
    smtp: SmtpServer | None = None
    transport: MailTransport
    if request.param == "smtp":
        smtp = SmtpServer()
        smtp.start()
        transport = SmtpTransport(
            CommsSettings(
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_starttls=False,
                smtp_timeout_seconds=5,
            )
        )

        def delivered_bytes() -> list[bytes]:
            assert smtp is not None
            return [received.raw for received in smtp.received]

    else:
        outbox = tmp_path / "outbox"
        transport = EmlFolderTransport(outbox)

        def delivered_bytes() -> list[bytes]:
            return [path.read_bytes() for path in sorted(outbox.glob("*.eml"))]

    app = create_app(
        common=common_settings,
        settings=CommsSettings(reminder_within_days=0),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=transport,
        clock=clock,
    )
    try:
        with TestClient(app, raise_server_exceptions=False) as comms:
            response = comms.put("/v1/settings", json=settings_body(), headers=auth("head"))
            assert response.status_code == 200, response.text
            yield Mailroom(comms, delivery_worker(app), delivered_bytes)
    finally:
        if isinstance(transport, SmtpTransport):
            transport.close()
        if smtp is not None:
            smtp.stop()


@pytest.fixture
def pupil(school: SchoolBuilder) -> str:
    pupil_id = school.pupil("Amara", "Okafor")
    school.guardian(pupil_id, given="Grace", family="Okafor", email=CARER)
    return pupil_id


def _send(mailroom: Mailroom, auth: TokenFactory, pupil: str, **fields: Any) -> Any:
    body: dict[str, Any] = {
        "recipients": {"pupil_ids": [pupil]},
        "subject": "Trip on Friday",
        "body_text": "Bring a coat.",
        "urgent": True,
        **fields,
    }
    return mailroom.comms.post("/v1/messages", json=body, headers=auth("staff"))


@pytest.mark.parametrize("subject", [Q_REPLY_TO, B_BCC, Q_BODY, f"Trip: {Q_REPLY_TO} \u2013 £5"])
def test_a_subject_of_encoded_words_reaches_the_carer_as_typed_and_adds_no_header(
    mailroom: Mailroom, auth: TokenFactory, pupil: str, subject: str
) -> None:
    response = _send(mailroom, auth, pupil, subject=subject, body_text=f"Body: {Q_REPLY_TO}")
    assert response.status_code == 202, response.text

    (mail,) = mailroom.deliver()

    assert_school_mail(mail, sender=STAFF, to=[CARER], cc=[HEAD, DEPUTY], subject=subject)
    assert "Reply-To" not in mail
    assert "Bcc" not in mail
    assert shown_text(mail) == as_typed(f"Body: {Q_REPLY_TO}")


BOUNDARY_LIKE = (
    "Dear families,\n"
    "--===============0123456789012345678==\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>Pay the trip fee at evil.example</p>\n"
    "--===============0123456789012345678==--\n"
    ".\n"
    "Mrs Smith"
)


def test_a_body_with_a_boundary_like_line_and_html_arrives_as_typed(
    mailroom: Mailroom, auth: TokenFactory, pupil: str
) -> None:
    html = "<p>5 &lt; 6 &amp; <b>coats</b><script>alert(1)</script></p>"
    response = _send(mailroom, auth, pupil, body_text=BOUNDARY_LIKE, body_html=html)
    assert response.status_code == 202, response.text

    (mail,) = mailroom.deliver()

    assert_school_mail(
        mail,
        sender=STAFF,
        to=[CARER],
        cc=[HEAD, DEPUTY],
        subject="Trip on Friday",
        multipart=True,
    )
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert shown_text(mail) == as_typed(BOUNDARY_LIKE)
    assert shown_text(mail, "html") == as_typed("<p>5 &lt; 6 &amp; <b>coats</b></p>")


@pytest.mark.parametrize(
    "line_break", ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\t"]
)
def test_a_subject_with_a_raw_line_break_is_refused_and_nothing_is_sent(
    mailroom: Mailroom, auth: TokenFactory, pupil: str, line_break: str
) -> None:
    response = _send(mailroom, auth, pupil, subject=f"Trip{line_break}Bcc: spy@evil.example")

    # The schema's pattern says a subject is one line, so the refusal is the schema's; the
    # service refuses the same for subjects it builds itself (subject_not_one_line).
    assert response.status_code == 422
    assert [p["where"] for p in response.json()["problems"]] == ["body.subject"]
    assert mailroom.deliver() == []


def _b_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": _b_word(CHAIN)},
        {"subject": "=?utf-8?q?Forward_this_to_10_people?="},
        {"body_text": f"Hello,\n{_b_word('Forward this')} {_b_word(' to 10 people')}"},
        {"body_text": "Forward=20this=20to=2010=20people"},
        {"body_text": "Forward\u200bthis\u200bto\u200b10\u200bpeople"},
        {"body_html": "<p>Forward&#32;this&nbsp;to&#x20;10 people</p>"},
    ],
)
def test_e6_an_encoded_chain_phrase_is_refused_and_nothing_is_sent(
    mailroom: Mailroom, auth: TokenFactory, pupil: str, fields: dict[str, str]
) -> None:
    response = _send(mailroom, auth, pupil, **fields)

    problem = assert_problem(response, 422, "chain_message")
    assert problem["rule"] == "E6"
    assert mailroom.deliver() == []


@pytest.mark.parametrize(
    "email",
    [
        f"=?utf-8?q?Staff=0D=0ABcc:_spy@evil.example?= <{STAFF}>",
        f'"staff\\r\\nBcc: spy@evil.example"@{DOMAIN}',
        f"Mrs Smith <{STAFF}>",
    ],
)
def test_e2_a_sign_in_address_that_is_not_a_plain_school_account_sends_nothing(
    mailroom: Mailroom, issuer: DevIssuer, pupil: str, email: str
) -> None:
    body = {"recipients": {"pupil_ids": [pupil]}, "subject": "Trip", "body_text": "Coats."}
    response = mailroom.comms.post(
        "/v1/messages", json=body, headers=headers_with_email(issuer, "staff", email)
    )

    assert_problem(response, 403, "personal_sender")
    assert mailroom.deliver() == []


@pytest.mark.parametrize(
    ("concern_subject", "reply_subject"),
    [
        (Q_REPLY_TO, f"Re: {Q_REPLY_TO}"),
        ("Lunch\r\nBcc: spy@evil.example", "Re: Lunch Bcc: spy@evil.example"),
    ],
)
def test_e7_a_pastoral_reply_carries_the_carers_subject_literally(
    mailroom: Mailroom,
    auth: TokenFactory,
    school: SchoolBuilder,
    pupil: str,
    concern_subject: str,
    reply_subject: str,
) -> None:
    guardian = school.client.get(f"/v1/pupils/{pupil}/guardians", headers=school.office).json()
    concern = mailroom.comms.post(
        "/v1/pastoral/concerns",
        json={"subject": concern_subject, "body": "Amara is upset at lunch.", "pupil_id": pupil},
        headers=auth("parent", guardian=guardian[0]["id"]),
    )
    assert concern.status_code == 201, concern.text
    reply = mailroom.comms.post(
        f"/v1/pastoral/concerns/{concern.json()['id']}/replies",
        json={"body_text": "We will talk to Amara today.", "sensitivity": "normal"},
        headers=auth("dsl"),
    )
    assert reply.status_code == 202, reply.text

    notice, answer = sorted(mailroom.deliver(), key=lambda mail: str(mail["To"]))

    assert_school_mail(
        notice,
        sender=OFFICE,
        to=[DSL],
        cc=[],
        subject="A new concern is waiting in the pastoral inbox",
    )
    assert concern_subject not in shown_text(notice)
    assert_school_mail(answer, sender=DSL, to=[CARER], cc=[HEAD, DEPUTY], subject=reply_subject)
    assert shown_text(answer) == as_typed("We will talk to Amara today.")


def test_e10_a_report_notice_carries_the_description_literally(
    mailroom: Mailroom, auth: TokenFactory, school: SchoolBuilder, pupil: str
) -> None:
    description = f"It said {Q_REPLY_TO}\n--===============0123456789012345678==\nand more."
    guardian = school.client.get(f"/v1/pupils/{pupil}/guardians", headers=school.office).json()
    response = mailroom.comms.post(
        "/v1/reports",
        json={"received_from": "someone@elsewhere.example", "description": description},
        headers=auth("parent", guardian=guardian[0]["id"]),
    )
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]

    (notice,) = mailroom.deliver()

    assert_school_mail(
        notice,
        sender=OFFICE,
        to=[DSL],
        cc=[],
        subject=f"Offensive message reported: {reference}",
    )
    assert f"What they said:\n{description}\n" in shown_text(notice)
