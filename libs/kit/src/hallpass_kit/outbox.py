"""Transactional outbox: events are written with the change and dispatched only after commit.

Delivery is at-least-once; consumers record the event ids they have handled (``mark_consumed``)
so a redelivery changes nothing. In all-in-one mode subscribers are in-process callables; an HTTP
webhook deliverer is one more subscriber with the same signature.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from hallpass_kit.db import Database, utcnow
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
    session: Session, tables: KitTables, *, type: str, school: str, payload: Mapping[str, Any]
) -> uuid.UUID:
    """Store an event in the caller's transaction."""
    event_id = uuid.uuid4()
    now = utcnow()
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


class Dispatcher:
    """Delivers stored events to subscribers; runs in a background thread or on demand."""

    def __init__(
        self,
        database: Database,
        tables: KitTables,
        *,
        batch_size: int = 200,
        poll_interval: float = 2.0,
        max_backoff: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self.database = database
        self.tables = tables
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._subscribers: dict[str, list[tuple[str, EventHandler]]] = {}
        self._periodic: list[_Periodic] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        database.on_commit(self.wake)

    def subscribe(self, event_type: str, name: str, handler: EventHandler) -> None:
        self._subscribers.setdefault(event_type, []).append((name, handler))

    def every(self, interval: dt.timedelta, name: str, task: Callable[[], None]) -> None:
        """Run ``task`` in the dispatcher thread about every ``interval`` (housekeeping, sweeps)."""
        self._periodic.append(_Periodic(name, interval, task))

    def wake(self) -> None:
        self._wake.set()

    def dispatch_pending(self, now: dt.datetime | None = None) -> int:
        """Deliver every due event once; returns how many were delivered to all subscribers."""
        delivered = 0
        while True:
            batch_delivered, batch_size = self._dispatch_batch(now or utcnow())
            delivered += batch_delivered
            if batch_size < self.batch_size:
                return delivered

    def _dispatch_batch(self, now: dt.datetime) -> tuple[int, int]:
        t = self.tables.outbox_event
        delivered = 0
        with self.database.sessionmaker() as session, session.begin():
            query = (
                select(t)
                .where(t.c.dispatched_at.is_(None), t.c.next_attempt_at <= now)
                .order_by(t.c.occurred_at)
                .limit(self.batch_size)
            )
            if self.database.dialect == "postgresql":
                # Several replicas may dispatch; each claims rows no other holds.
                query = query.with_for_update(skip_locked=True)
            rows = session.execute(query).all()
            for row in rows:
                event = Event(row.id, row.type, row.school, row.payload, row.occurred_at)
                error = self._deliver(event)
                if error is None:
                    session.execute(
                        update(t)
                        .where(t.c.id == row.id)
                        .values(dispatched_at=utcnow(), attempts=row.attempts + 1, last_error=None)
                    )
                    delivered += 1
                else:
                    backoff = min(
                        dt.timedelta(seconds=2 ** min(row.attempts, 20)), self.max_backoff
                    )
                    session.execute(
                        update(t)
                        .where(t.c.id == row.id)
                        .values(
                            attempts=row.attempts + 1,
                            next_attempt_at=now + backoff,
                            last_error=error[:2000],
                        )
                    )
        return delivered, len(rows)

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
        moment = now or utcnow()
        for job in self._periodic:
            if job.next_run <= moment:
                job.next_run = moment + job.interval
                try:
                    job.task()
                except Exception:
                    logger.exception("periodic task %s failed", job.name)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="hallpass-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.dispatch_pending()
                self.run_periodic()
            except Exception:
                logger.exception("dispatcher pass failed; retrying on the next pass")


def purge_consumed(session: Session, table: Table, *, older_than: dt.datetime) -> None:
    session.execute(delete(table).where(table.c.consumed_at < older_than))
