"""The job engine over a table of its own: claim, lease, retry, dead letter, runners and metrics.

Runs on SQLite and, when HALLPASS_TEST_POSTGRES_URL is set, on PostgreSQL, where replicas with
their own connection pools drain one queue side by side.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, Uuid, insert, select, text

from hallpass_kit.db import Database, UTCDateTime, utcnow
from hallpass_kit.jobs import (
    Backoff,
    Job,
    JobQueue,
    Outcome,
    Queue,
    Runner,
    Settled,
)
from tests import databases
from tests.databases import BACKENDS, POSTGRES_URL

metadata = MetaData()
# A queue as a service would keep one: its own columns beside the engine's.
reminder = Table(
    "reminder",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("school", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("dead_at", UTCDateTime(), nullable=True),
)

# Not a queue: a table other writers write to (a check's audit entry, say).
note = Table(
    "note",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("body", Text(), nullable=False),
)

LEASE = dt.timedelta(minutes=5)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


def create_schema(database: Database) -> None:
    metadata.create_all(database.engine)


@pytest.fixture(scope="session")
def jobs_postgres_url() -> Iterator[str]:
    with databases.postgres_database("jobs", create_schema) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
        create_schema(database)
    else:
        database = databases.emptied(request.getfixturevalue("jobs_postgres_url"), metadata)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(utcnow().replace(microsecond=0))


def reminders_queue(kind: str = "reminder", **options: object) -> Queue:
    return Queue(
        service="test",
        kind=kind,
        table=reminder,
        waiting=reminder.c.sent_at.is_(None),
        order_by=(reminder.c.created_at,),
        lease=LEASE,
        max_attempts=3,
        backoff=Backoff(first=dt.timedelta(seconds=1), cap=dt.timedelta(minutes=1)),
        **options,  # type: ignore[arg-type]
    )


def add_reminders(database: Database, count: int, *, at: dt.datetime) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with database.session() as session:
        session.execute(
            insert(reminder),
            [
                {
                    "id": reminder_id,
                    "school": "oakfield",
                    "created_at": at + dt.timedelta(microseconds=n),
                    "attempts": 0,
                    "next_attempt_at": at,
                }
                for n, reminder_id in enumerate(ids)
            ],
        )
    return ids


def row(database: Database, reminder_id: uuid.UUID) -> dict[str, Any]:
    with database.session(read_only=True) as session:
        found = session.execute(select(reminder).where(reminder.c.id == reminder_id)).mappings()
        return dict(found.one())


def sent(clock: Callable[[], dt.datetime]) -> Callable[[Job], Outcome]:
    return lambda _job: Outcome.done({"sent_at": clock()})


# --- claim, lease, outcome -----------------------------------------------------------------------


def test_a_claim_leases_the_job_counts_an_attempt_and_hides_it_from_other_claims(
    db: Database, clock: Clock
) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    first = JobQueue(db, reminders_queue(), clock=clock, worker_id="first")
    second = JobQueue(db, reminders_queue(), clock=clock, worker_id="second")

    (job,) = first.claim(10)

    assert (job.key, job.attempts, job.claim) == (reminder_id, 1, "first#1")
    claimed = row(db, reminder_id)
    assert (claimed["attempts"], claimed["claimed_by"]) == (1, "first#1")
    assert claimed["claimed_until"] == clock.now + LEASE
    assert second.claim(10) == []


def test_a_completed_job_is_released_from_its_lease_and_never_claimed_again(
    db: Database, clock: Clock
) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    (job,) = jobs.claim(10)

    settlement = jobs.record(job, Outcome.done({"sent_at": clock.now}))

    assert settlement.state is Settled.done
    done = row(db, reminder_id)
    assert (done["sent_at"], done["claimed_by"], done["claimed_until"]) == (clock.now, None, None)
    clock.advance(dt.timedelta(days=1))
    assert jobs.claim(10) == []


def test_a_retry_waits_out_the_backoff_then_is_claimed_again(db: Database, clock: Clock) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    (job,) = jobs.claim(10)

    settlement = jobs.record(job, Outcome.retry("relay said 451"))

    waiting = row(db, reminder_id)
    assert settlement.state is Settled.waiting
    assert waiting["last_error"] == "relay said 451"
    assert waiting["claimed_by"] is None
    # First retry: between half and all of one second.
    next_attempt_at = settlement.next_attempt_at
    assert next_attempt_at == waiting["next_attempt_at"]
    assert next_attempt_at is not None
    assert clock.now + dt.timedelta(seconds=0.5) <= next_attempt_at
    assert next_attempt_at <= clock.now + dt.timedelta(seconds=1)
    assert jobs.claim(10) == []
    clock.advance(dt.timedelta(seconds=1))
    (again,) = jobs.claim(10)
    assert again.attempts == 2


def test_a_job_that_fails_every_attempt_becomes_a_dead_letter_and_can_be_replayed(
    db: Database, clock: Clock
) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    states = []
    for _ in range(3):
        (job,) = jobs.claim(10)
        states.append(jobs.record(job, Outcome.retry("mailbox full")).state)
        clock.advance(dt.timedelta(minutes=2))

    assert states == [Settled.waiting, Settled.waiting, Settled.dead]
    dead = row(db, reminder_id)
    assert dead["dead_at"] is not None
    assert dead["last_error"] == "gave up after 3 attempts: mailbox full"
    assert jobs.claim(10) == []
    assert [letter["id"] for letter in jobs.dead_letters()] == [reminder_id]

    assert jobs.replay([reminder_id]) == 1
    (replayed,) = jobs.claim(10)
    assert (replayed.key, replayed.attempts) == (reminder_id, 1)


def test_a_failure_no_retry_can_mend_is_dead_lettered_at_once(db: Database, clock: Clock) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    (job,) = jobs.claim(10)

    assert jobs.record(job, Outcome.fail("no such mailbox")).state is Settled.dead
    assert row(db, reminder_id)["attempts"] == 1
    assert row(db, reminder_id)["last_error"] == "no such mailbox"


def test_a_released_or_deferred_job_uses_up_no_attempt(db: Database, clock: Clock) -> None:
    first, second = add_reminders(db, 2, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    claimed = jobs.claim(10)

    jobs.record(claimed[0], Outcome.defer("relay down", until=clock.now + dt.timedelta(minutes=1)))
    jobs.release(claimed[1:])

    assert row(db, first)["attempts"] == 0
    assert row(db, first)["next_attempt_at"] == clock.now + dt.timedelta(minutes=1)
    assert (row(db, second)["attempts"], row(db, second)["last_error"]) == (0, None)
    assert [job.key for job in jobs.claim(10)] == [second]


def test_a_handler_that_halts_puts_the_rest_of_the_batch_back_untried(
    db: Database, clock: Clock
) -> None:
    ids = add_reminders(db, 3, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    tried: list[uuid.UUID] = []

    def store_down(job: Job) -> Outcome:
        tried.append(job.key)
        return Outcome.release(halt=True)

    report = jobs.run_batch(store_down, limit=10)

    assert (report.claimed, report.done, report.halted) == (3, 0, True)
    assert tried == ids[:1]
    assert [row(db, i)["attempts"] for i in ids] == [0, 0, 0]
    assert len(jobs.claim(10)) == 3


def test_a_handler_that_raises_is_retried_not_lost(db: Database, clock: Clock) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)

    def broken(_job: Job) -> Outcome:
        raise RuntimeError("template missing")

    assert jobs.run_batch(broken, limit=10).done == 0
    assert row(db, reminder_id)["last_error"] == "RuntimeError: template missing"
    assert row(db, reminder_id)["next_attempt_at"] > clock.now


# --- workers that die ----------------------------------------------------------------------------


def test_a_lapsed_lease_is_reclaimed_and_the_old_claims_outcome_changes_nothing(
    db: Database, clock: Clock
) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    crashed = JobQueue(db, reminders_queue(), clock=clock, worker_id="crashed")
    survivor = JobQueue(db, reminders_queue(), clock=clock, worker_id="survivor")
    (stale,) = crashed.claim(10)

    clock.advance(LEASE - dt.timedelta(seconds=1))
    assert survivor.claim(10) == []  # the lease still holds
    clock.advance(dt.timedelta(seconds=2))
    (taken,) = survivor.claim(10)

    assert (taken.key, taken.attempts) == (reminder_id, 2)
    assert crashed.record(stale, Outcome.done({"sent_at": clock.now})).state is Settled.lost
    assert row(db, reminder_id)["claimed_by"] == taken.claim
    assert survivor.record(taken, Outcome.done({"sent_at": clock.now})).state is Settled.done


def test_a_job_whose_claimants_keep_dying_is_dead_lettered_at_the_attempt_limit(
    db: Database, clock: Clock
) -> None:
    (reminder_id,) = add_reminders(db, 1, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    for _ in range(3):
        assert len(jobs.claim(10)) == 1
        clock.advance(LEASE + dt.timedelta(seconds=1))

    assert jobs.claim(10) == []
    dead = row(db, reminder_id)
    assert dead["dead_at"] == clock.now
    assert dead["last_error"] == "gave up after 3 attempts; the last never finished"


def test_a_long_job_keeps_its_lease_once_half_of_it_has_passed(db: Database, clock: Clock) -> None:
    add_reminders(db, 2, at=clock.now)
    jobs = JobQueue(db, reminders_queue(), clock=clock)
    other = JobQueue(db, reminders_queue(), clock=clock)

    def slow(_job: Job) -> Outcome:
        clock.advance(LEASE * 0.6)
        assert other.claim(10) == []
        return Outcome.done({"sent_at": clock.now})

    assert jobs.run_batch(slow, limit=10).done == 2


# --- backoff -------------------------------------------------------------------------------------


def test_backoff_doubles_from_its_first_wait_with_jitter_under_a_cap() -> None:
    backoff = Backoff(first=dt.timedelta(seconds=1), cap=dt.timedelta(minutes=1))
    rng = random.Random(7)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (400, 60)]:
        waits = [backoff.delay(attempts, rng).total_seconds() for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1


# --- replicas ------------------------------------------------------------------------------------


def drain_with_runners(queues: list[JobQueue], ids: list[uuid.UUID]) -> Counter[uuid.UUID]:
    handled: Counter[uuid.UUID] = Counter()
    lock = threading.Lock()
    all_done = threading.Event()

    def handle(job: Job) -> Outcome:
        with lock:
            handled[job.key] += 1
            if sum(handled.values()) >= len(ids):
                all_done.set()
        return Outcome.done({"sent_at": utcnow()})

    def passes(jobs: JobQueue) -> Callable[[], bool]:
        return lambda: jobs.run_batch(handle, limit=7).claimed == 7

    runners = [
        Runner(jobs.database, f"reminders-{n}", passes(jobs), poll_interval=0.05, lanes=2)
        for n, jobs in enumerate(queues)
    ]
    for runner in runners:
        runner.start()
    try:
        assert all_done.wait(60)
    finally:
        for runner in runners:
            runner.stop()
    return handled


def test_two_runners_drain_a_queue_doing_every_job_exactly_once(db: Database) -> None:
    ids = add_reminders(db, 120, at=utcnow())
    queues = [JobQueue(db, reminders_queue(), worker_id=f"w{n}") for n in range(2)]

    handled = drain_with_runners(queues, ids)

    assert handled == Counter(dict.fromkeys(ids, 1))
    assert all(row(db, i)["sent_at"] is not None for i in ids)


@pytest.mark.skipif(POSTGRES_URL is None, reason="HALLPASS_TEST_POSTGRES_URL is not set")
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_replicas_with_their_own_connection_pools_do_every_job_exactly_once(
    db: Database,
) -> None:
    ids = add_reminders(db, 200, at=utcnow())
    replicas = [Database(db.url.render_as_string(hide_password=False)) for _ in range(2)]
    try:
        queues = [
            JobQueue(r, reminders_queue(), worker_id=f"replica{n}") for n, r in enumerate(replicas)
        ]
        handled = drain_with_runners(queues, ids)
    finally:
        for replica in replicas:
            replica.dispose()

    assert handled == Counter(dict.fromkeys(ids, 1))
    with db.session(read_only=True) as session:
        claims = session.execute(text("SELECT count(*) FROM reminder WHERE sent_at IS NULL"))
        assert claims.scalar_one() == 0


# --- the runner ----------------------------------------------------------------------------------


def test_a_runner_wakes_on_another_writers_commit_rather_than_its_poll(db: Database) -> None:
    jobs = JobQueue(db, reminders_queue())
    ran = threading.Event()

    def handle(_job: Job) -> Outcome:
        ran.set()
        return Outcome.done({"sent_at": utcnow()})

    # An hour between polls: only the commit's wake-up can bring the job in time.
    runner = Runner(
        db, "reminders", lambda: jobs.run_batch(handle, limit=5).claimed == 5, poll_interval=3600
    )
    runner.start()
    try:
        add_reminders(db, 1, at=utcnow())
        assert ran.wait(30)
    finally:
        runner.stop()
    assert not runner.running


def test_a_commit_to_another_table_wakes_no_runner_but_one_to_its_queue_does(
    db: Database,
) -> None:
    jobs = JobQueue(db, reminders_queue())
    passes: list[int] = []
    first_pass = threading.Event()
    ran = threading.Event()

    def handle(_job: Job) -> Outcome:
        ran.set()
        return Outcome.done({"sent_at": utcnow()})

    def one_pass() -> bool:
        claimed = jobs.run_batch(handle, limit=5).claimed
        passes.append(claimed)
        first_pass.set()
        return claimed == 5

    # An hour between polls: every pass after the first is a commit's wake-up.
    runner = Runner(db, "reminders", one_pass, poll_interval=3600)
    runner.start()
    try:
        assert first_pass.wait(30)
        for n in range(5):
            with db.session() as session:
                # A lock taken in SQL, as the audit chain does on PostgreSQL, writes no table.
                session.execute(text("SELECT 1"))
                session.execute(insert(note), {"id": uuid.uuid4(), "body": f"note {n}"})
        # Time for a lane that was woken wrongly to have run its pass (a correct runner
        # never does, however long this is).
        time.sleep(0.3)
        assert passes == [0]
        add_reminders(db, 1, at=utcnow())
        assert ran.wait(30)
    finally:
        runner.stop()
    assert passes == [0, 1]


def test_a_runner_told_its_queue_sleeps_through_other_commits_from_the_start(
    db: Database,
) -> None:
    passes: list[int] = []
    first_pass = threading.Event()
    woken = threading.Event()

    def one_pass() -> bool:
        passes.append(1)
        if len(passes) > 1:
            woken.set()
        first_pass.set()
        return False

    # This pass claims nothing, so only the queue named here can tell the runner what to wait for.
    runner = Runner(db, "reminders", one_pass, poll_interval=3600, queues=[reminder])
    runner.start()
    try:
        assert first_pass.wait(30)
        with db.session() as session:
            session.execute(insert(note), {"id": uuid.uuid4(), "body": "not a reminder"})
        time.sleep(0.3)
        assert len(passes) == 1
        add_reminders(db, 1, at=utcnow())
        assert woken.wait(30)
    finally:
        runner.stop()


def test_a_stopping_runner_finishes_the_job_in_hand_and_puts_the_rest_back(
    db: Database,
) -> None:
    ids = add_reminders(db, 5, at=utcnow())
    jobs = JobQueue(db, reminders_queue())
    in_hand = threading.Event()
    carry_on = threading.Event()

    def handle(_job: Job) -> Outcome:
        in_hand.set()
        carry_on.wait(30)
        return Outcome.done({"sent_at": utcnow()})

    def one_pass() -> bool:
        return jobs.run_batch(handle, limit=5, stopping=lambda: runner.stopping).claimed == 5

    runner = Runner(db, "reminders", one_pass, poll_interval=3600)
    runner.start()
    assert in_hand.wait(30)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    deadline = time.monotonic() + 30
    while not runner.stopping and time.monotonic() < deadline:
        time.sleep(0.01)  # the job in hand goes on only once the stop has been asked for
    carry_on.set()
    stopper.join(30)

    rows = [row(db, i) for i in ids]
    assert sum(1 for r in rows if r["sent_at"] is not None) == 1
    assert sum(r["attempts"] for r in rows) == 1
    assert all(r["claimed_by"] is None for r in rows)


# --- metrics -------------------------------------------------------------------------------------


def test_queue_depth_and_oldest_age_are_reported_per_service_and_kind(
    db: Database, clock: Clock
) -> None:
    kind = f"reminder-{uuid.uuid4().hex[:8]}"
    add_reminders(db, 3, at=clock.now - dt.timedelta(seconds=90))
    jobs = JobQueue(db, reminders_queue(kind), clock=clock)
    jobs.claim(1)
    labels = {"service": "test", "kind": kind}

    assert REGISTRY.get_sample_value("hallpass_jobs_queued", labels) == 3
    assert REGISTRY.get_sample_value("hallpass_jobs_oldest_age_seconds", labels) == 90

    del jobs  # held weakly: a queue no one keeps is no longer reported
    assert REGISTRY.get_sample_value("hallpass_jobs_queued", labels) is None
