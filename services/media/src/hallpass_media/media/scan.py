"""The scan job: reads each new upload once, off the request path (metadata, OCR, faces, hash).

Uploads wait as ``pending``; a pass claims a few (``SKIP LOCKED`` on PostgreSQL, so replicas share
the work), scans them in the calling thread and stores the result. A claim that was never finished
(the process died mid-scan) is taken again after ``STALE_CLAIM``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable

from sqlalchemy import or_, select, update

from hallpass_kit.db import Database, utcnow
from hallpass_media.common import audit
from hallpass_media.models import MediaItem, ScanStatus
from hallpass_media.scanning import ImageRefused, Scanner
from hallpass_media.storage import Storage, StorageUnavailable

logger = logging.getLogger("hallpass.media.scan")

STALE_CLAIM = dt.timedelta(minutes=10)
SCAN_ACTOR = "service:media-scan"


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def claim(database: Database, limit: int) -> list[tuple[uuid.UUID, str]]:
    now = utcnow()
    with database.session() as session:
        query = (
            select(MediaItem.id, MediaItem.storage_key)
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
        if rows:
            session.execute(
                update(MediaItem)
                .where(MediaItem.id.in_([r.id for r in rows]))
                .values(scan_status=ScanStatus.scanning, scan_claimed_at=now)
            )
    return [(r.id, r.storage_key) for r in rows]


def scan_one(
    database: Database, storage: Storage, scanner: Scanner, media_id: uuid.UUID, key: str
) -> None:
    values: dict[str, object]
    try:
        data = storage.get(key)
    except StorageUnavailable:
        # The store is down, not the picture: try again on a later pass.
        with database.session() as session:
            session.execute(
                update(MediaItem)
                .where(MediaItem.id == media_id)
                .values(scan_status=ScanStatus.pending, scan_claimed_at=None)
            )
        raise
    except OSError as exc:
        logger.exception("original of media %s cannot be read", media_id)
        values = {"scan_status": ScanStatus.failed, "scan_error": f"original unreadable: {exc}"}
    else:
        values = _scan(scanner, media_id, data)
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


def _scan(scanner: Scanner, media_id: uuid.UUID, data: bytes) -> dict[str, object]:
    try:
        result = scanner.scan(data)
    except ImageRefused as exc:
        return {"scan_status": ScanStatus.failed, "scan_error": f"{exc.code}: {exc.detail}"}
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
    scanner: Scanner | Callable[[], Scanner],
    *,
    limit: int = 20,
) -> int:
    """Scan every waiting upload (up to ``limit``); returns how many were scanned.

    ``scanner`` may be a function that loads one: it is called only when there is something to
    scan, so an idle service never loads the OCR models.
    """
    claims = claim(database, limit)
    if not claims:
        return 0
    if not isinstance(scanner, Scanner):
        scanner = scanner()
    scanned = 0
    for media_id, key in claims:
        try:
            scan_one(database, storage, scanner, media_id, key)
        except StorageUnavailable:
            logger.warning("media store unavailable; media %s waits for the next pass", media_id)
            continue
        scanned += 1
    return scanned
