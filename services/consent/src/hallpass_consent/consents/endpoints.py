from __future__ import annotations

import hashlib
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Header, Query, UploadFile
from fastapi.responses import Response

from hallpass_consent.common import PUPIL_RECORD_READERS, RECORD_READERS, REGISTRARS
from hallpass_consent.consents import evidence, service
from hallpass_consent.consents.scans import MAX_SCANS_PER_REQUEST
from hallpass_consent.consents.schemas import (
    ConsentCreate,
    ConsentReceipt,
    ConsentRecordView,
    PupilConsents,
    RecordWithScans,
    Renewal,
    ScanView,
    Withdrawal,
)
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.models import kit_tables
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.idempotency import (
    KEY_PATTERN,
    IdempotencyDep,
    IdempotencyKey,
    run_idempotent,
)

router = APIRouter(prefix="/v1", tags=["consents"], responses=problem_responses(403, 404, 422))

# The scan of a signed form is the carer's own writing and signature: the registrars who keep
# the records, and the DSL, read it. Carers do not download scans through the API (yet): their
# receipt says what was recorded.
SCAN_READERS = (*REGISTRARS, Role.dsl)
_SCANS = (
    f"The scanned pages: PDF, JPEG or PNG (the type is read from the bytes), at most "
    f"{MAX_SCANS_PER_REQUEST} files, each within HALLPASS_CONSENT_MAX_SCAN_BYTES."
)


def _attachment(file_name: str) -> str:
    # RFC 6266: an ASCII name for every client, the exact (e.g. Welsh) name for those that read it.
    ascii_name = file_name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"


def _form_key(
    key: str | None, record: str, uploads: list[evidence.Upload]
) -> IdempotencyKey | None:
    """The kit's idempotency key for a multipart request, fingerprinted from its parts.

    The raw body cannot be read again once its form is parsed, and its boundary differs from
    one send to the next anyway; the parts themselves are what makes two sends the same."""
    if key is None:
        return None
    digest = hashlib.sha256(b"POST\0/v1/consents:with-evidence\0" + record.encode())
    for upload in uploads:
        digest.update(b"\0" + (upload.file_name or "").encode() + b"\0")
        digest.update(hashlib.sha256(upload.data).digest())
    return IdempotencyKey(key=key.strip(), fingerprint=digest.hexdigest())


def _uploads(files: list[UploadFile], limit: int) -> list[evidence.Upload]:
    # One byte past the limit is enough to know a file is too large, without reading it all.
    return [evidence.Upload(f.filename, f.file.read(limit + 1)) for f in files]


@router.post(
    "/consents", status_code=201, response_model=ConsentRecordView, responses=problem_responses(409)
)
def record_consent(
    body: ConsentCreate,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Record a carer's decision from a form, email or call-back (C1, C10, C11)."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.record_consent(session, principal, body, now=context.clock()),
        status_code=201,
    )


@router.post(
    "/consents:with-evidence",
    status_code=201,
    response_model=RecordWithScans,
    # 400: a body that is not well-formed multipart.
    responses=problem_responses(400, 409, 413, 415),
)
def record_consent_with_evidence(
    session: SessionDep,
    context: ConsentContextDep,
    record: Annotated[
        str,
        Form(
            min_length=2,
            max_length=20_000,
            description="The decision as JSON, exactly as POST /v1/consents takes it.",
        ),
        STORABLE,
    ],
    scan: Annotated[
        list[UploadFile],
        File(description=_SCANS, min_length=1, max_length=MAX_SCANS_PER_REQUEST),
    ],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Any unique string of visible ASCII (a UUID is best); sending the same "
            "record and files again with the same key returns the first response.",
            max_length=200,
            pattern=KEY_PATTERN,
        ),
        STORABLE,
    ] = None,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Record a decision from a signed paper form together with its scan, in one transaction
    (C10): if the record or any page is refused, nothing is stored. Sending the same record
    and files again with the same Idempotency-Key returns the first answer."""
    limit = context.settings.max_scan_bytes
    uploads = _uploads(scan, limit)
    return run_idempotent(
        session,
        kit_tables,
        principal,
        _form_key(idempotency_key, record, uploads),
        lambda: evidence.record_with_scans(
            session, principal, record, uploads, max_bytes=limit, now=context.clock()
        ),
        status_code=201,
    )


@router.post(
    "/consents/{record_id}/evidence",
    status_code=201,
    # 400: a body that is not well-formed multipart.
    responses=problem_responses(400, 409, 413, 415),
)
def add_evidence(
    record_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    scan: Annotated[
        list[UploadFile],
        File(description=_SCANS, min_length=1, max_length=MAX_SCANS_PER_REQUEST),
    ],
    principal: Principal = require_roles(*REGISTRARS),
) -> list[ScanView]:
    """Keep scans of the signed form with a record made earlier; the record is not changed."""
    limit = context.settings.max_scan_bytes
    return evidence.add_scans(
        session, principal, record_id, _uploads(scan, limit), max_bytes=limit, now=context.clock()
    )


@router.get("/consents/{record_id}/evidence")
def list_evidence(
    record_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*SCAN_READERS),
) -> list[ScanView]:
    """The scans kept with a record (without their content), oldest first."""
    return evidence.list_scans(session, principal, record_id)


@router.get(
    "/evidence/{scan_id}",
    response_class=Response,
    responses={
        200: {
            "description": "The scan as stored.",
            "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def download_evidence(
    scan_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*SCAN_READERS),
) -> Response:
    """Download one scan, with the type found in its bytes when it was stored."""
    scan = evidence.download(session, principal, scan_id)
    return Response(
        scan.content,
        media_type=scan.content_type,
        headers={
            "Content-Disposition": _attachment(scan.file_name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/consents/{record_id}:withdraw",
    status_code=201,
    response_model=ConsentRecordView,
    responses=problem_responses(409),
)
def withdraw_consent(
    record_id: uuid.UUID,
    body: Withdrawal,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Withdraw a grant; every decision from now on reads the withdrawal (C5)."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.withdraw_record(session, principal, record_id, body, now=context.clock()),
        status_code=201,
    )


@router.get("/consents/{record_id:uuid}")
def get_consent(
    record_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*RECORD_READERS),
) -> ConsentRecordView:
    """One consent record as it was recorded (records are never changed)."""
    return service.get_record(session, principal, record_id)


@router.get("/consents/{record_id}/receipt")
def get_receipt(
    record_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*RECORD_READERS),
) -> ConsentReceipt:
    """The consent receipt for a record (ISO/IEC TS 27560 fields)."""
    return service.staff_receipt(session, principal, record_id, now=context.clock())


@router.get("/pupils/{pupil_id}/consents")
def pupil_consents(
    pupil_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*PUPIL_RECORD_READERS),
) -> PupilConsents:
    """A pupil's effective consent per purpose now, and the full history behind it."""
    return service.pupil_consents(session, principal, pupil_id, now=context.clock())


@router.get("/renewals")
def renewals(
    session: SessionDep,
    context: ConsentContextDep,
    within_days: Annotated[int, Query(ge=1, le=366)] = 30,
    principal: Principal = require_roles(*REGISTRARS, Role.service),
) -> list[Renewal]:
    """Grants that lapse within the given number of days and have not been renewed."""
    return service.renewals(session, principal, within_days, now=context.clock())
