"""The scan job: reads each new upload once, off the request path (metadata, OCR, faces, hash).

Uploads wait as ``pending``; a pass claims them one at a time (``SKIP LOCKED`` on PostgreSQL, so
replicas share the work), has a scan worker scan each and stores the result. A picture that
exhausts, crashes or outlasts its worker is marked ``failed`` at once. A claim that was never
finished (the whole process died mid-scan) is taken again after ``STALE_CLAIM``, but every claim
counts an attempt, and after ``MAX_SCAN_ATTEMPTS`` the picture is marked failed instead: whatever
happened, no picture is scanned again and again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hallpass_kit.db import Database, utcnow
from hallpass_media.common import audit
from hallpass_media.models import MediaItem, ScanStatus
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


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def claim(database: Database, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Claim up to ``limit`` uploads to scan, counting an attempt on each.

    An upload already claimed ``MAX_SCAN_ATTEMPTS`` times (each claim ended by the death of the
    process that held it) is marked failed here instead of being handed out again.
    """
    now = utcnow()
    with database.session() as session:
        query = (
            select(
                MediaItem.id, MediaItem.storage_key, MediaItem.school_id, MediaItem.scan_attempts
            )
            .where(
                or_(
                    MediaItem.scan_status == ScanStatus.pending,
                    (MediaItem.scan_status == ScanStatus.scanning)
                    & (MediaItem.scan_claimed_at < now - STALE_CLAIM),
                )
            )
            .order_by(MediaItem.uploaded_at)
            .limit(limit)
        )
        if database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        claimed = [r for r in rows if r.scan_attempts < MAX_SCAN_ATTEMPTS]
        for row in rows:
            if row.scan_attempts >= MAX_SCAN_ATTEMPTS:
                _give_up(session, row.id, row.school_id, row.scan_attempts, now)
        if claimed:
            session.execute(
                update(MediaItem)
                .where(MediaItem.id.in_([r.id for r in claimed]))
                .values(
                    scan_status=ScanStatus.scanning,
                    scan_claimed_at=now,
                    scan_attempts=MediaItem.scan_attempts + 1,
                )
            )
    return [(r.id, r.storage_key) for r in claimed]


def _give_up(
    session: Session, media_id: uuid.UUID, school: str, attempts: int, now: dt.datetime
) -> None:
    error = f"gave up after {attempts} attempts: every scan of it ended with its process"
    logger.error("media %s: %s", media_id, error)
    session.execute(
        update(MediaItem)
        .where(MediaItem.id == media_id)
        .values(scan_status=ScanStatus.failed, scanned_at=now, scan_error=error)
    )
    audit.append(
        session,
        actor=SCAN_ACTOR,
        school=school,
        action="media.scanned",
        target=str(media_id),
        outcome="failed",
        details={"faces": None, "has_location": None, "error": error},
    )


def _release(database: Database, media_id: uuid.UUID) -> None:
    """Put a claimed upload back, uncounted: the attempt never reached the picture."""
    with database.session() as session:
        session.execute(
            update(MediaItem)
            .where(MediaItem.id == media_id)
            .values(
                scan_status=ScanStatus.pending,
                scan_claimed_at=None,
                scan_attempts=MediaItem.scan_attempts - 1,
            )
        )


def scan_one(
    database: Database, storage: Storage, scanner: ImageScans, media_id: uuid.UUID, key: str
) -> None:
    values: dict[str, object]
    try:
        data = storage.get(key)
        values = _scan(scanner, media_id, data)
    except (StorageUnavailable, ScanWorkersBusy, ScanWorkersUnavailable):
        # The store or the scanner is unavailable, not the picture: try again on a later pass.
        _release(database, media_id)
        raise
    except OSError as exc:
        logger.exception("original of media %s cannot be read", media_id)
        values = {"scan_status": ScanStatus.failed, "scan_error": f"original unreadable: {exc}"}
    with database.session() as session:
        school = session.execute(
            select(MediaItem.school_id).where(MediaItem.id == media_id)
        ).scalar_one()
        session.execute(
            update(MediaItem).where(MediaItem.id == media_id).values(scanned_at=utcnow(), **values)
        )
        audit.append(
            session,
            actor=SCAN_ACTOR,
            school=school,
            action="media.scanned",
            target=str(media_id),
            outcome="ok" if values["scan_status"] is ScanStatus.done else "failed",
            details={
                "faces": values.get("face_count"),
                "has_location": values.get("has_location"),
                "error": values.get("scan_error"),
            },
        )


def _scan(scanner: ImageScans, media_id: uuid.UUID, data: bytes) -> dict[str, object]:
    try:
        result = scanner.scan(data)
    except ImageRefused as exc:
        # ImageUnscannable too: the file exhausted, crashed or outlasted its scan worker.
        return {"scan_status": ScanStatus.failed, "scan_error": f"{exc.code}: {exc.detail}"}
    except (ScanWorkersBusy, ScanWorkersUnavailable):
        raise
    except Exception as exc:  # a picture the scanner chokes on is held back, never published
        logger.exception("scan of media %s failed", media_id)
        return {"scan_status": ScanStatus.failed, "scan_error": type(exc).__name__}
    return {
        "scan_status": ScanStatus.done,
        "scan_result": result.to_json(),
        "phash": _signed64(result.phash),
        "face_count": len(result.faces),
        "has_location": result.has_location,
        "scan_error": None,
    }


def scan_pending(
    database: Database,
    storage: Storage,
    scanner: ImageScans | Callable[[], ImageScans],
    *,
    limit: int = 20,
) -> int:
    """Scan waiting uploads, one claim at a time (up to ``limit``); returns how many were scanned.

    ``scanner`` may be a function that gives one: it is called only when there is something to
    scan, so an idle service starts no scan worker. A pass ends early when the store or the
    scanner is unavailable; the upload waits for the next pass.
    """
    scanned = 0
    for _ in range(limit):
        claims = claim(database, 1)
        if not claims:
            break
        if callable(scanner):
            scanner = scanner()
        media_id, key = claims[0]
        try:
            scan_one(database, storage, scanner, media_id, key)
        except (StorageUnavailable, ScanWorkersBusy, ScanWorkersUnavailable) as exc:
            logger.warning("media %s waits for the next pass: %s", media_id, exc.detail)
            break
        scanned += 1
    return scanned
