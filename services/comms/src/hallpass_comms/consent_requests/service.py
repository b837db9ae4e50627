"""Consent request emails: when the consent service announces a mail round, each carer due in it
gets one message with their personal link, through the same pipeline as staff mail (E2 the
school's own account, E8 school hours, E3 kept per family), copying leadership (E1)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hallpass_comms.common import audit
from hallpass_comms.consent_client import ConsentClient, RequestCarerLink, RoundLinks
from hallpass_comms.consent_requests import policy, repository
from hallpass_comms.consent_requests.policy import MailDueNotice
from hallpass_comms.mail_settings.service import require_settings
from hallpass_comms.messages import service as messages
from hallpass_comms.messages.policy import leadership_cc
from hallpass_comms.models import ConsentRequestMail, MessageKind, RecipientKind
from hallpass_comms.recipients.policy import Envelope
from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Event

ACTOR = "service:comms-consent-requests"
logger = logging.getLogger("hallpass.comms.consent_requests")


def _mail_one(
    session: Session,
    consent: ConsentClient,
    links: RoundLinks,
    carer: RequestCarerLink,
    *,
    school: str,
    public_base_url: str,
    now: dt.datetime,
) -> str:
    """One carer's email and the note that it was written, in one transaction; returns its
    words."""
    settings = require_settings(session, school)
    address = carer.email.strip().lower()
    draft = messages.Draft(
        author=messages.OfficeAuthor(school, ACTOR),
        kind=MessageKind.consent_request,
        subject=policy.subject(links),
        body_text=policy.body_text(
            links, carer, policy.personal_link(public_base_url, carer.token), settings.timezone
        ),
        addressed=(
            Envelope(
                kind=RecipientKind.family,
                to=(address,),
                guardian_ids=(carer.guardian_id,),
                pupil_ids=tuple(sorted({c.pupil_id for c in carer.children})),
            ),
        ),
    )
    message = messages.send_draft(session, consent, draft, now).message
    repository.add_mail(
        session,
        ConsentRequestMail(
            school_id=school,
            request_id=links.request_id,
            guardian_id=carer.guardian_id,
            round=links.round,
            message_id=message.id,
            created_at=now,
        ),
    )
    audit.append(
        session,
        actor=ACTOR,
        school=school,
        action="consent_request.mailed",
        target=f"message:{message.id}",
        details={
            "request_id": str(links.request_id),
            "round": links.round,
            "guardian_id": str(carer.guardian_id),
        },
    )
    return draft.body_text


def _copy_leadership(
    session: Session,
    consent: ConsentClient,
    links: RoundLinks,
    *,
    school: str,
    carers: int,
    example: str,
    now: dt.datetime,
) -> None:
    """Leadership's one copy of the round (E1), rather than a copy of every carer's email: the
    head sees what went out and to how many, and never holds a link that answers as a carer."""
    settings = require_settings(session, school)
    sender = settings.office_address or ""
    leadership = tuple(
        leadership_cc(
            settings.cc_policy,
            head=settings.head_address,
            deputy=settings.deputy_address,
            sender=sender,
        )
    )
    if not leadership:
        return
    draft = messages.Draft(
        author=messages.OfficeAuthor(school, ACTOR),
        kind=MessageKind.consent_request,
        subject=f"Copy: {policy.subject(links)}",
        body_text=policy.leadership_text(links, carers, example),
        addressed=(Envelope(kind=RecipientKind.staff, to=leadership),),
    )
    message = messages.send_draft(session, consent, draft, now).message
    repository.add_mail(
        session,
        ConsentRequestMail(
            school_id=school,
            request_id=links.request_id,
            guardian_id=policy.LEADERSHIP_COPY,
            round=links.round,
            message_id=message.id,
            created_at=now,
        ),
    )


def mail_round(
    database: Database,
    consent: ConsentClient,
    notice: MailDueNotice,
    *,
    public_base_url: str,
    now: dt.datetime,
) -> int:
    """Write to each carer due in the round and not written to yet; returns how many."""
    school = notice.school_id
    with database.session() as session:
        require_settings(session, school)  # nothing is asked of consent for a school not set up
    links = consent.round_links(school, notice.request_id, notice.round)
    if links is None:
        return 0  # closed meanwhile, or not this school's: nobody to write to
    with database.session(read_only=True) as session:
        already = repository.already_mailed(session, school, notice.request_id, notice.round)
    written = 0
    example: str | None = None
    # One transaction per carer: a failure for one address never unsends the others, and the
    # mail row's key makes a delivery running alongside this one give up rather than repeat.
    for carer in policy.due_carers(links, already):
        try:
            with database.session() as session:
                example = _mail_one(
                    session,
                    consent,
                    links,
                    carer,
                    school=school,
                    public_base_url=public_base_url,
                    now=now,
                )
        except IntegrityError:
            logger.info("consent request %s: carer already written to", notice.request_id)
            continue
        written += 1
    if example is not None and policy.LEADERSHIP_COPY not in already:
        try:
            with database.session() as session:
                _copy_leadership(
                    session,
                    consent,
                    links,
                    school=school,
                    carers=written,
                    example=example,
                    now=now,
                )
        except IntegrityError:
            logger.info("consent request %s: leadership already copied", notice.request_id)
    return written


def mail_due_handler(
    database: Database,
    consent: ConsentClient,
    public_base_url: str,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Callable[[Event], None]:
    """The listener for consent's ``consent_request.mail_due`` (in-process or by webhook)."""

    def handle(event: Event) -> None:
        try:
            notice = MailDueNotice.model_validate(event.payload)
        except ValidationError:
            logger.warning("consent_request.mail_due %s could not be read; skipped", event.id)
            return
        if notice.school_id != event.school:
            logger.warning("consent_request.mail_due %s names another school; skipped", event.id)
            return
        written = mail_round(
            database, consent, notice, public_base_url=public_base_url, now=clock()
        )
        if written:
            logger.info(
                "consent request %s round %s: %s emails", notice.request_id, notice.round, written
            )

    return handle
