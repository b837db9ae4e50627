"""Scans of signed forms kept with the consent record they prove (C10).

A record made from a paper form and its scans land in one transaction: every scan is checked
before anything is written, so a bad page leaves neither a record nor a scan behind. A scan
added later points at a record that itself never changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.orm import Session

from hallpass_consent.common import record_audit, require_school
from hallpass_consent.consents import repository
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.scans import MAX_SCANS_PER_REQUEST, ScanType, safe_file_name, sniff
from hallpass_consent.consents.schemas import ConsentCreate, RecordWithScans, ScanView
from hallpass_consent.models import ConsentEvidence, ConsentRecord
from hallpass_kit.auth import Principal
from hallpass_kit.errors import (
    NotFound,
    PayloadTooLarge,
    ProblemDetail,
    Unprocessable,
    UnsupportedMediaType,
)


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file as it came: the name the uploader's computer gave it, and at most the
    size limit plus one byte (enough to tell it is too large)."""

    file_name: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class CheckedScan:
    file_name: str
    kind: ScanType
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredScan:
    """A scan's content as it is served back: its stored type and safe name."""

    file_name: str
    content_type: str
    content: bytes


def check_scans(uploads: list[Upload], *, max_bytes: int) -> list[CheckedScan]:
    """Every page checked before any is stored; the first bad one refuses them all."""
    if not uploads:
        raise Unprocessable("Attach the scan of the signed form.", code="scan_required", rule="C10")
    if len(uploads) > MAX_SCANS_PER_REQUEST:
        raise Unprocessable(
            f"At most {MAX_SCANS_PER_REQUEST} files per request.", code="too_many_scans"
        )
    checked: list[CheckedScan] = []
    for page, upload in enumerate(uploads, start=1):
        where = f"scan[{page - 1}]"
        if not upload.data:
            raise Unprocessable(
                f"File {page} is empty.",
                code="empty_scan",
                problems=[ProblemDetail(code="empty_scan", where=where, detail="Empty file.")],
            )
        if len(upload.data) > max_bytes:
            raise PayloadTooLarge(
                f"File {page} is larger than {max_bytes // (1024 * 1024) or 1} MB "
                f"({max_bytes} bytes), the most one scan may be.",
                code="scan_too_large",
            )
        kind = sniff(upload.data)
        if kind is None:
            raise UnsupportedMediaType(
                f"File {page} is not a PDF, JPEG or PNG (read from its content, whatever its "
                "name says).",
                code="unsupported_scan_type",
            )
        checked.append(CheckedScan(safe_file_name(upload.file_name, kind, page), kind, upload.data))
    return checked


def parse_record(raw: str) -> ConsentCreate:
    """The ``record`` part: the same JSON as ``POST /v1/consents``."""
    try:
        return ConsentCreate.model_validate_json(raw)
    except ValidationError as exc:
        raise Unprocessable(
            "record must be the JSON of a consent, as POST /v1/consents takes it.",
            code="invalid_record",
            problems=[
                ProblemDetail(
                    code=str(err["type"]),
                    detail=str(err["msg"])[:500],
                    where="record"
                    + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]),
                )
                for err in exc.errors()[:10]
            ],
        ) from exc


def _view(scan: ConsentEvidence) -> ScanView:
    return ScanView(
        id=scan.id,
        record_id=scan.record_id,
        file_name=scan.file_name,
        content_type=scan.content_type,
        size=scan.size,
        sha256=scan.sha256,
        uploaded_by=scan.uploaded_by,
        uploaded_at=scan.uploaded_at,
    )


def _store(
    session: Session,
    principal: Principal,
    record: ConsentRecord,
    scans: list[CheckedScan],
    *,
    now: dt.datetime,
) -> list[ScanView]:
    stored: list[ScanView] = []
    for scan in scans:
        row = repository.add_scan(
            session,
            ConsentEvidence(
                school_id=record.school_id,
                record_id=record.id,
                file_name=scan.file_name,
                content_type=scan.kind.content_type,
                size=len(scan.data),
                sha256=hashlib.sha256(scan.data).hexdigest(),
                content=scan.data,
                uploaded_by=principal.actor,
                uploaded_at=now,
            ),
        )
        record_audit(
            session,
            principal,
            "consent.evidence_added",
            str(row.id),
            {
                "record_id": str(record.id),
                "content_type": row.content_type,
                "size": row.size,
                "sha256": row.sha256,
            },
        )
        stored.append(_view(row))
    return stored


def _record(session: Session, school_id: str, record_id: uuid.UUID) -> ConsentRecord:
    record = repository.get_record(session, school_id, record_id)
    if record is None:
        raise NotFound("No such consent record in this school.", code="unknown_record")
    return record


def record_with_scans(
    session: Session,
    principal: Principal,
    raw_record: str,
    uploads: list[Upload],
    *,
    max_bytes: int,
    now: dt.datetime,
) -> RecordWithScans:
    """A decision from a signed form and the form's scans, all or nothing (C10)."""
    body = parse_record(raw_record)
    scans = check_scans(uploads, max_bytes=max_bytes)
    view = consents.record_consent(session, principal, body, now=now)
    record = _record(session, principal.school, view.id)
    stored = _store(session, principal, record, scans, now=now)
    return RecordWithScans(record=view.model_copy(update={"scans": len(stored)}), scans=stored)


def add_scans(
    session: Session,
    principal: Principal,
    record_id: uuid.UUID,
    uploads: list[Upload],
    *,
    max_bytes: int,
    now: dt.datetime,
) -> list[ScanView]:
    """Scans of the form behind an existing record; the record itself is not changed."""
    require_school(session, principal.school)
    record = _record(session, principal.school, record_id)
    scans = check_scans(uploads, max_bytes=max_bytes)
    return _store(session, principal, record, scans, now=now)


def list_scans(session: Session, principal: Principal, record_id: uuid.UUID) -> list[ScanView]:
    record = _record(session, principal.school, record_id)
    return [_view(s) for s in repository.scans_of_record(session, principal.school, record.id)]


def download(session: Session, principal: Principal, scan_id: uuid.UUID) -> StoredScan:
    scan = repository.get_scan(session, principal.school, scan_id)
    if scan is None:
        raise NotFound("No such scan in this school.", code="unknown_scan")
    return StoredScan(scan.file_name, scan.content_type, scan.content)
