"""Subject access (M8): whose pictures, and the zip of them."""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import NotFound
from hallpass_media.common import Refused, record_audit
from hallpass_media.context import MediaContext
from hallpass_media.models import MediaItem, MediaPupil, PublicationRendition
from hallpass_media.scanning import clean_rendition
from hallpass_media.storage import Storage


def authorise(
    session: Session, media: MediaContext, principal: Principal, pupil_id: uuid.UUID
) -> None:
    """Staff: any pupil of the school. A carer: only a child they are linked to (A2)."""
    staff = principal.has_any((Role.office, Role.admin, Role.head, Role.deputy, Role.dsl))
    if staff:
        if not media.consent.pupil_exists(principal.school, pupil_id):
            raise NotFound("No such pupil.", code="pupil_not_found")
        return
    carers: set[uuid.UUID] = set()
    if principal.guardian_id is not None:
        try:
            carers = media.consent.guardian_ids(principal.school, pupil_id)
        except NotFound:
            carers = set()
    if principal.guardian_id is None or principal.guardian_id not in carers:
        # A2: another family's child looks exactly like one that does not exist.
        raise Refused(
            "No such pupil.",
            principal=principal,
            action="subject_access.refused",
            target=str(pupil_id),
            status=404,
            code="pupil_not_found",
            rule="A2",
        )


def pupil_media(
    session: Session, principal: Principal, pupil_id: uuid.UUID
) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(MediaItem)
        .join(MediaPupil, MediaPupil.media_id == MediaItem.id)
        .where(MediaItem.school_id == principal.school, MediaPupil.pupil_id == pupil_id)
        .order_by(MediaItem.uploaded_at, MediaItem.id)
    ).all()
    published: dict[uuid.UUID, list[uuid.UUID]] = {r.id: [] for r in rows}
    if rows:
        for rendition in session.scalars(
            select(PublicationRendition)
            .where(PublicationRendition.media_id.in_(list(published)))
            .order_by(PublicationRendition.publication_id)
        ):
            published[rendition.media_id].append(rendition.publication_id)
    record_audit(session, principal, "subject_access.listed", str(pupil_id), {"items": len(rows)})
    return [
        {
            "media_id": r.id,
            "uploaded_at": r.uploaded_at,
            "taken_at": r.taken_at,
            "event": r.event,
            "caption": r.caption,
            "publications": published[r.id],
        }
        for r in rows
    ]


def record_export(session: Session, principal: Principal, pupil_id: uuid.UUID, count: int) -> None:
    record_audit(session, principal, "subject_access.exported", str(pupil_id), {"items": count})


def export_keys(
    session: Session, principal: Principal, pupil_id: uuid.UUID
) -> list[tuple[str, str]]:
    rows = session.execute(
        select(MediaItem.id, MediaItem.storage_key)
        .join(MediaPupil, MediaPupil.media_id == MediaItem.id)
        .where(MediaItem.school_id == principal.school, MediaPupil.pupil_id == pupil_id)
        .order_by(MediaItem.uploaded_at, MediaItem.id)
    ).all()
    return [(str(r.id), r.storage_key) for r in rows]


class _Sink:
    """A write-only stream the zip writer fills and the response drains, entry by entry."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def zip_stream(storage: Storage, keys: list[tuple[str, str]]) -> Iterator[bytes]:
    """Each picture as a clean copy (pixels only, no GPS or other metadata)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for media_id, key in keys:
            data, mime = clean_rendition(storage.get(key))
            extension = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}.get(
                mime, "bin"
            )
            archive.writestr(f"{media_id}.{extension}", data)
            yield from sink.drain()
    yield from sink.drain()
