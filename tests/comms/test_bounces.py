"""Bounces: delivery status notifications (RFC 3464) read from a loopback IMAP mailbox, matched
to envelopes by Message-ID, turning them bounced for the sender and in the family history (E3);
read once; hostile or unrelated mail never stops the reader.

The reports are shaped like the ones Exchange Online and Gmail send (multipart/report with a
message/delivery-status part and the returned message or its headers). Runs on SQLite and, when
HALLPASS_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from hallpass_comms import migrations
from hallpass_comms.bounces import BounceMailbox, BounceMailboxError, Unreadable, parse_report
from hallpass_comms.delivery.oauth import MICROSOFT_SMTP_SCOPE
from hallpass_comms.messages.service import view
from hallpass_comms.models import Base, Delivery, DeliveryStatus, MailBounce, Message
from hallpass_comms.settings import CommsSettings
from hallpass_kit.db import Database
from tests import databases
from tests.comms.conftest import FrozenClock, delivery_worker, sent
from tests.comms.imap import ImapMailbox
from tests.comms.providers import CLIENT_ID, CLIENT_SECRET, TENANT, ProviderStandIn
from tests.comms.test_delivery import (
    HEAD,
    audit_entries,
    audit_intact,
    family_addresses,
    queue_message,
    rows,
)
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.databases import BACKENDS

USER, PASSWORD = "bounces@oakfield.sch.uk", "correct horse battery staple"
LIMIT = 200_000


@pytest.fixture(scope="session")
def bounces_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("comms-bounces-template"), "comms.db", migrations.upgrade
    )


@pytest.fixture(scope="session")
def bounces_postgres_database() -> Iterator[str]:
    with databases.postgres_database("comms_bounces", migrations.upgrade) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = databases.sqlite_copy(
            request.getfixturevalue("bounces_sqlite_template"), tmp_path
        )
    else:
        database = databases.emptied(
            request.getfixturevalue("bounces_postgres_database"), Base.metadata
        )
    yield database
    database.dispose()


@pytest.fixture
def imap() -> Iterator[ImapMailbox]:
    with ImapMailbox(USER, PASSWORD) as server:
        yield server


def reader(db: Database, imap: ImapMailbox, clock: FrozenClock, **changes: object) -> BounceMailbox:
    settings = CommsSettings(
        bounce_imap_host="127.0.0.1",
        bounce_imap_port=imap.port,
        bounce_imap_security="none",
        bounce_imap_username=USER,
        bounce_imap_password=SecretStr(PASSWORD),
        bounce_max_message_bytes=LIMIT,
        **changes,  # type: ignore[arg-type]
    )
    return BounceMailbox(settings, db, clock=clock)


# --------------------------------------------------------------------------------------------
# Reports as the providers send them


def returned_headers(envelope: Delivery) -> str:
    return (
        f"Message-ID: {envelope.message_id_header}\r\n"
        "From: teacher@oakfield.sch.uk\r\n"
        f"To: {envelope.to_addresses[0]}\r\n"
        "Subject: Year 4 trip to the museum\r\n"
        f"X-Hallpass-Delivery: {envelope.id}\r\n"
    )


def exchange_report(envelope: Delivery, recipient: str) -> bytes:
    """Exchange Online's non-delivery report: human parts, the status, the returned headers."""
    return (
        "From: Microsoft Outlook\r\n"
        " <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@oakfield.sch.uk>\r\n"
        "To: teacher@oakfield.sch.uk\r\n"
        "Date: Wed, 18 Nov 2026 10:05:12 +0000\r\n"
        "Subject: Undeliverable: Year 4 trip to the museum\r\n"
        "Message-ID: <a1b2c3d4-ndr@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="ndr-1"\r\n'
        "\r\n"
        "--ndr-1\r\n"
        'Content-Type: multipart/alternative; boundary="ndr-2"\r\n'
        "\r\n"
        "--ndr-2\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "Your message to " + recipient + " couldn't be delivered.\r\n"
        "--ndr-2\r\n"
        "Content-Type: text/html; charset=us-ascii\r\n"
        "\r\n"
        "<p>Your message couldn't be delivered.</p>\r\n"
        "--ndr-2--\r\n"
        "\r\n"
        "--ndr-1\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\r\n"
        "Received-From-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\r\n"
        "Arrival-Date: Wed, 18 Nov 2026 10:05:10 +0000\r\n"
        "\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Final-Recipient: rfc822;{recipient}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.10\r\n"
        "Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found "
        "by SMTP address lookup\r\n"
        "\r\n"
        "--ndr-1\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n" + returned_headers(envelope) + "\r\n"
        "--ndr-1--\r\n"
    ).encode()


