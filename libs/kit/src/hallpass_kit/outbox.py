"""Transactional outbox: events are written with the change and dispatched only after commit.

Delivery is at-least-once; consumers record the event ids they have handled (``mark_consumed``)
so a redelivery changes nothing. In all-in-one mode subscribers are in-process callables; an HTTP
webhook deliverer is one more subscriber with the same signature.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from hallpass_kit.db import Database, utcnow
from hallpass_kit.jobs import Backoff, Job, JobQueue, Outcome, Queue, Runner
from hallpass_kit.tables import KitTables

logger = logging.getLogger("hallpass.outbox")


@dataclass(frozen=True)
class Event:
    id: uuid.UUID
    type: str
    school: str
    payload: Mapping[str, Any]
    occurred_at: dt.datetime


EventHandler = Callable[[Event], None]


@dataclass(frozen=True)
class Listener:
    """A handler one service offers for another service's events (``source`` is its name).

    The gateway subscribes it to the source's dispatcher in all-in-one mode; over HTTP the same
    handler would sit behind a signed webhook receiver.
    """

    source: str
    event_type: str
    name: str
    handler: EventHandler


def emit(
    session: Session,
    tables: KitTables,
    *,
    type: str,
    school: str,
    payload: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> uuid.UUID:
    """Store an event in the caller's transaction (occurring ``now``, by the service's clock)."""
    event_id = uuid.uuid4()
    now = now or utcnow()
    session.execute(
        insert(tables.outbox_event).values(
            id=event_id,
            school=school,
            type=type,
            payload=dict(payload),
            occurred_at=now,
            dispatched_at=None,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
        )
    )
    return event_id


def mark_consumed(session: Session, table: Table, *, consumer: str, event_id: uuid.UUID) -> bool:
    """Record that ``consumer`` handled ``event_id``; False when it already had."""
    seen = session.execute(
        select(table.c.event_id).where(table.c.consumer == consumer, table.c.event_id == event_id)
    ).first()
    if seen is not None:
        return False
    session.execute(
        insert(table).values(consumer=consumer, event_id=event_id, consumed_at=utcnow())
    )
    return True


@dataclass
class _Periodic:
    name: str
    interval: dt.timedelta
    task: Callable[[], None]
    next_run: dt.datetime = field(default_factory=utcnow)


def outbox_queue(
    tables: KitTables,
    *,
    service: str,
    max_attempts: int = 100,
    max_backoff: dt.timedelta = dt.timedelta(minutes=10),
    lease: dt.timedelta = dt.timedelta(minutes=5),
) -> Queue:
    """The outbox as a job queue: an event is a job until dispatched to all its subscribers.

    An event failing for ``max_attempts`` tries (about half a day at the default cap) is set
    aside as a dead letter, to be read and replayed, rather than retried for ever.
    """
    t = tables.outbox_event
    return Queue(
        service=service,
        kind="outbox",
        table=t,
        waiting=t.c.dispatched_at.is_(None),
        order_by=(t.c.occurred_at,),
        max_attempts=max_attempts,
        lease=lease,
        # The first retry waits one to two seconds: a subscriber that failed a moment ago is
        # not called again within the same breath.
        backoff=Backoff(first=dt.timedelta(seconds=2), cap=max_backoff),
    )


class Dispatcher:
    """Delivers stored events to subscribers; runs in a background thread or on demand.

    Claims, retries and dead letters are the job engine's (jobs.py), so any number of
    dispatchers over one database deliver each event once per success.
    """

    def __init__(
        self,
        database: Database,
        tables: KitTables,
        *,
        service: str = "service",
        batch_size: int = 200,
        poll_interval: float = 2.0,
        max_backoff: dt.timedelta = dt.timedelta(minutes=10),
        max_attempts: int = 100,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.database = database
        self.tables = tables
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.clock = clock
        self.jobs = JobQueue(
            database,
            outbox_queue(
                tables, service=service, max_attempts=max_attempts, max_backoff=max_backoff
            ),
            clock=clock,
        )
        self._subscribers: dict[str, list[tuple[str, EventHandler]]] = {}
        self._periodic: list[_Periodic] = []
        self._runner = Runner(database, "dispatcher", self._run_pass, poll_interval=poll_interval)

    def subscribe(self, event_type: str, name: str, handler: EventHandler) -> None:
        self._subscribers.setdefault(event_type, []).append((name, handler))

    def every(self, interval: dt.timedelta, name: str, task: Callable[[], None]) -> None:
        """Run ``task`` in the dispatcher thread about every ``interval`` (housekeeping, sweeps)."""
        self._periodic.append(_Periodic(name, interval, task))

    def wake(self) -> None:
        self._runner.wake()

    def dispatch_pending(self, now: dt.datetime | None = None) -> int:
        """Deliver every event due (as of ``now``) once; how many reached all their subscribers."""
        return self.jobs.run_until_idle(self._dispatch, limit=self.batch_size, now=now)

    def _dispatch(self, job: Job) -> Outcome:
        row = job.row
        event = Event(row["id"], row["type"], row["school"], row["payload"], row["occurred_at"])
        error = self._deliver(event)
        if error is None:
            return Outcome.done({"dispatched_at": self.clock()})
        return Outcome.retry(error)

    def _deliver(self, event: Event) -> str | None:
        handlers = self._subscribers.get(event.type, []) + self._subscribers.get("*", [])
        for name, handler in handlers:
            try:
                handler(event)
            except Exception as exc:  # a failing subscriber must not stop the others' retries
                logger.exception("subscriber %s failed on event %s", name, event.id)
                return f"{name}: {type(exc).__name__}: {exc}"
        return None

    def run_periodic(self, now: dt.datetime | None = None) -> None:
        moment = now or self.clock()
        for job in self._periodic:
            if job.next_run <= moment:
                job.next_run = moment + job.interval
                try:
                    job.task()
                except Exception:
                    logger.exception("periodic task %s failed", job.name)

    def _run_pass(self) -> bool:
        report = self.jobs.run_batch(
            self._dispatch, limit=self.batch_size, stopping=lambda: self._runner.stopping
        )
        self.run_periodic()
        return report.claimed == self.batch_size and not report.halted

    def start(self) -> None:
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop(timeout=10)


def purge_consumed(session: Session, table: Table, *, older_than: dt.datetime) -> None:
    session.execute(delete(table).where(table.c.consumed_at < older_than))
