"""The delivery worker: claims due envelopes, sends them, records each outcome.

Crash safety comes from the row, not the process, and the mechanics are the kit's job engine
(hallpass_kit.jobs): a claim (status ``sending``, a claim token and a lease) is committed before
anything is sent; each outcome is committed on its own right after the transport returns. A
worker that dies in between leaves rows whose lease lapses, and the next pass of any worker takes
them again with the same Message-ID. The one window left is between the mail server accepting a
message and the outcome's commit: a crash exactly there sends that envelope a second time, with
the same Message-ID, so receiving systems can recognise the copy (docs/mail-delivery.md).

What stays here is mail's own sense of an outcome: an outage pauses the worker and uses up no
attempt, a 4xx is retried, a 5xx fails at once. Provider limits (limits.py) are honoured before
each send: an envelope whose mailbox has no free slot goes back untried until one frees, and a
provider's throttling answer holds and slows that mailbox without using up an attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from hallpass_comms.delivery import repository
from hallpass_comms.delivery.limits import Pacer, SendingLimits, TooManyRecipients, Wait
from hallpass_comms.delivery.rendering import RenderError, render
from hallpass_comms.delivery.transports import (
    MailTransport,
    PermanentFailure,
    RecipientsRefused,
    ServerUnavailable,
    Throttled,
    TransientFailure,
)
from hallpass_comms.models import Delivery, DeliveryStatus, Message, kit_tables
from hallpass_kit.audit import AuditChain
from hallpass_kit.db import Database, utcnow
from hallpass_kit.jobs import Job, JobQueue, Outcome, Runner, Settled, Settlement

logger = logging.getLogger("hallpass.comms.delivery")

ACTOR = "service:comms-delivery"
OUTAGE_BACKOFF = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Deferral(Outcome):
    """A deferral (no attempt used) that says why, for its audit entry."""

    reason: str = "server_unavailable"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchReport:
    claimed: int
    sent: int
    # The server could not be reached: the rest of the batch was put back untried.
    server_unavailable: bool
    # When the first envelope put back to wait for a provider slot comes due.
    next_slot: dt.datetime | None = None


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
        limits: SendingLimits | None = None,
    ) -> None:
        if min(batch_size, max_attempts, concurrency) < 1 or lease <= dt.timedelta(0):
            raise ValueError(
                "batch_size, max_attempts and concurrency must be positive, lease longer than 0"
            )
        self.database = database
        self.transport = transport
        self.public_base_url = public_base_url
        self.clock = clock
        self.batch_size = batch_size
        self.jobs = JobQueue(
            database,
            repository.delivery_queue(
                max_attempts=max_attempts,
                lease=lease,
                max_backoff=max_backoff,
                on_settled=self._settled,
            ),
            clock=clock,
            worker_id=worker_id,
        )
        self.worker_id = self.jobs.worker_id
        self.pacer = Pacer(
            database,
            limits or SendingLimits(),
            clock=clock,
            backoff=lambda throttles: self.backoff(throttles, cap=max_backoff),
        )
        # While the server is down one envelope probes it at most this far apart.
        self.outage_backoff = min(OUTAGE_BACKOFF, max_backoff)
        self._outages = 0
        self._paused_until: dt.datetime | None = None
        self._outage_lock = threading.Lock()
        self._audit = AuditChain(kit_tables.audit_entry)
        # A lane whose pass put envelopes back to wait for a provider slot naps until the slot
        # frees rather than a whole poll interval, so limited mail leaves on time.
        self._naps = threading.Event()
        # Lanes side by side: while one waits for the mail server another waits for the
        # database, which is most of an envelope's time.
        self._runner = Runner(
            database,
            f"mail-{self.worker_id}",
            self._run_pass,
            poll_interval=poll_interval,
            lanes=concurrency,
        )

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
        jobs = self.jobs.claim(self.batch_size)
        with self.database.session(read_only=True) as session:
            deliveries = repository.deliveries_by_id(session, {job.key for job in jobs})
            messages = repository.messages_by_id(
                session, {d.message_id for d in deliveries.values()}
            )
        sent = 0
        # Mailboxes found without a free slot in this pass: their other envelopes wait too,
        # without asking the database again, and go back together at the end of the pass.
        waiting: dict[str, dt.datetime] = {}
        later: dict[dt.datetime, list[Job]] = {}
        try:
            for index in range(len(jobs)):
                rest = self.jobs.keep_lease(jobs[index:])
                jobs[index:] = rest
                job = rest[0]
                if self._runner.stopping:
                    self.jobs.release(rest)
                    break
                delivery = deliveries.get(job.key)
                message = messages.get(delivery.message_id) if delivery is not None else None
                try:
                    outcome = self._attempt(message, delivery, waiting)
                except ServerUnavailable as exc:
                    # The server could not be reached at all; nothing about the envelopes is
                    # wrong: the worker pauses and they wait with it, using up no attempts.
                    resume_at = self._pause()
                    self.jobs.record(job, Outcome.defer(str(exc), until=resume_at))
                    self.jobs.release(rest[1:], at=resume_at)
                    return BatchReport(len(jobs), sent, server_unavailable=True)
                if outcome.kind == "release" and outcome.at is not None:
                    later.setdefault(outcome.at, []).append(job)
                    continue
                self.jobs.record(job, outcome)
                if outcome.kind == "done":
                    # Sent is what the server accepted, whether or not our lease still held it.
                    sent += 1
                    self._outages = 0
        finally:
            for until, held in later.items():
                self.jobs.release(held, at=until)
        next_slot = min(later) if later else None
        return BatchReport(len(jobs), sent, server_unavailable=False, next_slot=next_slot)

    def _pause(self) -> dt.datetime:
        """Pause sending until the server may be back.

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
        """Wait before the next try: the job engine's one formula (doubling from 1 s, capped,
        with jitter so retries spread)."""
        return self.jobs.backoff(attempts, cap=cap)

    def _attempt(
        self,
        message: Message | None,
        delivery: Delivery | None,
        waiting: dict[str, dt.datetime] | None = None,
    ) -> Outcome:
        if message is None or delivery is None:
            return Outcome.fail("the message of this delivery does not exist")
        waiting = {} if waiting is None else waiting
        mailbox = message.sender_address.lower()
        if (until := waiting.get(mailbox)) is not None and until > self.clock():
            return Outcome.release(at=until)
        try:
            email = render(message, delivery, public_base_url=self.public_base_url)
            recipients = len(delivery.to_addresses) + len(delivery.cc_addresses)
            slot = self.pacer.reserve(mailbox, recipients, delivery.id)
        except (RenderError, TooManyRecipients) as exc:
            return Outcome.fail(str(exc))
        if isinstance(slot, Wait):
            # No slot before ``until``: back to the queue untried, its place kept by due time.
            waiting[mailbox] = slot.until
            return Outcome.release(at=slot.until)
        try:
            self.transport.send(email)
        except RecipientsRefused as exc:
            # Some recipients refused while the rest accepted: sent, but not to everyone.
            return self._sent(error=str(exc))
        except PermanentFailure as exc:
            self.pacer.cancel(slot)
            return Outcome.fail(str(exc))
        except Throttled as exc:
            self.pacer.cancel(slot)
            return self._throttled(mailbox, exc, waiting)
        except ServerUnavailable:
            self.pacer.cancel(slot)
            raise
        except TransientFailure as exc:
            self.pacer.cancel(slot)
            return Outcome.retry(str(exc))
        except Exception as exc:
            # A fault in a transport must not stop the batch; the attempt limit bounds the retries.
            logger.exception("delivery %s: unexpected error from the transport", delivery.id)
            self.pacer.cancel(slot)
            return Outcome.retry(f"{type(exc).__name__}: {exc}")
        return self._sent()

    def _throttled(self, mailbox: str, exc: Throttled, waiting: dict[str, dt.datetime]) -> Outcome:
        """The provider asked us to slow down: nothing is wrong with the envelope, so it uses up
        no attempt; the mailbox is held (every worker sees it) and its pace lowered."""
        until = self.pacer.throttled(mailbox, exc.retry_after)
        waiting[mailbox] = until
        return Deferral(
            "retry",
            error=str(exc),
            at=until,
            counted=False,
            reason="throttled",
            details={"retry_after": exc.retry_after, "mailbox": mailbox},
        )

    def _sent(self, *, error: str | None = None) -> Outcome:
        return Outcome.done({"status": DeliveryStatus.sent, "sent_at": self.clock()}, error=error)

    # ----------------------------------------------------------------------------------------
    # The audit entry of every outcome, written in the outcome's own transaction

    def _settled(
        self, session: Session, job: Job, outcome: Outcome, settlement: Settlement
    ) -> None:
        error = settlement.error
        if settlement.state is Settled.lost:
            # Our lease ran out and another worker took the row; it records its own outcome.
            self._append_audit(
                session,
                job,
                settlement,
                action="mail.sent" if outcome.kind == "done" else "mail.attempted",
                outcome="lease_lost",
                details={"error": error},
            )
        elif settlement.state is Settled.done:
            partial = error is not None
            self._append_audit(
                session,
                job,
                settlement,
                action="mail.sent",
                outcome="partial" if partial else "ok",
                details={"refused": error} if partial else {},
            )
        elif settlement.state is Settled.dead:
            self._append_audit(
                session,
                job,
                settlement,
                action="mail.failed",
                outcome="failed",
                details={"error": error},
            )
        elif outcome.kind == "retry":
            # An outage is not the envelope's fault: it used up none of its attempts, so a relay
            # that is down for hours delays mail but never fails it.
            next_at = settlement.next_attempt_at
            reason = "retry" if outcome.counted else "server_unavailable"
            extra: dict[str, Any] = {}
            if isinstance(outcome, Deferral):
                reason, extra = outcome.reason, outcome.details
            self._append_audit(
                session,
                job,
                settlement,
                action="mail.deferred",
                outcome=reason,
                details={
                    "error": error,
                    "next_attempt_at": next_at and next_at.isoformat(),
                    **extra,
                },
            )

    def _append_audit(
        self,
        session: Session,
        job: Job,
        settlement: Settlement,
        *,
        action: str,
        outcome: str,
        details: Mapping[str, Any],
    ) -> None:
        row = job.row
        self._audit.append(
            session,
            actor=ACTOR,
            school=row["school_id"],
            action=action,
            outcome=outcome,
            target=f"delivery:{job.key}",
            details={
                "message": str(row["message_id"]),
                "message_id_header": row["message_id_header"],
                "attempts": settlement.attempts,
                "claimant": job.claim,
                **details,
            },
        )

    # ----------------------------------------------------------------------------------------
    # Background threads

    def start(self) -> None:
        """Send in background threads, woken by every commit of this database and every second."""
        self._naps.clear()
        self._runner.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the envelopes in hand, put the rest of the batches back, end the threads.

        A transport with a ``close()`` (SMTP) is closed too; it reopens if the worker starts again.
        """
        self._naps.set()
        self._runner.stop(timeout)
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    def wake(self) -> None:
        self._runner.wake()

    def _run_pass(self) -> bool:
        report = self.run_batch()
        more = report.claimed == self.batch_size and not report.server_unavailable
        if not more and report.next_slot is not None:
            nap = (report.next_slot - self.clock()).total_seconds()
            if 0 < nap < self._runner.poll_interval:
                self._naps.wait(nap)
                return True
        return more
