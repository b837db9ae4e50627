"""The outbox on the job engine: replicas of the dispatcher deliver each event once, a
dispatcher that dies mid-delivery loses nothing, and an event no subscriber ever takes ends as a
dead letter instead of being retried for ever.

Runs on SQLite and, when HALLPASS_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hallpass_kit.db import Database, new_metadata, utcnow
from hallpass_kit.outbox import Dispatcher, Event, emit
from hallpass_kit.tables import define_kit_tables
from tests import databases
from tests.databases import BACKENDS, POSTGRES_URL

metadata = new_metadata()
kit_tables = define_kit_tables(metadata)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


def create_schema(database: Database) -> None:
    metadata.create_all(database.engine)


@pytest.fixture(scope="session")
def outbox_postgres_url() -> Iterator[str]:
    with databases.postgres_database("jobs_outbox", create_schema) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'outbox.db'}")
        create_schema(database)
    else:
        database = databases.emptied(request.getfixturevalue("outbox_postgres_url"), metadata)
    yield database
    database.dispose()


def withdrawals(database: Database, count: int, *, at: dt.datetime) -> list[uuid.UUID]:
    with database.session() as session:
        return [
            emit(
                session,
                kit_tables,
                type="consent.changed",
                school="oakfield",
                payload={"purpose": "website_photo", "n": n},
                now=at,
            )
            for n in range(count)
        ]


def outbox_row(database: Database, event_id: uuid.UUID) -> dict[str, object]:
    t = kit_tables.outbox_event
    with database.session(read_only=True) as session:
        return dict(session.execute(select(t).where(t.c.id == event_id)).mappings().one())


def test_an_event_held_by_a_dispatcher_that_died_is_delivered_by_another_once_its_lease_lapses(
    db: Database,
) -> None:
    clock = Clock(utcnow().replace(microsecond=0))
    (event_id,) = withdrawals(db, 1, at=clock.now)
    died = Dispatcher(db, kit_tables, service="consent", clock=clock)
    survivor = Dispatcher(db, kit_tables, service="consent", clock=clock)
    received: list[uuid.UUID] = []
    survivor.subscribe("consent.changed", "media", lambda event: received.append(event.id))

    assert len(died.jobs.claim(10)) == 1  # and then its process ended
    assert survivor.dispatch_pending() == 0
    clock.advance(dt.timedelta(minutes=5, seconds=1))
    assert survivor.dispatch_pending() == 1

    assert received == [event_id]
    assert outbox_row(db, event_id)["attempts"] == 2


def test_an_event_no_subscriber_ever_takes_ends_as_a_dead_letter(db: Database) -> None:
    clock = Clock(utcnow().replace(microsecond=0))
    (event_id,) = withdrawals(db, 1, at=clock.now)
    dispatcher = Dispatcher(db, kit_tables, service="consent", clock=clock, max_attempts=3)

    def unreachable(_event: Event) -> None:
        raise ConnectionError("media service unreachable")

    dispatcher.subscribe("consent.changed", "media", unreachable)
    for _ in range(4):
        dispatcher.dispatch_pending()
        clock.advance(dt.timedelta(minutes=11))

    dead = outbox_row(db, event_id)
    assert dead["dead_at"] is not None
    assert dead["dispatched_at"] is None
    assert str(dead["last_error"]).startswith("gave up after 3 attempts: media: ConnectionError")
    assert [row["id"] for row in dispatcher.jobs.dead_letters()] == [event_id]


def test_two_dispatchers_running_side_by_side_deliver_every_event_once(db: Database) -> None:
    event_ids = withdrawals(db, 150, at=utcnow())
    received: Counter[uuid.UUID] = Counter()
    lock = threading.Lock()
    all_in = threading.Event()

    def media(event: Event) -> None:
        with lock:
            received[event.id] += 1
            if sum(received.values()) >= len(event_ids):
                all_in.set()

    # On PostgreSQL each dispatcher has its own engine and pool, as replicas would.
    replicas = (
        [Database(db.url.render_as_string(hide_password=False)) for _ in range(2)]
        if db.dialect == "postgresql"
        else [db, db]
    )
    dispatchers = [
        Dispatcher(replica, kit_tables, service="consent", batch_size=9, poll_interval=0.05)
        for replica in replicas
    ]
    for dispatcher in dispatchers:
        dispatcher.subscribe("consent.changed", "media", media)
        dispatcher.start()
    try:
        assert all_in.wait(60)
    finally:
        for dispatcher in dispatchers:
            dispatcher.stop()
        for replica in replicas:
            if replica is not db:
                replica.dispose()

    assert received == Counter(dict.fromkeys(event_ids, 1))
    assert all(outbox_row(db, e)["dispatched_at"] is not None for e in event_ids)


@pytest.mark.skipif(POSTGRES_URL is None, reason="HALLPASS_TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_claim_on_postgresql_skips_rows_another_replica_is_claiming_without_waiting(
    db: Database,
) -> None:
    withdrawals(db, 4, at=utcnow())
    t = kit_tables.outbox_event
    other = Database(db.url.render_as_string(hide_password=False))
    try:
        second = Dispatcher(other, kit_tables, service="consent")
        # A replica mid-claim: its transaction holds two rows' locks and has not committed.
        with db.sessionmaker() as session, session.begin():
            query = select(t.c.id).order_by(t.c.occurred_at).limit(2).with_for_update()
            locked = set(session.execute(query).scalars())
            # Waiting on those locks would end in a lock timeout; SKIP LOCKED passes them by.
            taken = {job.key for job in second.jobs.claim(10)}
        assert len(locked) == len(taken) == 2
        assert locked.isdisjoint(taken)
    finally:
        other.dispose()
