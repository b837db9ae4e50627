from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from hallpass_kit.app import SessionDep, WriteSessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import ProblemDetail, Unprocessable, problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.pagination import Page
from hallpass_media.common import STAFF, UPLOADERS
from hallpass_media.context import MediaContextDep
from hallpass_media.downloads import DOWNLOAD_RESPONSES, file_response
from hallpass_media.media import service
from hallpass_media.media.schemas import MediaView, ScanDetail, TaggedPupil
from hallpass_media.models import Owner, ScanStatus

router = APIRouter(prefix="/v1", tags=["media"], responses=problem_responses(403))

_PUPILS = TypeAdapter(list[TaggedPupil])


def _pupils(raw: str) -> list[TaggedPupil]:
    try:
        pupils = _PUPILS.validate_json(raw)
    except ValidationError as exc:
        raise Unprocessable(
            "pupils must be a JSON list of {pupil_id, face?: {x, y, width, height}}.",
            code="invalid_pupils",
            problems=[
                ProblemDetail(
                    code=str(err["type"]),
                    detail=str(err["msg"]),
                    where="pupils"
                    + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]),
                )
                for err in exc.errors()
            ],
        ) from exc
    if len(pupils) > 200:
        raise Unprocessable(
            "At most 200 pupils can be tagged in one picture.", code="invalid_pupils"
        )
    return pupils


def _text(value: str | None) -> str | None:
    value = value.strip() if value else None
    return value or None


@router.post("/media", status_code=201, responses=problem_responses(400, 413, 415, 422, 503))
def upload_media(
    session: SessionDep,
    media: MediaContextDep,
    file: Annotated[
        UploadFile, File(description="JPEG, PNG or WebP; the type is read from the bytes.")
    ],
    device_id: Annotated[
        uuid.UUID | None,
        Form(description="The registered school device it was taken on (M4)."),
    ] = None,
    pupils: Annotated[
        str,
        Form(
            max_length=50_000,
            description='Pupils shown, as JSON: [{"pupil_id": "…", "face": {"x": 10, "y": 20, '
            '"width": 80, "height": 80}}]; the face box is optional.',
        ),
        STORABLE,
    ] = "[]",
    caption: Annotated[str | None, Form(max_length=5000), STORABLE] = None,
    alt_text: Annotated[str | None, Form(max_length=5000), STORABLE] = None,
    taken_at: Annotated[dt.datetime | None, Form()] = None,
    event: Annotated[str | None, Form(max_length=200), STORABLE] = None,
    owner: Annotated[Owner, Form(description="Who owns the copyright (M9).")] = Owner.school,
    source: Annotated[
        str | None,
        Form(max_length=300, description="Where media the school does not own came from (M9)."),
        STORABLE,
    ] = None,
    permission: Annotated[
        str | None,
        Form(max_length=500, description="The permission the owner gave (M9)."),
        STORABLE,
    ] = None,
    principal: Principal = require_roles(*UPLOADERS),
) -> MediaView:
    """Upload a photo from a registered school device; it is scanned shortly after (``scan``).

    Refused, with nothing stored, when the device is not registered (M4), the file is not a JPEG,
    PNG or WebP image (415), too large or too many pixels (413), or cannot be decoded (422).
    """
    if taken_at is not None and taken_at.tzinfo is None:
        raise Unprocessable("taken_at needs a time zone.", code="invalid_taken_at")
    limit = media.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    upload = service.Upload(
        filename=file.filename or "upload",
        data=data,
        device_id=device_id,
        pupils=_pupils(pupils),
        caption=_text(caption),
        alt_text=_text(alt_text),
        taken_at=taken_at,
        event=_text(event),
        owner=owner,
        source=_text(source),
        permission=_text(permission),
    )
    return service.upload(session, media, principal, upload, media.clock())


@router.get("/media", responses=problem_responses(400))
def list_media(
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    scan_status: ScanStatus | None = None,
    principal: Principal = require_roles(*STAFF),
) -> Page[MediaView]:
    """The school's media, newest first."""
    return service.list_media(
        session, principal, cursor=cursor, limit=limit, scan_status=scan_status
    )


@router.get("/media/{media_id}", responses=problem_responses(404))
def get_media(
    media_id: uuid.UUID, session: SessionDep, principal: Principal = require_roles(*STAFF)
) -> MediaView:
    """One upload and its scan status."""
    return service.get_view(session, principal, media_id)


@router.get("/media/{media_id}/scan", responses=problem_responses(404))
def get_scan(
    media_id: uuid.UUID, session: SessionDep, principal: Principal = require_roles(*STAFF)
) -> ScanDetail:
    """What the scan read: metadata text, text in the picture, face boxes, GPS present."""
    return service.scan_detail(session, principal, media_id)


@router.get(
    "/media/{media_id}/original",
    responses={**problem_responses(404, 503), **DOWNLOAD_RESPONSES},
    response_class=Response,
)
def download_original(
    media_id: uuid.UUID,
    session: WriteSessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*STAFF),
) -> Response:
    """The original as uploaded (metadata included); every download is audited."""
    original = service.download_original(session, principal, media_id)
    return file_response(
        media.storage, original.key, file_name=original.file_name, mime=original.mime
    )