def gmail_report(envelope: Delivery, recipient: str, *, delayed: bool = False) -> bytes:
    """Gmail's Delivery Status Notification, with the whole returned message."""
    action, status = ("delayed", "4.4.7") if delayed else ("failed", "5.1.1")
    words = (
        "421-4.4.7 The recipient server did not accept our requests"
        if delayed
        else "550-5.1.1 The email account that you tried to reach does not exist."
    )
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
        "To: teacher@oakfield.sch.uk\r\n"
        "Date: Wed, 18 Nov 2026 10:06:00 -0800\r\n"
        f"Subject: Delivery Status Notification ({'Delay' if delayed else 'Failure'})\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mx.google.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; boundary="gm-1"; report-type=delivery-status\r\n'
        "\r\n"
        "--gm-1\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "\r\n"
        "Address not found\r\n"
        "--gm-1\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; googlemail.com\r\n"
        "Arrival-Date: Wed, 18 Nov 2026 10:05:59 -0800 (PST)\r\n"
        "X-Original-Message-ID: " + envelope.message_id_header + "\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.parents.example.org. (192.0.2.25, the server for the domain "
        "parents.example.org.)\r\n"
        f"Diagnostic-Code: smtp; {words}\r\n"
        "Last-Attempt-Date: Wed, 18 Nov 2026 10:06:00 -0800 (PST)\r\n"
        "\r\n"
        "--gm-1\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n" + returned_headers(envelope) + "Content-Type: text/plain\r\n"
        "\r\n"
        "Dear families, the coach leaves at 9:15.\r\n"
        "\r\n"
        "--gm-1--\r\n"
    ).encode()


NOT_A_REPORT = (
    b"From: carer.0001.a@parents.example.org\r\nTo: bounces@oakfield.sch.uk\r\n"
    b"Subject: Re: Year 4 trip\r\nMessage-ID: <reply-1@parents.example.org>\r\n\r\n"
    b"Thank you, she will bring a coat.\r\n"
)
MALFORMED = (
    b"From: mailer-daemon@example.net\r\nSubject: failure\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n'
    b"--x\r\nContent-Type: message/delivery-status\r\n\r\n\xff\xfe garbage: \x00\r\n"
    b"Action: exploded\r\n--x"
)


def one_family_envelopes(db: Database, count: int) -> tuple[Message, list[Delivery]]:
    """Sent envelopes to one carer each (so one failed address is the whole envelope)."""
    return queue_message(
        db,
        families=[family_addresses(n)[:1] for n in range(1, count + 1)],
        due_at=dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC),
        status=DeliveryStatus.sent,
    )


# --------------------------------------------------------------------------------------------
# Reading the mailbox


