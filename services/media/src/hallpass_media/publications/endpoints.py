from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from hallpass_kit.app import SessionDep, WriteSessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.idempotency import IdempotencyDep, run_idempotent
from hallpass_kit.metrics import count_publication_check
from hallpass_kit.pagination import Page
from hallpass_media.common import CHECKERS, PUBLICATION_READERS, PUBLISHERS
from hallpass_media.context import MediaContextDep
from hallpass_media.downloads import DOWNLOAD_RESPONSES, file_response
from hallpass_media.models import Channel, PublicationStatus, kit_tables
from hallpass_media.publications import service
from hallpass_media.publications.schemas import (
    CheckRequest,
    CheckVerdict,
    PublicationView,
    PublishRequest,
)

router = APIRouter(prefix="/v1", tags=["publications"], responses=problem_responses(403))


@router.post("/publications:check", responses=problem_responses(422, 503))
async def check_publication(
    body: CheckRequest,
    media: MediaContextDep,
    principal: Principal = require_roles(*CHECKERS),
) -> CheckVerdict:
    """May these stored pictures and this text go out on this channel? A verdict per picture.

    Answers 200 with ``allowed: false`` and the problems when not (each with code, rule, where and
    span); 503 when the consent service cannot answer: a check never says yes without it.
    """
    # No request-wide session: the facts are read in a read-only transaction and the audit
    # entry written in a short one of its own (service.check_async), each one thread-pool hop.
    verdict = await service.check_async(
        media,
        principal,
        service.CheckInput(
            channel=body.channel,
            media_ids=body.media_ids,
            files=(),
            texts={"caption": body.caption, "post_body": body.post_body, "alt_text": body.alt_text},
            blur_faces=body.blur_faces,
        ),
    )
    count_publication_check(allowed=verdict.allowed)
    return verdict


@router.post("/publications:check-file", responses=problem_responses(400, 413, 415, 422, 503))
async def check_publication_file(
    media: MediaContextDep,
    channel: Annotated[Channel, Form()],
    file: Annotated[UploadFile, File(description="The picture exactly as it would be published.")],
    caption: Annotated[str | None, Form(max_length=5000), STORABLE] = None,
    post_body: Annotated[str | None, Form(max_length=20_000), STORABLE] = None,
    alt_text: Annotated[str | None, Form(max_length=5000), STORABLE] = None,
    device_id: Annotated[
        uuid.UUID | None, Form(description="The device it came from, if known (M4).")
    ] = None,
    principal: Principal = require_roles(*CHECKERS),
) -> CheckVerdict:
    """Check a file a CMS is about to publish as it is (file name and metadata included).

    The file is scanned now, in a scan worker, and matched against stored media by its
    perceptual hash: a copy of a stored picture takes that picture's tagged pupils; a picture
    that matches none and shows faces is ``unknown_image``. Nothing is stored. A scan that takes
    longer than the service allows answers 503 ``scan_too_slow``: never a verdict without it.
    """
    upload = service.UploadedFile(
        file_name=file.filename or "upload",
        data=await file.read(media.settings.max_upload_bytes + 1),
    )
    request = service.CheckInput(
        channel=channel,
        media_ids=(),
        files=[upload],
        texts={"caption": caption, "post_body": post_body, "alt_text": alt_text},
        blur_faces=False,
        device_id=device_id,
    )
    scans = await service.scan_uploads(media, request)
    verdict = await service.check_async(media, principal, request, scans)
    count_publication_check(allowed=verdict.allowed)
    return verdict


@router.post("/publications", status_code=201, responses=problem_responses(400, 409, 422, 503))
def publish(
    body: PublishRequest,
    session: SessionDep,
    media: MediaContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*PUBLISHERS),
) -> Any:
    """Publish: check again, store clean copies (no metadata, neutral names, faces blurred where
    asked) and record the channel, the pupils shown and who approved it (M6).

    Refused with 422 ``publication_refused`` and the blocking problems when the check fails.
    """
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.publish(session, media, principal, body, media.clock()),
        status_code=201,
    )


@router.get("/publications", responses=problem_responses(400))
def list_publications(
    session: SessionDep,
    status: PublicationStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=500), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require_roles(*PUBLICATION_READERS),
) -> Page[PublicationView]:
    """Publications, newest first; ``status=takedown_required`` is the list that must come down."""
    return service.list_publications(session, principal, status=status, cursor=cursor, limit=limit)


@router.get("/publications/{publication_id:uuid}", responses=problem_responses(404))
def get_publication(
    publication_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*PUBLICATION_READERS),
) -> PublicationView:
    """One publication, its clean copies and whether it must come down."""
    return service.get_view(session, principal, publication_id)


@router.post(
    "/publications/{publication_id}:confirm-takedown", responses=problem_responses(404, 409)
)
def confirm_takedown(
    publication_id: uuid.UUID,
    session: SessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*PUBLISHERS),
) -> PublicationView:
    """Confirm the copies are down everywhere they were published (M7)."""
    return service.confirm_takedown(session, principal, publication_id, media.clock())


@router.get(
    "/publications/{publication_id}/renditions/{media_id}",
    responses={**problem_responses(404, 409, 503), **DOWNLOAD_RESPONSES},
    response_class=Response,
)
def download_rendition(
    publication_id: uuid.UUID,
    media_id: uuid.UUID,
    session: WriteSessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*PUBLICATION_READERS),
) -> Response:
    """The clean copy to publish (live publications only); every download is audited."""
    found = service.rendition(session, principal, publication_id, media_id)
    return file_response(
        media.storage, found.storage_key, file_name=found.file_name, mime=found.mime
    )
