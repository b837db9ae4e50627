"""One job engine: claim, lease, backoff and dead letter over any table that carries its columns.

A queue is a table whose rows are jobs (outbox events, mail envelopes, uploads to scan, webhook
deliveries). The engine owns the transactions around the work: a claim (one transaction) marks a
batch of due rows with a claim token and a lease, counting an attempt on each; the work itself
runs outside any transaction; its outcome is recorded in a transaction of its own, and only if the
claim still holds the row. A worker that dies between the two leaves rows whose lease lapses, and
the next claim of any worker takes them again. A row claimed ``max_attempts`` times is put in the
dead-letter list instead of being handed out once more, whatever ended those attempts.

Replicas: on PostgreSQL the claim selects ``FOR UPDATE SKIP LOCKED``, so two workers never take
the same row and never wait for each other; on SQLite the session begins with ``BEGIN IMMEDIATE``
(db.py), so claims are serialised by the one writer.

Retries wait ``Backoff.delay``: exponential from ``first``, capped, with jitter so that retries of
jobs that failed together spread out. It is the only backoff formula in the code base.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    TextClause,
    and_,
    event,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import ORMExecuteState, Session

from hallpass_kit.db import Database, utcnow

logger = logging.getLogger("hallpass.jobs")

_ERROR_LIMIT = 2000

Values = Callable[[dt.datetime], Mapping[str, Any]]
"""Extra column values a queue writes at a step, given the moment (``status='sending'``)."""


def _no_values(_now: dt.datetime) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Backoff:
    """How long a job waits before its next try: ``first`` doubled per attempt, capped, jittered.

    The delay is drawn between half and all of the ceiling ``min(first * 2**(attempts-1), cap)``:
    never more than the cap, never less than half the nominal wait.
    """

    first: dt.timedelta = dt.timedelta(seconds=1)
    cap: dt.timedelta = dt.timedelta(hours=1)

    def ceiling(self, attempts: int, *, cap: dt.timedelta | None = None) -> dt.timedelta:
        doublings = min(max(attempts - 1, 0), 30)
        return min(self.first * (1 << doublings), cap or self.cap)

    def delay(
        self, attempts: int, rng: random.Random, *, cap: dt.timedelta | None = None
    ) -> dt.timedelta:
        return self.ceiling(attempts, cap=cap) * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class JobColumns:
    """The names of the engine's columns on a queue's table.

    ``dead_at`` marks a dead letter; a queue may leave it ``None`` when its ``dead_values`` mark
    the row some other way (a status) that ``waiting`` excludes. ``queued_at`` is when a job
    whose ``next_attempt_at`` is NULL became due (an upload's time): such a job is due at once.
    """

    attempts: str = "attempts"
    next_attempt_at: str = "next_attempt_at"
    claimed_by: str = "claimed_by"
    claimed_until: str = "claimed_until"
    last_error: str = "last_error"
    dead_at: str | None = "dead_at"
    queued_at: str | None = None


class Settled(Enum):
    done = "done"
    waiting = "waiting"  # back in the queue: a retry, a deferral or a release
    dead = "dead"
    lost = "lost"  # the lease lapsed and another claim took the row; nothing was written


OutcomeKind = Literal["done", "retry", "fail", "release"]


@dataclass(frozen=True)
class Outcome:
    """What a handler reports for one job; the engine turns it into a row update.

    Build one with ``done``, ``retry``, ``defer``, ``fail`` or ``release``.
    """

    kind: OutcomeKind
    error: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    at: dt.datetime | None = None
    counted: bool = True
    # The rest of the batch goes back untried (until ``at``): the handler met a closed door
    # (mail server, object store) that every other job would meet too.
    halt: bool = False

    @classmethod
    def done(cls, values: Mapping[str, Any] | None = None, *, error: str | None = None) -> Outcome:
        """Finished; ``values`` are written with it (``dispatched_at``, ``status='sent'``)."""
        return cls("done", error=error, values=dict(values or {}))

    @classmethod
    def retry(cls, error: str, *, at: dt.datetime | None = None) -> Outcome:
        """Try again after the backoff (or at ``at``); dead-lettered once attempts run out."""
        return cls("retry", error=error, at=at)

    @classmethod
    def defer(cls, error: str, *, until: dt.datetime, halt: bool = False) -> Outcome:
        """Try again at ``until`` without using up an attempt: nothing was wrong with the job."""
        return cls("retry", error=error, at=until, counted=False, halt=halt)

    @classmethod
    def fail(cls, error: str, values: Mapping[str, Any] | None = None) -> Outcome:
        """Dead-letter now: no retry can succeed."""
        return cls("fail", error=error, values=dict(values or {}))

    @classmethod
    def release(cls, *, at: dt.datetime | None = None, halt: bool = False) -> Outcome:
        """Put the job back untried and uncounted (due at ``at``, or at once)."""
        return cls("release", at=at, counted=False, halt=halt)


@dataclass(frozen=True)
class Job:
    """One claimed row: its key, the claim token, the attempt it is on and its columns."""

    key: Any
    claim: str
    attempts: int
    claimed_until: dt.datetime
    row: RowMapping


@dataclass(frozen=True)
class Settlement:
    """What the engine wrote for a job (given to the queue's ``on_settled`` hook)."""

    state: Settled
    at: dt.datetime
    attempts: int
    error: str | None = None
    next_attempt_at: dt.datetime | None = None


SettledHook = Callable[[Session, Job, Outcome, Settlement], None]
"""Runs in the transaction that records an outcome (audit entries, a status of the queue's own)."""


@dataclass(frozen=True)
class Queue:
    """A queue described over a table: which rows are jobs and how the engine marks them.

    ``waiting`` selects rows that are still work (not finished, not dead); the engine adds
    "due, not dead, not held by a live lease". ``claim_values``, ``waiting_values`` and
    ``dead_values`` are written beside the engine's columns at each step; ``on_settled`` runs in
    the outcome's transaction.
    """

    service: str
    kind: str
    table: Table
    waiting: ColumnElement[bool]
    columns: JobColumns = JobColumns()
    order_by: tuple[ColumnElement[Any], ...] = ()
    max_attempts: int = 12
    lease: dt.timedelta = dt.timedelta(minutes=5)
    backoff: Backoff = Backoff()
    claim_values: Values = _no_values
    waiting_values: Values = _no_values
    dead_values: Values = _no_values
    on_settled: SettledHook | None = None
    # The last error of a job given up at claim time: every claim so far ended with its worker.
    abandoned_error: str = "gave up after {attempts} attempts; the last never finished"

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.lease <= dt.timedelta(0):
            raise ValueError("a queue needs max_attempts of at least 1 and a lease longer than 0")
        if len(self.table.primary_key.columns) != 1:
            raise ValueError(f"queue table {self.table.name} needs a single-column primary key")


@dataclass(frozen=True)
class BatchReport:
    claimed: int
    done: int
    # A handler halted the batch: the rest went back untried.
    halted: bool


@dataclass(frozen=True)
class QueueStats:
    due: int
    leased: int
    oldest_due_age: dt.timedelta

    @property
    def depth(self) -> int:
        return self.due + self.leased


Handler = Callable[[Job], Outcome]


class JobQueue:
    """A queue bound to one database: claims, records outcomes, reports its depth.

    ``run_batch`` is one pass with a plain handler; ``claim`` / ``record`` / ``release`` /
    ``keep_lease`` let a worker that needs a batch-wide view (an outage pause) drive it itself.
    """

    def __init__(
        self,
        database: Database,
        queue: Queue,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.queue = queue
        self.clock = clock
        self.worker_id = (worker_id or default_worker_id())[:80]
        # Each claim gets a token of its own (worker id and a counter), so an outcome lands only
        # on rows that this very claim still holds, even between threads of one worker.
        self._claims = itertools.count(1)
        self._rng = rng or random.Random()  # noqa: S311 - jitter spreads retries, it guards nothing
        self._rng_lock = threading.Lock()
        self._skip_locked = database.dialect == "postgresql"
        t, c = queue.table, queue.columns
        self._key = next(iter(t.primary_key.columns))
        self._attempts = t.c[c.attempts]
        self._next = t.c[c.next_attempt_at]
        self._by = t.c[c.claimed_by]
        self._until = t.c[c.claimed_until]
        self._error = t.c[c.last_error]
        self._dead = t.c[c.dead_at] if c.dead_at else None
        self._queued_at = t.c[c.queued_at] if c.queued_at else None
        track(self)

    # ----------------------------------------------------------------------------------------
    # Backoff

    def backoff(self, attempts: int, *, cap: dt.timedelta | None = None) -> dt.timedelta:
        with self._rng_lock:
            return self.queue.backoff.delay(attempts, self._rng, cap=cap)

    # ----------------------------------------------------------------------------------------
    # Claim

    def _live(self) -> ColumnElement[bool]:
        live = self.queue.waiting
        if self._dead is not None:
            live = and_(live, self._dead.is_(None))
        return live

    def _due(self, now: dt.datetime) -> ColumnElement[bool]:
        return and_(
            self._live(),
            or_(self._next.is_(None), self._next <= now),
            or_(self._until.is_(None), self._until < now),
        )

    def claim(self, limit: int, *, now: dt.datetime | None = None) -> list[Job]:
        """Claim up to ``limit`` due jobs for a new claim token, counting an attempt on each.

        Due: waiting rows whose next attempt has come and that no live lease holds (a lapsed
        lease is a worker that died). A row already claimed ``max_attempts`` times is
        dead-lettered here instead.
        """
        if limit < 1:
            return []
        now = now or self.clock()
        token = f"{self.worker_id}#{next(self._claims)}"
        until = now + self.queue.lease
        t = self.queue.table
        runner: Runner | None = getattr(_lane, "runner", None)
        if runner is not None:
            runner._serves(t)  # a runner's lanes claim from the queues it is woken for
        query = select(t).where(self._due(now)).order_by(*self.queue.order_by, self._key)
        query = query.limit(limit)
        if self._skip_locked:
            # Replicas claim side by side: each takes rows no other holds, none waits.
            query = query.with_for_update(skip_locked=True, of=t)
        with self.database.session() as session:
            rows = session.execute(query).mappings().all()
            usable = [r for r in rows if r[self._attempts.name] < self.queue.max_attempts]
            if usable:
                session.execute(
                    update(t)
                    .where(self._key.in_([r[self._key.name] for r in usable]))
                    .values(
                        {
                            self._attempts: self._attempts + 1,
                            self._by: token,
                            self._until: until,
                            **self._named(self.queue.claim_values(now)),
                        }
                    )
                )
            for row in rows:
                if row[self._attempts.name] >= self.queue.max_attempts:
                    job = Job(row[self._key.name], token, row[self._attempts.name], until, row)
                    error = self.queue.abandoned_error.format(attempts=job.attempts)
                    self._settle_dead(session, job, Outcome.fail(error), now)
        return [Job(r[self._key.name], token, r[self._attempts.name] + 1, until, r) for r in usable]

    # ----------------------------------------------------------------------------------------
    # Outcomes

    def record(self, job: Job, outcome: Outcome) -> Settlement:
        """Record one job's outcome in a transaction of its own (if the claim still holds it)."""
        with self.database.session() as session:
            return self._record(session, job, outcome)

    def _record(self, session: Session, job: Job, outcome: Outcome) -> Settlement:
        query = select(self._attempts).where(self._key == job.key, self._by == job.claim)
        query = query.where(self._live())
        if self._skip_locked:
            query = query.with_for_update()
        attempts = session.execute(query).scalar_one_or_none()
        now = self.clock()
        if attempts is None:
            settlement = Settlement(Settled.lost, now, job.attempts, outcome.error)
            logger.warning(
                "%s job %s: lease lost before recording %s", self.queue.kind, job.key, outcome.kind
            )
        else:
            settlement = self._settle(session, job, outcome, attempts, now)
        if self.queue.on_settled is not None:
            self.queue.on_settled(session, job, outcome, settlement)
        return settlement

    def _settle(
        self, session: Session, job: Job, outcome: Outcome, attempts: int, now: dt.datetime
    ) -> Settlement:
        error = _clip(outcome.error)
        if outcome.kind == "done":
            self._write(
                session,
                job,
                {self._by: None, self._until: None, self._error: error, **outcome.values},
            )
            return Settlement(Settled.done, now, attempts, error)
        if outcome.kind == "fail":
            return self._settle_dead(session, job, outcome, now, attempts=attempts)
        if outcome.counted and attempts >= self.queue.max_attempts:
            dead = Outcome.fail(f"gave up after {attempts} attempts: {error}", outcome.values)
            return self._settle_dead(session, job, dead, now, attempts=attempts)
        if not outcome.counted:
            attempts -= 1
        values: dict[Any, Any] = {
            self._by: None,
            self._until: None,
            self._attempts: attempts,
            **self._named(self.queue.waiting_values(now)),
            **outcome.values,
        }
        next_attempt_at = outcome.at
        if outcome.kind == "release":
            # Untried: it keeps its place in the queue unless told when to come back.
            if next_attempt_at is not None:
                values[self._next] = next_attempt_at
        else:
            next_attempt_at = next_attempt_at or now + self.backoff(attempts)
            values[self._next] = next_attempt_at
            values[self._error] = error
        self._write(session, job, values)
        return Settlement(Settled.waiting, now, attempts, error, next_attempt_at)

    def _settle_dead(
        self,
        session: Session,
        job: Job,
        outcome: Outcome,
        now: dt.datetime,
        *,
        attempts: int | None = None,
    ) -> Settlement:
        error = _clip(outcome.error)
        values: dict[Any, Any] = {
            self._by: None,
            self._until: None,
            self._error: error,
            **self._named(self.queue.dead_values(now)),
            **outcome.values,
        }
        if self._dead is not None:
            values[self._dead] = now
        self._write(session, job, values)
        logger.error("%s job %s dead-lettered: %s", self.queue.kind, job.key, error)
        settlement = Settlement(Settled.dead, now, attempts or job.attempts, error)
        if attempts is None and self.queue.on_settled is not None:
            # Given up at claim time: no record() call follows, so the hook runs here.
            self.queue.on_settled(session, job, outcome, settlement)
        return settlement

    def _write(self, session: Session, job: Job, values: Mapping[Any, Any]) -> None:
        session.execute(
            update(self.queue.table).where(self._key == job.key).values(self._named(values))
        )

    def _named(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        return {getattr(k, "name", k): v for k, v in values.items()}

    def release(self, jobs: Sequence[Job], *, at: dt.datetime | None = None) -> None:
        """Give back claimed jobs that were not tried: the attempt counted at claim is undone."""
        if not jobs:
            return
        with self.database.session() as session:
            for job in jobs:
                self._record(session, job, Outcome.release(at=at))

    def keep_lease(self, jobs: Sequence[Job]) -> list[Job]:
        """Extend the lease on jobs still in hand once half of it has passed; the jobs as held."""
        if not jobs:
            return []
        now = self.clock()
        if now < jobs[0].claimed_until - self.queue.lease / 2:
            return list(jobs)
        until = now + self.queue.lease
        with self.database.session() as session:
            for job in jobs:
                session.execute(
                    update(self.queue.table)
                    .where(self._key == job.key, self._by == job.claim)
                    .values({self._until.name: until})
                )
        return [Job(job.key, job.claim, job.attempts, until, job.row) for job in jobs]

    # ----------------------------------------------------------------------------------------
    # One pass

    def run_batch(
        self,
        handler: Handler,
        *,
        limit: int,
        stopping: Callable[[], bool] = lambda: False,
        now: dt.datetime | None = None,
    ) -> BatchReport:
        """Claim up to ``limit`` jobs, hand each to ``handler`` and record its outcome.

        A handler that raises is a retry (its error recorded); stopping puts the rest back.
        """
        jobs = self.claim(limit, now=now)
        done = 0
        for index in range(len(jobs)):
            rest = self.keep_lease(jobs[index:])
            jobs[index:] = rest
            job = rest[0]
            if stopping():
                self.release(rest)
                return BatchReport(len(jobs), done, halted=True)
            try:
                outcome = handler(job)
            except Exception as exc:  # a failing job must not stop the batch; attempts bound it
                logger.exception("%s job %s failed", self.queue.kind, job.key)
                outcome = Outcome.retry(f"{type(exc).__name__}: {exc}")
            settlement = self.record(job, outcome)
            if settlement.state is Settled.done:
                done += 1
            if outcome.halt:
                self.release(rest[1:], at=outcome.at)
                return BatchReport(len(jobs), done, halted=True)
        return BatchReport(len(jobs), done, halted=False)

    def run_until_idle(
        self, handler: Handler, *, limit: int, now: dt.datetime | None = None
    ) -> int:
        """Passes until no full batch is left due (or a handler halts); how many were done.

        ``now`` claims as if it were that moment (what is due then); outcomes use the clock.
        """
        done = 0
        while True:
            report = self.run_batch(handler, limit=limit, now=now)
            done += report.done
            if report.claimed < limit or report.halted:
                return done

    # ----------------------------------------------------------------------------------------
    # Dead letters and stats

    def dead_letters(self, limit: int = 100) -> list[RowMapping]:
        """The dead-lettered rows, newest first (only for queues with a ``dead_at`` column)."""
        if self._dead is None:
            return []
        t = self.queue.table
        with self.database.session(read_only=True) as session:
            query = select(t).where(self._dead.is_not(None)).order_by(self._dead.desc())
            return list(session.execute(query.limit(limit)).mappings().all())

    def replay(self, keys: Iterable[Any]) -> int:
        """Put dead letters back in the queue with fresh attempts; how many were put back."""
        if self._dead is None:
            return 0
        now = self.clock()
        with self.database.session() as session:
            result = session.execute(
                update(self.queue.table)
                .where(self._key.in_(list(keys)), self._dead.is_not(None))
                .values(
                    {
                        self._dead.name: None,
                        self._attempts.name: 0,
                        self._next.name: now,
                        **self._named(self.queue.waiting_values(now)),
                    }
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def stats(self) -> QueueStats:
        """Depth (due + leased) and the age of the oldest due job, as of the queue's clock."""
        now = self.clock()
        leased = and_(self._live(), self._until.is_not(None), self._until >= now)
        due_since: ColumnElement[Any] = (
            func.coalesce(self._next, self._queued_at)
            if self._queued_at is not None
            else self._next
        )
        with self.database.session(read_only=True) as session:
            row = session.execute(
                select(
                    func.count().filter(self._due(now)),
                    func.count().filter(leased),
                    func.min(due_since).filter(self._due(now)),
                ).select_from(self.queue.table)
            ).one()
        oldest = row[2]
        if isinstance(oldest, str):
            # min() over a SQLite column may come back as text or naive time, not through the type.
            oldest = dt.datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        age = max(now - oldest, dt.timedelta(0)) if oldest is not None else dt.timedelta(0)
        return QueueStats(int(row[0]), int(row[1]), age)


# --------------------------------------------------------------------------------------------
# Runner


class Runner:
    """Runs a pass function in background threads until stopped.

    ``run_pass`` returns True when there may be more work right away (a full batch), and every
    lane is woken to it; otherwise the first lane sleeps ``poll_interval``, the others until woken,
    or until another writer commits to one of the runner's
    queues: the ``queues`` given, and every table its lanes have claimed from. A commit that
    wrote only other tables (a check's audit entry) wakes no runner into a claim pass that can
    find nothing; one that wrote through SQL whose table is not known wakes them all.
    """

    def __init__(
        self,
        database: Database,
        name: str,
        run_pass: Callable[[], bool],
        *,
        poll_interval: float = 1.0,
        lanes: int = 1,
        queues: Iterable[Table] = (),
    ) -> None:
        if lanes < 1 or poll_interval <= 0:
            raise ValueError("a runner needs at least one lane and a positive poll interval")
        self.name = name
        self.run_pass = run_pass
        self.poll_interval = poll_interval
        self.lanes = lanes
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: tuple[threading.Thread, ...] = ()
        # The queues this runner serves: the tables named here, and every table its lanes
        # claim from (learned at the first claim). Until it knows one, any commit wakes it.
        self._queues = frozenset(t.fullname for t in queues)
        _commits(database).add(self)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._threads = tuple(
            threading.Thread(
                target=self._loop, args=(lane,), name=f"hallpass-{self.name}-{lane}", daemon=True
            )
            for lane in range(self.lanes)
        )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Let each lane finish the job in hand (the rest of its batch goes back), then join."""
        self._stop.set()
        self._wake.set()
        threads, self._threads = self._threads, ()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def wake(self) -> None:
        self._wake.set()

    def _on_commit(self, written: frozenset[str]) -> None:
        # Our own claims and outcomes commit too; only other writers bring new work.
        if threading.current_thread() in self._threads:
            return
        queues = self._queues
        if not queues or _ANY_TABLE in written or not queues.isdisjoint(written):
            self._wake.set()

    def _serves(self, table: Table) -> None:
        if table.fullname not in self._queues:
            self._queues = self._queues | {table.fullname}

    def _loop(self, lane: int) -> None:
        _lane.runner = self
        # Only the first lane looks every poll interval (for work that falls due with time, a
        # retry); the others sleep until a commit to the queue wakes them, or a full pass of
        # another lane: idle lanes do not each run a claim pass every interval for nothing.
        interval = self.poll_interval if lane == 0 else None
        while not self._stop.is_set():
            self._wake.clear()
            try:
                more = self.run_pass()
            except Exception:
                logger.exception("%s pass failed; trying again on the next pass", self.name)
                more = False
            if self._stop.is_set():
                return
            if more:
                self._wake.set()  # there may be more than one lane's work: the others help
            else:
                self._wake.wait(interval)


_lane = threading.local()
"""``runner``: the runner whose lane this thread is, so its claims name the queues it serves."""

_ANY_TABLE = "*"
_READS = re.compile(r"\s*SELECT\s", re.IGNORECASE)
_WRITTEN = "hallpass.jobs.written"


class _Commits:
    """Tells a database's runners which tables each commit wrote.

    The tables are gathered per session from its flushes (ORM objects) and its insert, update
    and delete statements; SQL whose table cannot be told (text) counts as every table.
    """

    def __init__(self, database: Database) -> None:
        self._runners: weakref.WeakSet[Runner] = weakref.WeakSet()
        self._lock = threading.Lock()
        maker = database.sessionmaker
        event.listen(maker, "after_flush", self._flushed)
        event.listen(maker, "do_orm_execute", self._executed)
        event.listen(maker, "after_commit", self._committed)
        event.listen(maker, "after_rollback", self._rolled_back)

    def add(self, runner: Runner) -> None:
        with self._lock:
            self._runners.add(runner)

    @staticmethod
    def _flushed(session: Session, _flush_context: Any) -> None:
        written: set[str] = session.info.setdefault(_WRITTEN, set())
        for instance in itertools.chain(session.new, session.dirty, session.deleted):
            written.update(t.fullname for t in inspect(instance).mapper.tables)

    @staticmethod
    def _executed(state: ORMExecuteState) -> None:
        statement = state.statement
        if state.is_select or (
            # A lock taken in SQL (the audit chain's on PostgreSQL) writes no table.
            isinstance(statement, TextClause) and _READS.match(statement.text)
        ):
            return
        table = getattr(statement, "table", None)
        name = table.fullname if isinstance(table, Table) else _ANY_TABLE
        state.session.info.setdefault(_WRITTEN, set()).add(name)

    def _committed(self, session: Session) -> None:
        written = session.info.pop(_WRITTEN, None)
        if not written:
            return
        tables = frozenset(written)
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner._on_commit(tables)

    @staticmethod
    def _rolled_back(session: Session) -> None:
        session.info.pop(_WRITTEN, None)


_all_commits: weakref.WeakKeyDictionary[Database, _Commits] = weakref.WeakKeyDictionary()
_all_commits_lock = threading.Lock()


def _commits(database: Database) -> _Commits:
    with _all_commits_lock:
        commits = _all_commits.get(database)
        if commits is None:
            commits = _all_commits[database] = _Commits(database)
        return commits


# --------------------------------------------------------------------------------------------
# Metrics


class _QueueCollector(Collector):
    """Reports every live tracked queue's depth and oldest age; queues are held weakly."""

    def __init__(self) -> None:
        self._queues: weakref.WeakSet[JobQueue] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, queue: JobQueue) -> None:
        with self._lock:
            self._queues.add(queue)

    def queues(self) -> list[JobQueue]:
        with self._lock:
            return list(self._queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queued = GaugeMetricFamily(
            "hallpass_jobs_queued",
            "Jobs due or leased, by service and kind",
            labels=["service", "kind"],
        )
        oldest = GaugeMetricFamily(
            "hallpass_jobs_oldest_age_seconds",
            "How long the oldest due job has waited, by service and kind",
            labels=["service", "kind"],
        )
        # Two JobQueues over one table (a worker's and an app's) count it once; queues of one
        # kind in different databases (tests, several apps in a process) add up.
        seen: dict[tuple[str, str, str], QueueStats] = {}
        for job_queue in self.queues():
            if job_queue.database.engine in _disposed_engines:
                # Its service has shut down; asking would only open a connection no one closes.
                continue
            labels = (job_queue.queue.service, job_queue.queue.kind)
            where = (*labels, f"{job_queue.database.url}/{job_queue.queue.table.name}")
            if where in seen:
                continue
            try:
                seen[where] = job_queue.stats()
            except Exception:  # a disposed or unreachable database reports nothing
                logger.debug("no stats for %s/%s", *labels, exc_info=True)
        totals: dict[tuple[str, str], tuple[int, float]] = {}
        for (service, kind, _), stats in seen.items():
            depth, age = totals.get((service, kind), (0, 0.0))
            totals[(service, kind)] = (
                depth + stats.depth,
                max(age, stats.oldest_due_age.total_seconds()),
            )
        for (service, kind), (depth, age) in sorted(totals.items()):
            queued.add_metric([service, kind], depth)
            oldest.add_metric([service, kind], age)
        yield queued
        yield oldest


_collector: _QueueCollector | None = None
_collector_lock = threading.Lock()
_disposed_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


@event.listens_for(Engine, "engine_disposed")
def _forget_disposed(engine: Engine) -> None:
    _disposed_engines.add(engine)


def track(job_queue: JobQueue) -> None:
    """Report ``job_queue`` in the process's Prometheus registry (one collector per process)."""
    global _collector
    with _collector_lock:
        if _collector is None:
            _collector = _QueueCollector()
            REGISTRY.register(_collector)
        _collector.add(job_queue)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _clip(error: str | None) -> str | None:
    return error[:_ERROR_LIMIT] if error else None


__all__ = [
    "Backoff",
    "BatchReport",
    "Handler",
    "Job",
    "JobColumns",
    "JobQueue",
    "Outcome",
    "Queue",
    "QueueStats",
    "Runner",
    "Settled",
    "SettledHook",
    "Settlement",
    "default_worker_id",
    "track",
]
