"""The delivery worker: claims due envelopes, sends them, records each outcome.

Crash safety comes from the row, not the process. A claim (status ``sending``, a claimant and a
lease) is committed before anything is sent; each outcome is committed on its own right after the
transport returns. A worker that dies in between leaves rows whose lease lapses, and the next pass
of any worker takes them again with the same Message-ID. The one window left is between the mail
server accepting a message and the outcome's commit: a crash exactly there sends that envelope a
second time, with the same Message-ID, so receiving systems can recognise the copy
(docs/mail-delivery.md).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy.orm import Session

from hallpass_comms.delivery import repository
from hallpass_comms.delivery.rendering import RenderError, render
from hallpass_comms.delivery.transports import (
    MailTransport,
    PermanentFailure,
    RecipientsRefused,
    ServerUnavailable,
    TransientFailure,
)
from hallpass_comms.models import Delivery, DeliveryStatus, Message, kit_tables
from hallpass_kit.audit import AuditChain
from hallpass_kit.db import Database, utcnow

logger = logging.getLogger("hallpass.comms.delivery")

ACTOR = "service:comms-delivery"
FIRST_BACKOFF = dt.timedelta(seconds=1)
OUTAGE_BACKOFF = dt.timedelta(minutes=1)
_ERROR_LIMIT = 2000


class Result(Enum):
    sent = "sent"
    retry = "retry"
    failed = "failed"


@dataclass(frozen=True)
class Outcome:
    result: Result
    error: str | None = None
    # Some recipients refused while the rest accepted: sent, but not to everyone.
    partial: bool = False
    # The server could not be reached at all; the envelope itself is not at fault.
    server_unavailable: bool = False


@dataclass(frozen=True)
class BatchReport:
    claimed: int
    sent: int
    # The server could not be reached: the rest of the batch was put back untried.
    server_unavailable: bool


class DeliveryWorker:
    """Sends due Delivery rows through ``transport``.

    In background threads after ``start()``, or one pass at a time in the caller's thread with
    ``run_once()``.
    """

    def __init__(
        self,
        database: Database,
        transport: MailTransport,
        *,
        public_base_url: str,
        clock: Callable[[], dt.datetime] = utcnow,
        worker_id: str | None = None,
        batch_size: int = 50,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        max_attempts: int = 12,
        max_backoff: dt.timedelta = dt.timedelta(hours=1),
        poll_interval: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        if min(batch_size, max_attempts, concurrency) < 1 or lease <= dt.timedelta(0):
            raise ValueError(
                "batch_size, max_attempts and concurrency must be positive, lease longer than 0"
            )
        self.database = database
        self.transport = transport
        self.public_base_url = public_base_url
        self.clock = clock
        self.worker_id = (worker_id or _default_worker_id())[:80]
        # Each claim gets a token of its own (worker id and a counter), so an outcome lands only
        # on rows that this very claim still holds, even between threads of one worker.
        self._claims = itertools.count(1)
        self.batch_size = batch_size
        self.lease = lease
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        # Threads that start() runs side by side: while one waits for the mail server another
        # waits for the database, which is most of an envelope's time.
        self.concurrency = concurrency
        # While the server is down one envelope probes it at most this far apart.
        self.outage_backoff = min(OUTAGE_BACKOFF, max_backoff)
        self._outages = 0
        self._paused_until: dt.datetime | None = None
        self._outage_lock = threading.Lock()
        self._audit = AuditChain(kit_tables.audit_entry)
        self._random = random.Random()  # noqa: S311 - jitter spreads retries, it guards nothing
        self._skip_locked = database.dialect == "postgresql"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lanes: tuple[threading.Thread, ...] = ()
        database.on_commit(self._on_commit)

    # ----------------------------------------------------------------------------------------
    # One pass

    def run_once(self) -> int:
        """Claim one batch of due envelopes, send and record each; returns how many were sent."""
        return self.run_batch().sent

    def run_until_idle(self) -> int:
        """Run passes until no full batch is left due (or the server is unreachable)."""
        sent = 0
        while True:
            report = self.run_batch()
            sent += report.sent
            if report.claimed < self.batch_size or report.server_unavailable:
                return sent

    def run_batch(self) -> BatchReport:
        """One pass: claim, send and record one batch (run_once without the summary)."""
        paused_until = self._paused_until
        if paused_until is not None and self.clock() < paused_until:
            # The server was down a moment ago; every envelope would meet the same closed door.
            return BatchReport(0, 0, server_unavailable=True)
        claimed, messages = self._claim()
        sent = 0
        for index, delivery in enumerate(claimed):
            rest = claimed[index:]
            if self._stop.is_set():
                self._release(rest, due_at=None)
                break
            self._keep_lease(rest)
            outcome = self._attempt(messages.get(delivery.message_id), delivery)
            if outcome.result is Result.sent:
                sent += 1
                self._outages = 0
            if outcome.server_unavailable:
                resume_at = self._pause()
                self._record(delivery, outcome, resume_at=resume_at)
                self._release(claimed[index + 1 :], due_at=resume_at)
                return BatchReport(len(claimed), sent, server_unavailable=True)
            self._record(delivery, outcome)
        return BatchReport(len(claimed), sent, server_unavailable=False)

    def _pause(self) -> dt.datetime:
        """Nothing about the envelopes is wrong: the worker pauses and they wait with it.

        The pause grows with each probe that finds the server still down; threads that meet the
        outage while a pause is already set join that pause instead of lengthening it.
        """
        with self._outage_lock:
            now = self.clock()
            if self._paused_until is not None and self._paused_until > now:
                return self._paused_until
            self._outages += 1
            self._paused_until = now + self.backoff(self._outages, cap=self.outage_backoff)
            return self._paused_until

    def backoff(self, attempts: int, *, cap: dt.timedelta | None = None) -> dt.timedelta:
        """Wait before the next try: doubling from 1 s, capped, with jitter so retries spread."""
        doublings = min(max(attempts - 1, 0), 30)
        ceiling: dt.timedelta = min(FIRST_BACKOFF * (1 << doublings), cap or self.max_backoff)
        return ceiling * self._random.uniform(0.5, 1.0)

    def _claim(self) -> tuple[list[Delivery], dict[uuid.UUID, Message]]:
        now = self.clock()
        with self.database.session() as session:
            rows = repository.claim_due(
                session,
                claimant=f"{self.worker_id}#{next(self._claims)}",
                now=now,
                lease_until=now + self.lease,
                limit=self.batch_size,
                skip_locked=self._skip_locked,
            )
            messages = repository.messages_by_id(session, {row.message_id for row in rows})
            usable: list[Delivery] = []
            for row in rows:
                if row.attempts > self.max_attempts:
                    # Earlier claimants used every attempt and never reported back.
                    error = f"gave up after {self.max_attempts} attempts; the last never finished"
                    self._finish(session, row, Outcome(Result.failed, error))
                else:
                    usable.append(row)
        return usable, messages

    def _attempt(self, message: Message | None, delivery: Delivery) -> Outcome:
        if message is None:
            return Outcome(Result.failed, "the message of this delivery does not exist")
        try:
            email = render(message, delivery, public_base_url=self.public_base_url)
            self.transport.send(email)
        except RecipientsRefused as exc:
            return Outcome(Result.sent, str(exc), partial=True)
        except (RenderError, PermanentFailure) as exc:
            return Outcome(Result.failed, str(exc))
        except ServerUnavailable as exc:
            return Outcome(Result.retry, str(exc), server_unavailable=True)
        except TransientFailure as exc:
            return Outcome(Result.retry, str(exc))
        except Exception as exc:
            # A fault in a transport must not stop the batch; the attempt limit bounds the retries.
            logger.exception("delivery %s: unexpected error from the transport", delivery.id)
            return Outcome(Result.retry, f"{type(exc).__name__}: {exc}")
        return Outcome(Result.sent)

    def _record(
        self, delivery: Delivery, outcome: Outcome, *, resume_at: dt.datetime | None = None
    ) -> None:
        with self.database.session() as session:
            row = repository.held_by(session, delivery.id, _claimant(delivery))
            if row is None:
                # Our lease ran out and another worker took the row; it records its own outcome.
                logger.warning(
                    "delivery %s: lease lost before recording %s", delivery.id, outcome.result
                )
                self._append_audit(
                    session,
                    delivery,
                    claimant=_claimant(delivery),
                    action="mail.sent" if outcome.result is Result.sent else "mail.attempted",
                    outcome="lease_lost",
                    details={"error": outcome.error},
                )
                return
            self._finish(session, row, outcome, resume_at=resume_at)

    def _finish(
        self,
        session: Session,
        row: Delivery,
        outcome: Outcome,
        *,
        resume_at: dt.datetime | None = None,
    ) -> None:
        now = self.clock()
        claimant = _claimant(row)
        row.claimed_by = None
        row.claimed_until = None
        error = outcome.error[:_ERROR_LIMIT] if outcome.error else None
        if outcome.server_unavailable:
            # An outage is not the envelope's fault: it does not use up one of its attempts,
            # so a relay that is down for hours delays mail but never fails it.
            row.status = DeliveryStatus.queued
            row.attempts -= 1
            row.due_at = resume_at or now + self.backoff(1, cap=self.outage_backoff)
            row.last_error = error
            self._append_audit(
                session,
                row,
                claimant=claimant,
                action="mail.deferred",
                outcome="server_unavailable",
                details={"error": error, "next_attempt_at": row.due_at.isoformat()},
            )
            return
        if outcome.result is Result.sent:
            row.status = DeliveryStatus.sent
            row.sent_at = now
            row.last_error = error
            self._append_audit(
                session,
                row,
                claimant=claimant,
                action="mail.sent",
                outcome="partial" if outcome.partial else "ok",
                details={"refused": error} if outcome.partial else {},
            )
            return
        if outcome.result is Result.retry and row.attempts < self.max_attempts:
            row.status = DeliveryStatus.queued
            row.due_at = now + self.backoff(row.attempts)
            row.last_error = error
            self._append_audit(
                session,
                row,
                claimant=claimant,
                action="mail.deferred",
                outcome="retry",
                details={"error": error, "next_attempt_at": row.due_at.isoformat()},
            )
            return
        if outcome.result is Result.retry:
            error = f"gave up after {row.attempts} attempts: {error}"[:_ERROR_LIMIT]
        row.status = DeliveryStatus.failed
        row.last_error = error
        self._append_audit(
            session,
            row,
            claimant=claimant,
            action="mail.failed",
            outcome="failed",
            details={"error": error},
        )

    def _append_audit(
        self,
        session: Session,
        row: Delivery,
        *,
        claimant: str,
        action: str,
        outcome: str,
        details: Mapping[str, Any],
    ) -> None:
        self._audit.append(
            session,
            actor=ACTOR,
            school=row.school_id,
            action=action,
            outcome=outcome,
            target=f"delivery:{row.id}",
            details={
                "message": str(row.message_id),
                "message_id_header": row.message_id_header,
                "attempts": row.attempts,
                "claimant": claimant,
                **details,
            },
        )

    def _keep_lease(self, rows: Sequence[Delivery]) -> None:
        """Extend the claim on the rows still in hand before it can lapse under a slow server."""
        now = self.clock()
        lapses = rows[0].claimed_until if rows else None
        if lapses is None or now < lapses - self.lease / 2:
            return
        until = now + self.lease
        with self.database.session() as session:
            repository.extend_lease(session, [row.id for row in rows], _claimant(rows[0]), until)
        for row in rows:
            row.claimed_until = until

    def _release(self, rows: Sequence[Delivery], *, due_at: dt.datetime | None) -> None:
        if not rows:
            return
        with self.database.session() as session:
            repository.release(session, [row.id for row in rows], _claimant(rows[0]), due_at)

    # ----------------------------------------------------------------------------------------
    # Background thread

    def start(self) -> None:
        """Send in background threads, woken by every commit of this database and every second."""
        if self._lanes:
            return
        self._stop.clear()
        self._lanes = tuple(
            threading.Thread(
                target=self._loop, name=f"hallpass-mail-{self.worker_id}-{lane}", daemon=True
            )
            for lane in range(self.concurrency)
        )
        for thread in self._lanes:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the envelopes in hand, put the rest of the batches back, end the threads.

        A transport with a ``close()`` (SMTP) is closed too; it reopens if the worker starts again.
        """
        self._stop.set()
        self._wake.set()
        lanes, self._lanes = self._lanes, ()
        deadline = time.monotonic() + timeout
        for thread in lanes:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    def wake(self) -> None:
        self._wake.set()

    def _on_commit(self) -> None:
        # Our own claims and outcomes commit too; only other writers bring new work.
        if threading.current_thread() not in self._lanes:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self.run_batch()
            except Exception:
                logger.exception("delivery pass failed; trying again on the next pass")
                report = BatchReport(0, 0, server_unavailable=True)
            if self._stop.is_set():
                return
            if report.claimed == self.batch_size and not report.server_unavailable:
                continue
            self._wake.wait(self.poll_interval)


def _claimant(row: Delivery) -> str:
    # The claim token the claim query wrote on the row (and on our copy of it).
    return row.claimed_by or ""


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
