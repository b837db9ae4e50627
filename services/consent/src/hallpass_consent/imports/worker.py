"""A lane of its own for background imports, so an import never waits behind the outbox's other
events (a day's consent changes after a big re-import can be thousands).

The lane is a job queue over the same outbox rows, narrowed to import jobs. The engine's claim
columns are the row's own, so this lane and the dispatcher (which also handles the event, for a
deployment that runs no import lane) never hold one import at once: whichever claims it first
runs it, and a second claim after a worker died finds it ``running`` and ends it ``failed``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from sqlalchemy import and_, select

from hallpass_consent.imports.service import IMPORT_QUEUED, ImportRunner
from hallpass_consent.models import kit_tables
from hallpass_kit.db import Database
from hallpass_kit.jobs import Job, JobQueue, Outcome, Queue, Runner

# Longer than any import of the largest file allowed, even on a busy server: a lease that
# lapsed while the import still ran would let another claim end it as interrupted.
IMPORT_LEASE = dt.timedelta(minutes=15)
# A first claim runs the import; a second can only be one whose worker died (it ends the import
# as failed); a third is never needed.
IMPORT_ATTEMPTS = 3


def import_queue() -> Queue:
    t = kit_tables.outbox_event
    return Queue(
        service="consent",
        kind="pupil-imports",
        table=t,
        waiting=and_(t.c.dispatched_at.is_(None), t.c.type == IMPORT_QUEUED),
        order_by=(t.c.occurred_at,),
        max_attempts=IMPORT_ATTEMPTS,
        lease=IMPORT_LEASE,
    )


class ImportWorker:
    """Runs queued imports one at a time in a background thread (or on demand in tests)."""

    def __init__(
        self,
        database: Database,
        imports: ImportRunner,
        *,
        clock: Callable[[], dt.datetime],
        poll_interval: float = 2.0,
    ) -> None:
        self.imports = imports
        self.clock = clock
        self.database = database
        self.queue = import_queue()
        self.jobs = JobQueue(database, self.queue, clock=clock)
        self._runner = Runner(
            database, "pupil-imports", self._run_pass, poll_interval=poll_interval
        )

    def _handle(self, job: Job) -> Outcome:
        self.imports.run(uuid.UUID(str(job.row["payload"]["import_id"])))
        return Outcome.done({"dispatched_at": self.clock()})

    def _any_waiting(self) -> bool:
        # The lane wakes at every commit of the service's other writers; looking first in a
        # read-only transaction (which never queues for SQLite's write lock) keeps an idle lane
        # from taking that lock for a claim that finds nothing.
        with self.database.session(read_only=True) as session:
            found = session.execute(
                select(self.queue.table.c.id).where(self.queue.waiting).limit(1)
            ).first()
        return found is not None

    def _run_pass(self) -> bool:
        if not self._any_waiting():
            return False
        report = self.jobs.run_batch(self._handle, limit=1, stopping=lambda: self._runner.stopping)
        return report.claimed == 1

    def run_pending(self, now: dt.datetime | None = None) -> int:
        """Run every import due now, one after another; how many ran."""
        return self.jobs.run_until_idle(self._handle, limit=1, now=now)

    def start(self) -> None:
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop(timeout=60)