def test_e3_reports_turn_their_envelopes_bounced_for_the_sender_and_are_read_once(
    db: Database, imap: ImapMailbox, clock: FrozenClock
) -> None:
    message, (exchange, gmail, delayed, untouched) = one_family_envelopes(db, 4)
    uids = {
        "exchange": imap.add(exchange_report(exchange, exchange.to_addresses[0])),
        "gmail": imap.add(gmail_report(gmail, gmail.to_addresses[0])),
        "delayed": imap.add(gmail_report(delayed, delayed.to_addresses[0], delayed=True)),
        "reply": imap.add(NOT_A_REPORT),
        "malformed": imap.add(MALFORMED),
        "huge": imap.add(b"Subject: big\r\n\r\n" + b"x" * (LIMIT + 1)),
    }

    report = reader(db, imap, clock).read_once()

    assert (report.reports, report.bounced, report.delayed, report.left) == (3, 2, 1, 3)
    after = rows(db)
    assert after[exchange.id].status is DeliveryStatus.bounced
    assert after[gmail.id].status is DeliveryStatus.bounced
    assert after[delayed.id].status is DeliveryStatus.sent  # delayed is news, not a failure
    assert after[untouched.id].status is DeliveryStatus.sent
    assert "5.1.10" in (after[exchange.id].last_error or "")
    # Reports are flagged read; mail for a person, and what could not be read, is left.
    assert {name: imap.seen(uid) for name, uid in uids.items()} == {
        "exchange": True,
        "gmail": True,
        "delayed": True,
        "reply": False,
        "malformed": False,
        "huge": False,
    }
    # What the sender sees of the message (GET /v1/messages/{id}).
    with db.session() as session:
        shown = view(session, session.get(Message, message.id))  # type: ignore[arg-type]
    by_id = {d.id: d for d in shown.deliveries}
    assert by_id[exchange.id].status is DeliveryStatus.bounced
    assert [(b.action, b.status) for b in by_id[exchange.id].bounces] == [("failed", "5.1.10")]
    assert [(b.action, b.status) for b in by_id[delayed.id].bounces] == [("delayed", "4.4.7")]
    actions = [e.action for e in audit_entries(db)]
    assert actions.count("mail.bounced") == 2
    assert actions.count("mail.delayed") == 1
    assert audit_intact(db)

    # The next pass finds nothing new: each report was read once.
    again = reader(db, imap, clock).read_once()
    assert (again.reports, again.bounced) == (0, 0)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailBounce)) == 3


def test_a_report_read_twice_records_its_lines_once(
    db: Database, imap: ImapMailbox, clock: FrozenClock
) -> None:
    _message, (envelope,) = one_family_envelopes(db, 1)
    raw = exchange_report(envelope, envelope.to_addresses[0])
    imap.add(raw)
    imap.add(raw)  # the provider sent it twice, or a crash came before it was flagged

    report = reader(db, imap, clock).read_once()

    assert report.reports == 2
    assert report.bounced == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailBounce)) == 1


def test_a_bounced_leadership_copy_does_not_fail_the_familys_envelope(
    db: Database, imap: ImapMailbox, clock: FrozenClock
) -> None:
    _message, (envelope,) = one_family_envelopes(db, 1)
    imap.add(exchange_report(envelope, HEAD))

    reader(db, imap, clock).read_once()

    assert rows(db)[envelope.id].status is DeliveryStatus.sent
    with db.session() as session:
        assert session.scalar(select(MailBounce.recipient)) == HEAD


def test_a_report_about_no_envelope_of_ours_is_flagged_and_changes_nothing(
    db: Database, imap: ImapMailbox, clock: FrozenClock
) -> None:
    _message, (envelope,) = one_family_envelopes(db, 1)
    stranger = Delivery(
        id=uuid.uuid4(),
        message_id_header="<someone-else@example.net>",
        to_addresses=["x@example.net"],
    )
    uid = imap.add(gmail_report(stranger, "x@example.net"))

    report = reader(db, imap, clock).read_once()

    assert report.unmatched == 1
    assert imap.seen(uid)
    assert rows(db)[envelope.id].status is DeliveryStatus.sent


def test_a_wrong_password_is_a_mailbox_error_not_a_crash(
    db: Database, imap: ImapMailbox, clock: FrozenClock
) -> None:
    settings = CommsSettings(
        bounce_imap_host="127.0.0.1",
        bounce_imap_port=imap.port,
        bounce_imap_security="none",
        bounce_imap_username=USER,
        bounce_imap_password=SecretStr("wrong"),
    )
    with pytest.raises(BounceMailboxError):
        BounceMailbox(settings, db, clock=clock).read_once()


