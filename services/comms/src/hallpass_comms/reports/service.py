"""E10: offensive mail reported at once to the designated member of staff, the DSL."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from hallpass_comms.common import record_audit
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.mail_settings.service import require_settings
from hallpass_comms.messages import repository as message_repository
from hallpass_comms.messages import service as messages
from hallpass_comms.models import Message, MessageKind, OffensiveReport, RecipientKind
from hallpass_comms.recipients.policy import Envelope
from hallpass_comms.reports import repository
from hallpass_comms.reports.policy import reference, reference_prefix
from hallpass_comms.reports.schemas import ReportCreate, ReportReceipt, ReportResolve, ReportView
from hallpass_kit.auth import AccessRefused, Principal, Role
from hallpass_kit.errors import Conflict, NotFound, Unprocessable
from hallpass_kit.pagination import Page, decode_position, encode_position

NOTICE_ACTOR = "service:comms-reports"
ATTEMPTS = 5


def _reported_message(session: Session, principal: Principal, message_id: uuid.UUID) -> Message:
    """The message reported; a carer may report only one that reached them (else 404)."""
    message = message_repository.get_message(session, principal.school, message_id)
    reached = message is not None
    if message is not None and principal.roles == frozenset({Role.parent}):
        mine = str(principal.guardian_id)
        reached = any(
            mine in d.guardian_ids for d in message_repository.deliveries_of(session, [message.id])
        )
    if message is None or not reached:
        raise AccessRefused(
            "No such message for you.",
            principal=principal,
            action="refused:report",
            target=f"message:{message_id}",
            status=404,
            code="unknown_message",
            rule="A2",
        )
    return message


def _notice_text(report: OffensiveReport, principal: Principal, about: str) -> str:
    return (
        f"An offensive message has been reported (E10).\n\n"
        f"Reference: {report.reference}\n"
        f"Reported by: {principal.actor} ({', '.join(sorted(r.value for r in principal.roles))})\n"
        f"About: {about}\n\n"
        f"What they said:\n{report.description}\n\n"
        f"The report is kept in Hallpass under its reference."
    )


def _numbered(
    session: Session, principal: Principal, body: ReportCreate, now: dt.datetime, timezone: str
) -> OffensiveReport:
    """The report under the next free reference of the school's year, e.g. R-2026-000123."""
    prefix = reference_prefix(now, timezone)
    for _ in range(ATTEMPTS):
        number = repository.reports_this_year(session, principal.school, prefix) + 1
        report = OffensiveReport(
            id=uuid.uuid4(),
            school_id=principal.school,
            reference=reference(prefix, number),
            reported_by=principal.actor,
            message_id=body.message_id,
            received_from=body.received_from,
            description=body.description,
            created_at=now,
        )
        if repository.add_if_reference_free(session, report):
            return report
        # Another report took this number a moment ago; count again.
    raise Conflict(
        "Reports are arriving faster than they can be numbered; try again.", code="report_busy"
    )


def file_report(
    session: Session,
    consent: ConsentClient,
    principal: Principal,
    body: ReportCreate,
    now: dt.datetime,
) -> ReportReceipt:
    """Store the report under a new reference and send the DSL a notice at once."""
    if (body.message_id is None) == (body.received_from is None):
        raise Unprocessable(
            "Say what is reported: either message_id or received_from, not both.",
            code="report_needs_source",
            rule="E10",
        )
    settings = require_settings(session, principal.school)
    if not settings.dsl_address:
        raise Conflict("The mail settings name no DSL address.", code="mail_settings_missing")
    about = f"the address {body.received_from}"
    if body.message_id is not None:
        reported = _reported_message(session, principal, body.message_id)
        about = (
            f'message {reported.id} "{reported.subject}" from {reported.sender_address}, '
            f"sent {reported.created_at.isoformat(timespec='minutes')}"
        )
    report = _numbered(session, principal, body, now, settings.timezone)
    notice = messages.send_draft(
        session,
        consent,
        messages.Draft(
            author=messages.OfficeAuthor(principal.school, NOTICE_ACTOR),
            kind=MessageKind.report_notice,
            subject=f"Offensive message reported: {report.reference}",
            body_text=_notice_text(report, principal, about),
            urgent=True,  # E10: at once, whatever the hour
            addressed=(Envelope(kind=RecipientKind.staff, to=(settings.dsl_address,)),),
        ),
        now,
    )
    report.notice_message_id = notice.message.id
    session.flush()
    record_audit(
        session,
        principal,
        "report.filed",
        target=f"report:{report.reference}",
        details={
            "message_id": str(body.message_id) if body.message_id else None,
            "notice": str(notice.message.id),
        },
    )
    return ReportReceipt(id=report.id, reference=report.reference, created_at=report.created_at)


def _view(report: OffensiveReport) -> ReportView:
    return ReportView(
        id=report.id,
        reference=report.reference,
        reported_by=report.reported_by,
        message_id=report.message_id,
        received_from=report.received_from,
        description=report.description,
        notice_message_id=report.notice_message_id,
        created_at=report.created_at,
        resolved_by=report.resolved_by,
        resolved_at=report.resolved_at,
        resolution=report.resolution,
    )


def list_reports(
    session: Session, principal: Principal, *, cursor: str | None, limit: int
) -> Page[ReportView]:
    """The school's reports, newest first; the reading is audited like the pastoral inbox's."""
    rows = repository.page_reports(
        session, principal.school, after=decode_position(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    record_audit(
        session,
        principal,
        "report.list",
        target="reports",
        details={"reports": [r.reference for r in rows]},
    )
    return Page[ReportView](
        items=[_view(r) for r in rows],
        next_cursor=encode_position(rows[-1].created_at, rows[-1].id) if more and rows else None,
    )


def read_report(session: Session, principal: Principal, report_id: uuid.UUID) -> ReportView:
    report = repository.get_report(session, principal.school, report_id)
    if report is None:
        raise NotFound("No such report in this school.", code="unknown_report")
    record_audit(session, principal, "report.read", target=f"report:{report.reference}")
    return _view(report)


def resolve_report(
    session: Session,
    principal: Principal,
    report_id: uuid.UUID,
    body: ReportResolve,
    now: dt.datetime,
) -> ReportView:
    """Mark a report handled, once: a second answer would overwrite what the first one said."""
    report = repository.get_report(session, principal.school, report_id, for_update=True)
    if report is None:
        raise NotFound("No such report in this school.", code="unknown_report")
    if report.resolved_at is not None:
        raise Conflict(
            f"Report {report.reference} was marked handled already, by {report.resolved_by}.",
            code="report_resolved",
            rule="E10",
        )
    report.resolved_by = principal.actor
    report.resolved_at = now
    report.resolution = body.resolution
    session.flush()
    # The words of the resolution stay with the report; the audit says who and when.
    record_audit(session, principal, "report.resolve", target=f"report:{report.reference}")
    return _view(report)
