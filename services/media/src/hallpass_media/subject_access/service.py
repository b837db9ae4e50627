"""Subject access (M8): whose pictures, and the zip of them."""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator

from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.errors import NotFound
from hallpass_media.common import SUBJECT_ACCESS_STAFF, Refused, record_audit
from hallpass_media.context import MediaContext
from hallpass_media.scanning import clean_rendition
from hallpass_media.storage import Storage
from hallpass_media.subject_access import repository
from hallpass_media.subject_access.schemas import PupilMedia, PupilMediaList


def authorise(
    session: Session, media: MediaContext, principal: Principal, pupil_id: uuid.UUID
) -> None:
    """Staff: any pupil of the school. A carer: only a child they are linked to (A2)."""
    staff = principal.has_any(SUBJECT_ACCESS_STAFF)
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
    session: Session, media: MediaContext, principal: Principal, pupil_id: uuid.UUID
) -> PupilMediaList:
    """Every stored picture the pupil is tagged in and where each was published; audited."""
    authorise(session, media, principal, pupil_id)
    rows = repository.media_of_pupil(session, principal.school, pupil_id)
    published: dict[uuid.UUID, list[uuid.UUID]] = {r.id: [] for r in rows}
    if rows:
        for rendition in repository.renditions_of(session, list(published)):
            published[rendition.media_id].append(rendition.publication_id)
    record_audit(session, principal, "subject_access.listed", str(pupil_id), {"items": len(rows)})
    return PupilMediaList(
        pupil_id=pupil_id,
        items=[
            PupilMedia(
                media_id=r.id,
                uploaded_at=r.uploaded_at,
                taken_at=r.taken_at,
                event=r.event,
                caption=r.caption,
                publications=published[r.id],
            )
            for r in rows
        ],
    )


def export(
    session: Session, media: MediaContext, principal: Principal, pupil_id: uuid.UUID
) -> Iterator[bytes]:
    """The zip of every stored picture of the pupil as clean copies; the export is audited
    now, the pictures are read as the zip is streamed."""
    authorise(session, media, principal, pupil_id)
    rows = repository.stored_keys_of_pupil(session, principal.school, pupil_id)
    keys = [(str(media_id), key) for media_id, key in rows]
    record_audit(session, principal, "subject_access.exported", str(pupil_id), {"items": len(keys)})
    return zip_stream(media.storage, keys)


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