def test_the_bounce_mailbox_logs_in_with_the_schools_microsoft_app_token(
    db: Database, clock: FrozenClock
) -> None:
    stand_in = ProviderStandIn()
    stand_in.start()

    def accept(user: str, token: str) -> bool:
        grant = stand_in.grant_for(token)
        return grant is not None and grant.scope == MICROSOFT_SMTP_SCOPE

    settings = CommsSettings.model_validate(
        {
            "microsoft_tenant_id": TENANT,
            "microsoft_client_id": CLIENT_ID,
            "microsoft_client_secret": CLIENT_SECRET,
            "microsoft_login_url": stand_in.url,
            "bounce_imap_host": "127.0.0.1",
            "bounce_imap_security": "none",
            "bounce_imap_username": USER,
            "bounce_imap_auth": "microsoft",
        }
    )
    try:
        with ImapMailbox(USER, PASSWORD, accept_token=accept) as imap:
            _message, (envelope,) = one_family_envelopes(db, 1)
            imap.add(exchange_report(envelope, envelope.to_addresses[0]))
            mailbox = BounceMailbox(
                settings.model_copy(update={"bounce_imap_port": imap.port}), db, clock=clock
            )

            assert mailbox.read_once().bounced == 1
            # A token the provider stopped honouring is forgotten, and the next pass gets a new one.
            stand_in.revoke_all()
            with pytest.raises(BounceMailboxError):
                mailbox.read_once()
            assert mailbox.read_once().reports == 0
            assert imap.logins == 2
            assert len(stand_in.issued) == 2
    finally:
        stand_in.stop()
    assert rows(db)[envelope.id].status is DeliveryStatus.bounced


def test_reading_in_clear_is_refused_for_anything_but_loopback(db: Database) -> None:
    settings = CommsSettings(
        bounce_imap_host="imap.example.org",
        bounce_imap_security="none",
        bounce_imap_username=USER,
        bounce_imap_password=SecretStr(PASSWORD),
    )
    with pytest.raises(ValueError, match="loopback"):
        BounceMailbox(settings, db)


def test_e3_a_bounce_shows_in_the_family_history_and_to_the_sender(
    comms: TestClient,
    comms_app: FastAPI,
    comms_db: Database,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
    imap: ImapMailbox,
) -> None:
    family = school.family()
    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})
    assert delivery_worker(comms_app).run_until_idle() == 1
    (envelope,) = rows(comms_db).values()
    imap.add(gmail_report(envelope, envelope.to_addresses[0]))

    assert reader(comms_db, imap, clock).read_once().bounced == 1

    history = comms.get(f"/v1/families/{family.pupil_id}/messages", headers=auth("head"))
    assert history.status_code == 200, history.text
    (entry,) = history.json()["items"]
    assert entry["delivery_statuses"] == ["bounced"]
    assert [(b["action"], b["status"]) for b in entry["bounces"]] == [("failed", "5.1.1")]
    read = comms.get(f"/v1/messages/{receipt['id']}", headers=auth("staff")).json()
    (delivery,) = read["deliveries"]
    assert delivery["status"] == "bounced"
    assert delivery["last_error"].startswith("bounced: ")


# --------------------------------------------------------------------------------------------
# Parsing hostile input


def test_hostile_reports_are_unreadable_never_a_crash() -> None:
    deep = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b0\r\n\r\n"
    for level in range(1, 400):
        deep += (
            f"--b{level - 1}\r\nContent-Type: multipart/mixed; boundary=b{level}\r\n\r\n".encode()
        )
    cases = [MALFORMED, deep, b"\x00" * 1000, b"Content-Type: multipart/report\r\n\r\n--"]
    for raw in cases:
        try:
            parsed = parse_report(raw, max_bytes=LIMIT)
        except Unreadable:
            continue
        assert parsed is None
    with pytest.raises(Unreadable, match="more than"):
        parse_report(b"x" * (LIMIT + 1), max_bytes=LIMIT)


def test_a_report_is_matched_by_its_returned_message_id() -> None:
    envelope = Delivery(
        id=uuid.uuid4(),
        message_id_header=f"<{uuid.uuid4()}@oakfield.sch.uk>",
        to_addresses=["carer@parents.example.org"],
    )

    parsed = parse_report(gmail_report(envelope, "Carer@Parents.example.org"), max_bytes=LIMIT)

    assert parsed is not None
    assert parsed.original_message_id == envelope.message_id_header
    assert parsed.delivery_key == str(envelope.id)
    (line,) = parsed.recipients
    assert (line.recipient, line.action, line.status, line.failed) == (
        "carer@parents.example.org",
        "failed",
        "5.1.1",
        True,
    )
    assert line.diagnostic is not None
    assert line.diagnostic.startswith("550-5.1.1")
