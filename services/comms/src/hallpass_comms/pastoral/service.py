"""E7: the pastoral inbox. Carers write in; only the DSL and pastoral staff read; every access
is audited; replies go out as official messages through the same pipeline."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from hallpass_comms.common import record_audit
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.delivery import one_line
from hallpass_comms.mail_settings import repository as settings_repository
from hallpass_comms.messages import service as messages
from hallpass_comms.messages.schemas import MessageReceipt
from hallpass_comms.models import (
    ConcernStatus,
    MessageKind,
    PastoralConcern,
    RecipientKind,
)
from hallpass_comms.pastoral import repository
from hallpass_comms.pastoral.schemas import (
    ConcernCreate,
    ConcernReceipt,
    ConcernView,
    ReplyCreate,
)
from hallpass_comms.recipients.policy import Envelope, Targets
from hallpass_kit.auth import AccessRefused, Principal
from hallpass_kit.errors import NotFound
from hallpass_kit.pagination import Page, decode_position, encode_position

NOTICE_ACTOR = "service:comms-pastoral"


def _view(concern: PastoralConcern) -> ConcernView:
    return ConcernView(
        id=concern.id,
        guardian_id=concern.guardian_id,
        pupil_id=concern.pupil_id,
        subject=concern.subject,
        body=concern.body,
        status=concern.status,
        created_at=concern.created_at,
    )


def raise_concern(
    session: Session,
    consent: ConsentClient,
    principal: Principal,
    body: ConcernCreate,
    now: dt.datetime,
    *,
    caller_token: str | None = None,
) -> ConcernReceipt:
    """A carer's concern, about one of their own children or none in particular."""
    assert principal.guardian_id is not None  # a carer's token always names them (A2)
    if body.pupil_id is not None and body.pupil_id not in consent.children_of(
        principal.school, principal.guardian_id, caller_token=caller_token
    ):
        raise AccessRefused(
            "No such pupil in your family.",
            principal=principal,
            action="refused:raise_concern",
            target=f"pupil:{body.pupil_id}",
            status=404,
            code="unknown_pupil",
            rule="A2",
        )
    concern = PastoralConcern(
        id=uuid.uuid4(),
        school_id=principal.school,
        guardian_id=principal.guardian_id,
        pupil_id=body.pupil_id,
        subject=body.subject,
        body=body.body,
        status=ConcernStatus.open,
        created_at=now,
    )
    repository.add_concern(session, concern)
    notice = _notify_dsl(session, consent, concern, now)
    # The words stay in the inbox; the audit trail, read by the head, only says one arrived.
    record_audit(
        session,
        principal,
        "pastoral.concern_raised",
        target=f"concern:{concern.id}",
        details={"notice": str(notice.message.id) if notice else None},
    )
    return ConcernReceipt(id=concern.id, status=concern.status, created_at=concern.created_at)


def _notify_dsl(
    session: Session, consent: ConsentClient, concern: PastoralConcern, now: dt.datetime
) -> messages.Sent | None:
    """Tell the DSL a concern is waiting, at once; the email says nothing of what it is about.

    A school without mail settings still takes concerns; the inbox is then read without notice.
    """
    settings = settings_repository.get(session, concern.school_id)
    if settings is None or not settings.dsl_address:
        return None
    when = concern.created_at.astimezone(ZoneInfo(settings.timezone))
    notice = messages.Draft(
        author=messages.OfficeAuthor(concern.school_id, NOTICE_ACTOR),
        kind=MessageKind.concern_notice,
        subject="A new concern is waiting in the pastoral inbox",
        body_text=(
            f"A carer raised a concern on {when:%d %B %Y at %H:%M}.\n\n"
            "Only the DSL and pastoral staff can read it: open the pastoral inbox in "
            f"Hallpass (concern {concern.id}). This email leaves out what it is about."
        ),
        urgent=True,
        addressed=(Envelope(kind=RecipientKind.staff, to=(settings.dsl_address,)),),
    )
    return messages.send_draft(session, consent, notice, now)


def list_concerns(
    session: Session,
    principal: Principal,
    *,
    status: ConcernStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[ConcernView]:
    after = decode_position(cursor)
    rows = repository.page_concerns(
        session, principal.school, status=status, after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    record_audit(
        session,
        principal,
        "pastoral.list",
        target="pastoral_inbox",
        details={"concerns": [str(c.id) for c in rows]},
    )
    return Page[ConcernView](
        items=[_view(c) for c in rows],
        next_cursor=(encode_position(rows[-1].created_at, rows[-1].id) if more and rows else None),
    )


def _find(session: Session, principal: Principal, concern_id: uuid.UUID) -> PastoralConcern:
    concern = repository.get_concern(session, principal.school, concern_id)
    if concern is None:
        raise NotFound("No such concern in this school.", code="unknown_concern")
    return concern


def read_concern(session: Session, principal: Principal, concern_id: uuid.UUID) -> ConcernView:
    concern = _find(session, principal, concern_id)
    record_audit(session, principal, "pastoral.read", target=f"concern:{concern.id}")
    return _view(concern)


def reply(
    session: Session,
    consent: ConsentClient,
    principal: Principal,
    concern_id: uuid.UUID,
    body: ReplyCreate,
    now: dt.datetime,
    *,
    caller_token: str | None = None,
) -> MessageReceipt:
    """An official message to the carer who raised the concern (them alone: a concern may be
    about home), from the replier's school account, with leadership copied (E1)."""
    concern = _find(session, principal, concern_id)
    draft = messages.Draft(
        author=messages.StaffAuthor(principal, "reply_to_concern"),
        kind=MessageKind.pastoral_reply,
        # The carer's subject may hold a line break (concerns are never mailed as typed); the
        # reply's subject is one line.
        subject=body.subject or f"Re: {one_line(concern.subject)}"[:200],
        body_text=body.body_text,
        body_html=body.body_html,
        sensitivity=body.sensitivity,
        urgent=body.urgent,
        # The reply belongs to the history of the child the concern is about.
        recipients=Targets(
            guardian_ids=frozenset({concern.guardian_id}), about_pupil_id=concern.pupil_id
        ),
        concern_id=concern.id,
    )
    sent = messages.send_draft(session, consent, draft, now, caller_token=caller_token)
    concern.status = ConcernStatus.answered
    session.flush()
    record_audit(
        session,
        principal,
        "pastoral.replied",
        target=f"concern:{concern.id}",
        details=messages.audit_details(sent),
    )
    return messages.receipt(session, sent)
