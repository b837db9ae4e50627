"""Provider sending limits: per-mailbox and per-transport windows kept in the database, shared
by every worker; throttling answers that slow a mailbox without using up attempts; and the 202's
forecast of when a send's last envelope leaves.

The worker and the API run on a frozen clock the test moves by hand; mail goes to a real SMTP
server on loopback. Runs on SQLite and, when HALLPASS_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_comms import migrations
from hallpass_comms.app import create_app
from hallpass_comms.delivery import DeliveryWorker, EmlFolderTransport, SmtpTransport
from hallpass_comms.delivery.graph import GraphTransport
from hallpass_comms.delivery.limits import (
    PROVIDER_LIMITS,
    Limit,
    Pacer,
    SendingLimits,
    Slot,
    Wait,
)
from hallpass_comms.messages.service import expected_last_at
from hallpass_comms.models import Base, DeliveryStatus, MailPace
from hallpass_comms.settings import CommsSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings
from tests import databases
from tests.comms.conftest import FrozenClock, delivery_worker, sent
from tests.comms.providers import CLIENT_ID, CLIENT_SECRET, TENANT, Answer, ProviderStandIn
from tests.comms.smtp import SmtpServer
from tests.comms.test_delivery import (
    BASE_URL,
    SENDER,
    audit_entries,
    family_addresses,
    queue_message,
    rows,
    smtp_settings,
)
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.databases import BACKENDS

MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="session")
def limits_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("comms-limits-template"), "comms.db", migrations.upgrade
    )


@pytest.fixture(scope="session")
def limits_postgres_database() -> Iterator[str]:
    with databases.postgres_database("comms_limits", migrations.upgrade) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = databases.sqlite_copy(
            request.getfixturevalue("limits_sqlite_template"), tmp_path
        )
    else:
        database = databases.emptied(
            request.getfixturevalue("limits_postgres_database"), Base.metadata
        )
    yield database
    database.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def transport(smtp: SmtpServer) -> Iterator[SmtpTransport]:
    smtp_transport = SmtpTransport(smtp_settings(smtp))
    yield smtp_transport
    smtp_transport.close()


def limited(
    messages_per_minute: int = 0, messages_per_day: int = 0, recipients_per_day: int = 0
) -> SendingLimits:
    return SendingLimits(
        mailbox=Limit(
            messages_per_minute=messages_per_minute,
            messages_per_day=messages_per_day,
            recipients_per_day=recipients_per_day,
        )
    )


def worker(
    db: Database,
    transport: SmtpTransport,
    clock: FrozenClock,
    limits: SendingLimits,
    **options: Any,
) -> DeliveryWorker:
    return DeliveryWorker(
        db, transport, public_base_url=BASE_URL, clock=clock, limits=limits, **options
    )


def statuses(database: Database) -> dict[DeliveryStatus, int]:
    found: dict[DeliveryStatus, int] = {}
    for row in rows(database).values():
        found[row.status] = found.get(row.status, 0) + 1
    return found


# --------------------------------------------------------------------------------------------
# Defaults per provider


def test_provider_defaults_follow_the_transport_and_settings_override_them() -> None:
    office365 = CommsSettings(smtp_host="smtp.office365.com")
    gmail = CommsSettings(smtp_host="smtp.gmail.com")

    assert SendingLimits.from_settings(office365).mailbox == Limit(
        messages_per_minute=30, recipients_per_day=10_000
    )
    assert SendingLimits.from_settings(gmail).mailbox == Limit(
        messages_per_day=2_000, recipients_per_day=10_000
    )
    # The .eml folder is not a provider: nothing to keep to.
    assert not SendingLimits.from_settings(CommsSettings()).active
    # 0 turns one limit off; the others keep the provider's value.
    tuned = CommsSettings(
        smtp_host="smtp.office365.com", limit_messages_per_minute=0, limit_recipients_per_day=500
    )
    assert SendingLimits.from_settings(tuned).mailbox == Limit(recipients_per_day=500)
    assert PROVIDER_LIMITS["none"].unlimited


# --------------------------------------------------------------------------------------------
# Messages a minute, recipients a day


def test_30_a_minute_the_31st_waits_for_the_next_minute_without_using_an_attempt(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    _message, deliveries = queue_message(
        db, families=[family_addresses(n) for n in range(1, 32)], due_at=clock.now
    )
    sender = worker(db, transport, clock, limited(messages_per_minute=30))
    start = clock.now

    assert sender.run_until_idle() == 30
    waiting = [r for r in rows(db).values() if r.status is not DeliveryStatus.sent]
    assert len(waiting) == 1
    assert waiting[0].due_at == start + MINUTE
    assert waiting[0].attempts == 0

    clock.now += MINUTE - dt.timedelta(seconds=1)
    assert sender.run_until_idle() == 0
    clock.now += dt.timedelta(seconds=1)
    assert sender.run_until_idle() == 1
    assert smtp.count_by_message_id() == {d.message_id_header: 1 for d in deliveries}


def test_a_rolling_minute_counts_sends_of_the_last_60_seconds_only(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(n) for n in range(1, 5)], due_at=clock.now)
    sender = worker(db, transport, clock, limited(messages_per_minute=2), batch_size=1)
    first = clock.now

    assert sender.run_once() == 1
    clock.now += dt.timedelta(seconds=30)
    assert sender.run_once() == 1
    assert sender.run_once() == 0  # two in the last minute: the third waits for the first to age

    clock.now = first + MINUTE
    assert sender.run_once() == 1
    assert sender.run_once() == 0
    clock.now = first + MINUTE + dt.timedelta(seconds=30)
    assert sender.run_once() == 1
    assert len(smtp.received) == 4


def test_recipients_a_day_count_to_and_cc_and_wait_a_rolling_day(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    # Each envelope: two carers and the head copied, three recipients.
    queue_message(db, families=[family_addresses(n) for n in range(1, 6)], due_at=clock.now)
    sender = worker(db, transport, clock, limited(recipients_per_day=10))
    start = clock.now

    assert sender.run_until_idle() == 3
    assert {r.due_at for r in rows(db).values() if r.status is DeliveryStatus.queued} == {
        start + DAY
    }

    clock.now += DAY - dt.timedelta(seconds=1)
    assert sender.run_until_idle() == 0
    clock.now += dt.timedelta(seconds=1)
    assert sender.run_until_idle() == 2
    assert statuses(db) == {DeliveryStatus.sent: 5}


def test_messages_a_day_hold_the_rest_for_the_rolling_day(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(n) for n in range(1, 5)], due_at=clock.now)
    sender = worker(db, transport, clock, limited(messages_per_day=3))

    assert sender.run_until_idle() == 3
    clock.now += DAY
    assert sender.run_until_idle() == 1


def test_a_transport_limit_counts_every_mailbox_together(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(n) for n in range(1, 4)], due_at=clock.now)
    limits = SendingLimits(transport=Limit(messages_per_minute=2))
    sender = worker(db, transport, clock, limits)

    assert sender.run_until_idle() == 2
    clock.now += MINUTE
    assert sender.run_until_idle() == 1


def test_an_envelope_too_big_for_a_whole_day_fails_with_the_reason(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(1)], due_at=clock.now)
    sender = worker(db, transport, clock, limited(recipients_per_day=2))

    assert sender.run_until_idle() == 0
    (row,) = rows(db).values()
    assert row.status is DeliveryStatus.failed
    assert row.last_error is not None
    assert "2 a day" in row.last_error
    assert smtp.received == []


# --------------------------------------------------------------------------------------------
# Shared by every worker


def test_two_workers_at_once_share_one_mailbox_limit_and_send_each_envelope_once(
    db: Database, smtp: SmtpServer, clock: FrozenClock
) -> None:
    _message, deliveries = queue_message(
        db, families=[family_addresses(n) for n in range(1, 101)], due_at=clock.now
    )
    transports = [SmtpTransport(smtp_settings(smtp)) for _ in range(2)]
    workers = [
        worker(db, t, clock, limited(messages_per_minute=30), batch_size=7, worker_id=f"w{i}")
        for i, t in enumerate(transports)
    ]
    ready = threading.Barrier(2)
    totals: list[int] = []

    def run(one: DeliveryWorker) -> None:
        ready.wait(10)
        totals.append(one.run_until_idle())

    for minute in range(4):
        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # Never more than 30 in any minute, whichever worker sent them.
        assert sum(totals) == min(30 * (minute + 1), 100)
        clock.now += MINUTE
    for t in transports:
        t.close()

    assert smtp.count_by_message_id() == {d.message_id_header: 1 for d in deliveries}
    assert all(r.attempts == 1 for r in rows(db).values())


# --------------------------------------------------------------------------------------------
# Throttling answers


@pytest.mark.parametrize(
    "reply",
    ["421 4.7.0 Try again later, closing connection", "451 4.7.0 Temporary server error"],
)
def test_a_throttling_answer_uses_no_attempt_and_slows_the_mailbox(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock, reply: str
) -> None:
    queue_message(db, families=[family_addresses(n) for n in range(1, 11)], due_at=clock.now)
    smtp.handler.throttle(reply)
    sender = worker(db, transport, clock, limited(messages_per_minute=30))

    assert sender.run_until_idle() == 0
    with db.session() as session:
        pace = session.get(MailPace, SENDER)
        assert pace is not None
        assert pace.held_until is not None
        held_until, pace_now = pace.held_until, pace.pace
    assert pace_now == 0.5
    assert held_until > clock.now
    # Every envelope of the mailbox waits for the hold, none with an attempt used.
    assert {r.attempts for r in rows(db).values()} == {0}
    assert {r.due_at for r in rows(db).values()} == {held_until}
    deferred = [e for e in audit_entries(db) if e.action == "mail.deferred"]
    assert [e.outcome for e in deferred] == ["throttled"]

    clock.now = held_until
    # At half pace: 15 this minute, not 30.
    assert sender.run_until_idle() == 10
    assert len(smtp.received) == 10
    assert {r.attempts for r in rows(db).values()} == {1}


def test_half_pace_lets_15_of_30_a_minute_through_and_recovers_by_itself(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(n) for n in range(1, 41)], due_at=clock.now)
    limits = limited(messages_per_minute=30)
    sender = worker(db, transport, clock, limits)
    until = sender.pacer.throttled(SENDER, retry_after=0)
    assert until == clock.now

    assert sender.run_until_idle() == 15
    # The pace doubles back every five minutes: full speed again after that.
    clock.now += dt.timedelta(minutes=5)
    assert sender.run_until_idle() == 25


def test_retry_after_holds_the_mailbox_for_every_worker_until_then(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(1)], due_at=clock.now)
    limits = limited(messages_per_minute=30)
    first = Pacer(db, limits, clock=clock)
    other = worker(db, transport, clock, limits)

    until = first.throttled(SENDER, retry_after=120)

    assert until == clock.now + dt.timedelta(seconds=120)
    assert other.run_until_idle() == 0
    (row,) = rows(db).values()
    assert (row.due_at, row.attempts) == (until, 0)
    clock.now = until
    assert other.run_until_idle() == 1


def test_graph_429_retry_after_holds_the_mailbox_that_long_without_an_attempt(
    db: Database, clock: FrozenClock
) -> None:
    stand_in = ProviderStandIn()
    stand_in.access_policy = {SENDER}
    stand_in.start()
    settings = CommsSettings.model_validate(
        {
            "mail_transport": "graph",
            "microsoft_tenant_id": TENANT,
            "microsoft_client_id": CLIENT_ID,
            "microsoft_client_secret": CLIENT_SECRET,
            "microsoft_login_url": stand_in.url,
            "microsoft_graph_url": stand_in.url,
        }
    )
    graph = GraphTransport(settings)
    try:
        queue_message(db, families=[family_addresses(n) for n in range(1, 4)], due_at=clock.now)
        stand_in.answer_next(
            "graph",
            Answer(
                429,
                {"error": {"code": "ApplicationThrottled", "message": "MailboxConcurrency"}},
                {"Retry-After": "120"},
            ),
        )
        # Graph is Microsoft: Exchange Online's limits apply without being configured.
        limits = SendingLimits.from_settings(settings)
        assert limits.mailbox.messages_per_minute == 30
        sender = DeliveryWorker(db, graph, public_base_url=BASE_URL, clock=clock, limits=limits)
        start = clock.now

        assert sender.run_until_idle() == 0
        assert {(r.due_at, r.attempts) for r in rows(db).values()} == {
            (start + dt.timedelta(seconds=120), 0)
        }
        (deferred,) = [e for e in audit_entries(db) if e.action == "mail.deferred"]
        assert deferred.outcome == "throttled"
        assert deferred.details["retry_after"] == 120

        clock.now = start + dt.timedelta(seconds=119)
        assert sender.run_until_idle() == 0
        clock.now = start + dt.timedelta(seconds=120)
        assert sender.run_until_idle() == 3
        assert len(stand_in.delivered) == 3
    finally:
        graph.close()
        stand_in.stop()


def test_without_limits_a_throttle_still_holds_the_mailbox_in_this_worker(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    queue_message(db, families=[family_addresses(n) for n in range(1, 4)], due_at=clock.now)
    smtp.handler.throttle("451 4.7.0 Temporary server error")
    sender = worker(db, transport, clock, SendingLimits())

    assert sender.run_until_idle() == 0
    assert {r.attempts for r in rows(db).values()} == {0}
    clock.now += dt.timedelta(minutes=15)
    assert sender.run_until_idle() == 3


def test_a_cancelled_slot_frees_it_for_the_next_envelope(db: Database, clock: FrozenClock) -> None:
    pacer = Pacer(db, limited(messages_per_minute=1), clock=clock)
    slot = pacer.reserve(SENDER, 1, uuid.uuid4())
    assert isinstance(slot, Slot)
    assert isinstance(pacer.reserve(SENDER, 1, uuid.uuid4()), Wait)
    pacer.cancel(slot)
    assert isinstance(pacer.reserve(SENDER, 1, uuid.uuid4()), Slot)


# --------------------------------------------------------------------------------------------
# The forecast


def test_the_forecast_counts_the_queue_ahead_and_the_worker_keeps_to_it(
    db: Database, transport: SmtpTransport, smtp: SmtpServer, clock: FrozenClock
) -> None:
    limits = limited(messages_per_minute=30)
    # Sent a moment earlier by the same member of staff: ahead in the queue.
    queue_message(
        db,
        families=[family_addresses(n) for n in range(1, 46)],
        due_at=clock.now - dt.timedelta(seconds=1),
    )
    ours, deliveries = queue_message(
        db, families=[family_addresses(n) for n in range(100, 120)], due_at=clock.now
    )
    start = clock.now
    with db.session() as session:
        expected = expected_last_at(
            session, limits, SENDER, [3] * 20, start, start, message_id=ours.id
        )
    # 45 ahead and 20 ours at 30 a minute: 30 now, 30 a minute later, the last 5 after two.
    assert expected == start + 2 * MINUTE

    sender = worker(db, transport, clock, limits)
    while statuses(db).get(DeliveryStatus.sent, 0) < 65:
        sender.run_until_idle()
        clock.now += dt.timedelta(seconds=1)
    ours_sent = [rows(db)[d.id].sent_at for d in deliveries]
    assert max(t for t in ours_sent if t is not None) == expected


# --------------------------------------------------------------------------------------------
# Through the API: the 202, the message view and the family history


@pytest.fixture
def comms_app(
    comms_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    clock: FrozenClock,
    outbox: Path,
) -> FastAPI:
    return create_app(
        common=common_settings,
        settings=CommsSettings(reminder_within_days=0, limit_messages_per_minute=2),
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(outbox),
        clock=clock,
    )


def test_the_202_says_when_the_last_envelope_leaves_and_history_shows_it(
    comms: TestClient,
    comms_app: FastAPI,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    oak = school.school_class()
    families = [school.family(f"Pupil{n}", "Shaw", class_id=oak) for n in range(5)]
    start = clock()

    preview = comms.post(
        "/v1/messages:preview",
        json={"recipients": {"class_ids": [oak]}, "subject": "Trip", "body_text": "Coats."},
        headers=auth("staff"),
    ).json()
    receipt = sent(comms, auth("staff"), {"class_ids": [oak]})

    # Five envelopes at two a minute: two now, two a minute later, the last after two minutes.
    expected = start + 2 * MINUTE
    assert dt.datetime.fromisoformat(receipt["expected_last_at"]) == expected
    assert dt.datetime.fromisoformat(preview["expected_last_at"]) == expected
    read = comms.get(f"/v1/messages/{receipt['id']}", headers=auth("staff")).json()
    assert read["expected_last_at"] == receipt["expected_last_at"]
    history = comms.get(
        f"/v1/families/{families[0].pupil_id}/messages", headers=auth("head")
    ).json()
    assert history["items"][0]["expected_last_at"] == receipt["expected_last_at"]

    sender = delivery_worker(comms_app)
    sent_times: list[dt.datetime] = []
    for _ in range(3):
        sender.run_until_idle()
        clock.advance(minutes=1)
    view = comms.get(f"/v1/messages/{receipt['id']}", headers=auth("staff")).json()
    sent_times = [dt.datetime.fromisoformat(d["sent_at"]) for d in view["deliveries"]]
    assert max(sent_times) == expected
    assert {d["attempts"] for d in view["deliveries"]} == {1}


def test_without_limits_the_202_has_no_forecast(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    comms_app: FastAPI,
) -> None:
    delivery_worker(comms_app).pacer.limits = SendingLimits()
    family = school.family()

    receipt = sent(comms, auth("staff"), {"pupil_ids": [family.pupil_id]})

    assert receipt["expected_last_at"] is None


def test_e8_mail_held_for_the_morning_is_forecast_from_the_morning(
    comms: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    oak = school.school_class()
    for n in range(3):
        school.family(f"Pupil{n}", "Shaw", class_id=oak)
    # Wednesday 18 November 2026, 19:00 in London: after school, held for the morning (E8).
    clock.now = dt.datetime(2026, 11, 18, 19, 0, tzinfo=dt.UTC)

    receipt = sent(comms, auth("staff"), {"class_ids": [oak]})

    morning = dt.datetime.fromisoformat(receipt["scheduled_for"])
    # Three envelopes at two a minute from the morning send: the last a minute after it.
    assert dt.datetime.fromisoformat(receipt["expected_last_at"]) == morning + MINUTE
