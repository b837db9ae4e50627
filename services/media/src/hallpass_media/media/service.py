"""Uploads: validate everything first, store the original, then record it (M4, M9)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.errors import (
    HallpassError,
    NotFound,
    PayloadTooLarge,
    ProblemDetail,
    Unprocessable,
    UnsupportedMediaType,
)
from hallpass_kit.pagination import Page, decode_position, encode_position
from hallpass_media.common import Refused, record_audit
from hallpass_media.compensation import delete_on_rollback
from hallpass_media.context import MediaContext
from hallpass_media.devices.service import active_device
from hallpass_media.media import repository
from hallpass_media.media.schemas import FaceBox, MediaView, ScanDetail, ScanView, TaggedPupil
from hallpass_media.models import MediaItem, MediaPupil, Owner, ScanStatus
from hallpass_media.scanning import CheckedImage, ImageRefused, check_header

IMAGE_REFUSALS: dict[str, type[HallpassError]] = {
    "unsupported_media_type": UnsupportedMediaType,
    "animated_image": UnsupportedMediaType,
    "image_too_large": PayloadTooLarge,
    "too_many_pixels": PayloadTooLarge,
    "image_side_too_long": PayloadTooLarge,
    "metadata_too_large": PayloadTooLarge,
    "extreme_aspect_ratio": Unprocessable,
    "corrupt_image": Unprocessable,
    "image_unscannable": Unprocessable,
}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    device_id: uuid.UUID | None
    pupils: list[TaggedPupil]
    caption: str | None
    alt_text: str | None
    taken_at: dt.datetime | None
    event: str | None
    owner: Owner
    source: str | None
    permission: str | None


def refuse_image(exc: ImageRefused) -> HallpassError:
    error = IMAGE_REFUSALS.get(exc.code, Unprocessable)
    return error(exc.detail, code=exc.code)


def checked_image(media: MediaContext, data: bytes) -> CheckedImage:
    """The header checked here, the whole picture decoded by a scan worker; refusals as errors.

    This process never decodes a pixel of an uploaded file: the header check is a walk over
    chunk lengths, and the decode that proves the file whole happens where memory and time are
    capped (``ScanWorkersBusy`` when every worker stays busy: 503 with Retry-After).
    """
    try:
        check_header(data, media.limits)
        return media.get_scanner().check(data)
    except ImageRefused as exc:
        raise refuse_image(exc) from exc


def _check_device(session: Session, principal: Principal, upload: Upload) -> None:
    if upload.owner is Owner.third_party:
        # M9: someone else's picture (the local paper's, a visiting photographer's) is not from a
        # school device; what it needs is where it came from.
        if not upload.source:
            raise Unprocessable(
                "Media the school does not own must say where it came from (source).",
                code="source_required",
                rule="M9",
                problems=[
                    ProblemDetail(
                        code="source_required", detail="Give the source.", where="source", rule="M9"
                    )
                ],
            )
        if upload.device_id is None:
            return
    if active_device(session, principal.school, upload.device_id) is None:
        detail = (
            "Media must come from a registered school device; this one is not registered, or "
            "has been retired. Nothing was stored."
        )
        raise Refused(
            detail,
            principal=principal,
            action="media.upload",
            target=str(upload.device_id) if upload.device_id else None,
            status=422,
            code="unregistered_device",
            rule="M4",
            problems=[
                ProblemDetail(
                    code="unregistered_device", detail=detail, where="device_id", rule="M4"
                )
            ],
        )


def _check_pupils(
    media: MediaContext, principal: Principal, upload: Upload, width: int, height: int
) -> None:
    ids = [p.pupil_id for p in upload.pupils]
    if len(set(ids)) != len(ids):
        raise Unprocessable("A pupil is listed twice.", code="duplicate_pupil")
    for position, pupil in enumerate(upload.pupils):
        box = pupil.face
        if box is not None and (box.x + box.width > width or box.y + box.height > height):
            raise Unprocessable(
                "A face box lies outside the picture.",
                code="face_outside_image",
                problems=[
                    ProblemDetail(
                        code="face_outside_image",
                        detail=f"The picture is {width} by {height} pixels.",
                        where=f"pupils[{position}].face",
                    )
                ],
            )
    # The consent service knows who is on roll; asking it about internal use decides nothing
    # and answers 422 unknown_pupil for an id that is not this school's.
    media.consent.decisions(principal.school, "internal_assessment", ids)


def upload(
    session: Session, media: MediaContext, principal: Principal, upload: Upload, now: dt.datetime
) -> MediaView:
    """Validate fully, store the original, record it; any refusal leaves nothing behind."""
    _check_device(session, principal, upload)
    checked = checked_image(media, upload.data)
    _check_pupils(media, principal, upload, checked.width, checked.height)

    media_id = uuid.uuid4()
    key = f"originals/{principal.school}/{media_id}.{EXTENSIONS.get(checked.format, 'bin')}"
    media.storage.put(key, upload.data, checked.mime)
    delete_on_rollback(session, media.storage, key)
    item = _item(media_id, principal, upload, checked, key, now)
    repository.add(session, item, _tags(media_id, upload.pupils))
    record_audit(
        session,
        principal,
        "media.uploaded",
        str(media_id),
        {
            "device_id": str(upload.device_id) if upload.device_id else None,
            "pupils": [str(p.pupil_id) for p in upload.pupils],
            "owner": upload.owner.value,
            "sha256": item.sha256,
        },
    )
    return view(item, upload.pupils)


def _item(
    media_id: uuid.UUID,
    principal: Principal,
    upload: Upload,
    checked: CheckedImage,
    key: str,
    now: dt.datetime,
) -> MediaItem:
    return MediaItem(
        id=media_id,
        school_id=principal.school,
        device_id=upload.device_id,
        uploaded_by=principal.actor,
        uploaded_at=now,
        original_filename=upload.filename[:255],
        storage_key=key,
        mime=checked.mime,
        format=checked.format,
        width=checked.width,
        height=checked.height,
        size_bytes=len(upload.data),
        sha256=hashlib.sha256(upload.data).hexdigest(),
        caption=upload.caption,
        alt_text=upload.alt_text,
        taken_at=upload.taken_at,
        event=upload.event,
        owner=upload.owner,
        source=upload.source,
        permission=upload.permission,
        scan_status=ScanStatus.pending,
        scan_claimed_at=None,
        scanned_at=None,
        scan_result=None,
        scan_error=None,
        phash=None,
        face_count=None,
        has_location=None,
    )


def _tags(media_id: uuid.UUID, pupils: list[TaggedPupil]) -> list[MediaPupil]:
    return [
        MediaPupil(
            media_id=media_id,
            pupil_id=pupil.pupil_id,
            face_x=pupil.face.x if pupil.face else None,
            face_y=pupil.face.y if pupil.face else None,
            face_width=pupil.face.width if pupil.face else None,
            face_height=pupil.face.height if pupil.face else None,
        )
        for pupil in pupils
    ]


def tagged_pupils(
    session: Session, media_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[TaggedPupil]]:
    tagged: dict[uuid.UUID, list[TaggedPupil]] = {m: [] for m in media_ids}
    for row in repository.tags(session, media_ids):
        face = (
            FaceBox(x=row.face_x, y=row.face_y, width=row.face_width, height=row.face_height)
            if row.face_x is not None
            and row.face_y is not None
            and row.face_width is not None
            and row.face_height is not None
            else None
        )
        tagged[row.media_id].append(TaggedPupil(pupil_id=row.pupil_id, face=face))
    return tagged


def view(item: MediaItem, pupils: list[TaggedPupil]) -> MediaView:
    return MediaView(
        id=item.id,
        original_filename=item.original_filename,
        mime=item.mime,
        width=item.width,
        height=item.height,
        size_bytes=item.size_bytes,
        device_id=item.device_id,
        pupils=pupils,
        caption=item.caption,
        alt_text=item.alt_text,
        taken_at=item.taken_at,
        event=item.event,
        owner=item.owner,
        source=item.source,
        permission=item.permission,
        uploaded_by=item.uploaded_by,
        uploaded_at=item.uploaded_at,
        scan=ScanView(
            status=item.scan_status,
            scanned_at=item.scanned_at,
            faces=item.face_count,
            has_location=item.has_location,
            error=item.scan_error,
        ),
    )


def get_item(session: Session, principal: Principal, media_id: uuid.UUID) -> MediaItem:
    item = repository.find(session, principal.school, media_id)
    if item is None:
        raise NotFound("No such media in this school.", code="media_not_found")
    return item


def get_view(session: Session, principal: Principal, media_id: uuid.UUID) -> MediaView:
    item = get_item(session, principal, media_id)
    return view(item, tagged_pupils(session, [item.id])[item.id])


def list_media(
    session: Session,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    scan_status: ScanStatus | None,
) -> Page[MediaView]:
    """Newest first."""
    rows = repository.page(
        session,
        principal.school,
        before=decode_position(cursor),
        limit=limit + 1,
        scan_status=scan_status,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    tags = tagged_pupils(session, [r.id for r in rows])
    return Page[MediaView](
        items=[view(r, tags[r.id]) for r in rows],
        next_cursor=encode_position(rows[-1].uploaded_at, rows[-1].id) if more and rows else None,
    )


def scan_detail(session: Session, principal: Principal, media_id: uuid.UUID) -> ScanDetail:
    item = get_item(session, principal, media_id)
    return ScanDetail(status=item.scan_status, result=item.scan_result)


@dataclass(frozen=True)
class StoredFile:
    key: str
    file_name: str
    mime: str


def download_original(session: Session, principal: Principal, media_id: uuid.UUID) -> StoredFile:
    """The original as uploaded; every download is audited."""
    item = get_item(session, principal, media_id)
    record_audit(session, principal, "media.original_downloaded", str(item.id))
    extension = item.storage_key.rsplit(".", 1)[-1]
    return StoredFile(key=item.storage_key, file_name=f"{item.id}.{extension}", mime=item.mime)
