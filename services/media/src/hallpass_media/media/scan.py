"""The scan job: reads each new upload once, off the request path (metadata, OCR, faces, hash).

Uploads wait as ``pending`` in a queue of the kit's job engine (hallpass_kit.jobs): a pass claims
them one at a time (``SKIP LOCKED`` on PostgreSQL, so replicas share the work), has a scan worker
scan each and stores the result. A picture that exhausts, crashes or outlasts its worker is marked
``failed`` at once. A claim that was never finished (the whole process died mid-scan) is taken
again once its lease (``STALE_CLAIM``) lapses, but every claim counts an attempt, and after
``MAX_SCAN_ATTEMPTS`` the picture is marked failed instead: whatever happened, no picture is
scanned again and again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from hallpass_kit.db import Database
from hallpass_kit.jobs import Job, JobColumns, JobQueue, Outcome, Queue, Settled, Settlement
from hallpass_media.common import audit
from hallpass_media.models import Base, MediaItem, ScanStatus
from hallpass_media.scanning import (
    ImageRefused,
    ImageScans,
    ScanWorkersBusy,
    ScanWorkersUnavailable,
)
from hallpass_media.storage import Storage, StorageUnavailable

logger = logging.getLogger("hallpass.media.scan")

# Longer than a scan may take (``scan_seconds`` is at most 10 minutes, and a worker overrunning
# it is killed), so a claim this old was left by a process that died.
STALE_CLAIM = dt.timedelta(minutes=11)
MAX_SCAN_ATTEMPTS = 3
SCAN_ACTOR = "service:media-scan"

# The store or the scanner is unavailable, not the picture: it waits for a later pass.
_NOT_THE_PICTURE = (StorageUnavailable, ScanWorkersBusy, ScanWorkersUnavailable)


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _scanning(now: dt.datetime) -> Mapping[str, Any]:
    return {"scan_status": ScanStatus.scanning, "scan_claimed_at": now}


def _pending(_now: dt.datetime) -> Mapping[str, Any]:
    return {"scan_status": ScanStatus.pending}


def _given_up(now: dt.datetime) -> Mapping[str, Any]:
    return {"scan_status": ScanStatus.failed, "scanned_at": now}


def scan_queue() -> Queue:
    """Uploads to scan as a job queue over ``media_item`` and its ``scan_*`` columns."""
    table = Base.metadata.tables[MediaItem.__tablename__]
    return Queue(
        service="media",
        kind="scan",
        table=table,
        waiting=table.c.scan_status.in_((ScanStatus.pending, ScanStatus.scanning)),
        columns=JobColumns(
            attempts="scan_attempts",
            next_attempt_at="scan_due_at",
            claimed_by="scan_claimed_by",
            claimed_until="scan_claimed_until",
            last_error="scan_error",
            dead_at="scan_dead_at",
            queued_at="uploaded_at",
        ),
        order_by=(table.c.uploaded_at,),
        max_attempts=MAX_SCAN_ATTEMPTS,
        lease=STALE_CLAIM,
        claim_values=_scanning,
        waiting_values=_pending,
        dead_values=_given_up,
        on_settled=_audit_scan,
        abandoned_error=(
            "gave up after {attempts} attempts: every scan of it ended with its process"
        ),
    )


def scan_jobs(database: Database) -> JobQueue:
    """The scan queue of ``database``; keep one per service so /metrics reports it."""
    return JobQueue(database, scan_queue())


def claim(
    database: Database, limit: int, *, jobs: JobQueue | None = None
) -> list[tuple[uuid.UUID, str]]:
    """Claim up to ``limit`` uploads to scan, counting an attempt on each (media id, stored key).

    An upload already claimed ``MAX_SCAN_ATTEMPTS`` times (each claim ended by the death of the
    process that held it) is marked failed here instead of being handed out again.
    """
    claimed = (jobs or scan_jobs(database)).claim(limit)
    return [(job.key, job.row["storage_key"]) for job in claimed]


def _audit_scan(session: Session, job: Job, outcome: Outcome, settlement: Settlement) -> None:
    if settlement.state not in (Settled.done, Settled.dead):
        return
    if settlement.state is Settled.dead:
        logger.error("media %s: %s", job.key, settlement.error)
    audit.append(
        session,
        actor=SCAN_ACTOR,
        school=job.row["school_id"],
        action="media.scanned",
        target=str(job.key),
        outcome="ok" if outcome.values.get("scan_status") is ScanStatus.done else "failed",
        details={
            "faces": outcome.values.get("face_count"),
            "has_location": outcome.values.get("has_location"),
            "error": settlement.error,
        },
    )


def _scan_outcome(
    storage: Storage, scanner: ImageScans, job: Job, clock: Callable[[], dt.datetime]
) -> Outcome:
    media_id = job.key
    try:
        data = storage.get(job.row["storage_key"])
        values, error = _scan(scanner, media_id, data)
    except _NOT_THE_PICTURE as exc:
        logger.warning("media %s waits for the next pass: %s", media_id, exc.detail)
        return Outcome.release(halt=True)
    except OSError as exc:
        logger.exception("original of media %s cannot be read", media_id)
        values, error = {"scan_status": ScanStatus.failed}, f"original unreadable: {exc}"
    return Outcome.done({**values, "scanned_at": clock()}, error=error)


def _scan(
    scanner: ImageScans, media_id: uuid.UUID, data: bytes
) -> tuple[dict[str, Any], str | None]:
    try:
        result = scanner.scan(data)
    except ImageRefused as exc:
        # ImageUnscannable too: the file exhausted, crashed or outlasted its scan worker.
        return {"scan_status": ScanStatus.failed}, f"{exc.code}: {exc.detail}"
    except (ScanWorkersBusy, ScanWorkersUnavailable):
        raise
    except Exception as exc:  # a picture the scanner chokes on is held back, never published
        logger.exception("scan of media %s failed", media_id)
        return {"scan_status": ScanStatus.failed}, type(exc).__name__
    return {
        "scan_status": ScanStatus.done,
        "scan_result": result.to_json(),
        "phash": _signed64(result.phash),
        "face_count": len(result.faces),
        "has_location": result.has_location,
    }, None


def scan_pending(
    database: Database,
    storage: Storage,
    scanner: ImageScans | Callable[[], ImageScans],
    *,
    limit: int = 20,
    jobs: JobQueue | None = None,
) -> int:
    """Scan waiting uploads, one claim at a time (up to ``limit``); returns how many were scanned.

    ``scanner`` may be a function that gives one: it is called only when there is something to
    scan, so an idle service starts no scan worker. A pass ends early when the store or the
    scanner is unavailable; the upload goes back, its attempt uncounted, for the next pass.
    """
    queue = jobs or scan_jobs(database)
    scanners: list[ImageScans] = []

    def scan(job: Job) -> Outcome:
        if not scanners:
            scanners.append(scanner() if callable(scanner) else scanner)
        return _scan_outcome(storage, scanners[0], job, queue.clock)

    scanned = 0
    for _ in range(limit):
        # One at a time: each scan holds a memory-capped worker, and a claim held while
        # another picture is scanned would only age its lease.
        report = queue.run_batch(scan, limit=1)
        scanned += report.done
        if report.claimed == 0 or report.halted:
            break
    return scanned
