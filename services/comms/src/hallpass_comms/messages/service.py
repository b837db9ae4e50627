"""The one pipeline every message takes: staff sends, pastoral replies, renewal reminders and
report notices alike. Each feature writes one ``Draft`` and hands it to ``send_draft``: rules are
checked before anything is written; one transaction stores the message, an envelope per family
or address, and the family index; the delivery worker sends after commit."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import nh3
from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.common import ADDRESS, MESSAGE_READERS, Gone, record_audit
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.consent_requests.policy import words_for_readers
from hallpass_comms.delivery import new_message_id_header
from hallpass_comms.delivery import repository as deliveries
from hallpass_comms.delivery.limits import TRANSPORT, SendingLimits, forecast, mailbox_key
from hallpass_comms.mail_settings.service import calendar_of, require_settings
from hallpass_comms.messages import repository
from hallpass_comms.messages.policy import (
    NoSchoolDayAhead,
    approval_of,
    envelope_status,
    find_chain_phrase,
    has_reached,
    leadership_cc,
    on_school_domain,
    release_time,
    secure_link,
)
from hallpass_comms.messages.reading import html_words
from hallpass_comms.messages.schemas import (
    BounceView,
    DeliveryView,
    MessageCreate,
    MessagePreview,
    MessageReceipt,
    MessageView,
    SecureMessage,
)
from hallpass_comms.models import (
    Approval,
    DeliveryStatus,
    MailBounce,
    MailSettings,
    Message,
    MessageForecast,
    MessageKind,
    RecipientKind,
    Sensitivity,
)
from hallpass_comms.recipients.policy import Envelope, Targets, address_envelopes
from hallpass_kit.auth import LEADERSHIP_ROLES, AccessRefused, Principal
from hallpass_kit.errors import Conflict, NotFound, ProblemDetail, Unprocessable

# The allow-list for HTML bodies: text formatting, lists, links and tables; no scripts, styles,
# images (which track opening) or forms.
HTML_TAGS = frozenset(
    {
        "a", "b", "blockquote", "br", "em", "h1", "h2", "h3", "h4", "hr", "i", "li", "ol", "p",
        "strong", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
HTML_ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
URL_SCHEMES = frozenset({"https", "http", "mailto"})
# Line breaks as any mail client or the email package reads them, and every other control.
SUBJECT_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def sanitise_html(html: str | None) -> str | None:
    """The HTML body cut down to the allow-list; None when nothing is left of it."""
    if html is None:
        return None
    cleaned = nh3.clean(
        html,
        tags=set(HTML_TAGS),
        attributes={tag: set(names) for tag, names in HTML_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    ).strip()
    return cleaned or None


@dataclass(frozen=True)
class StaffAuthor:
    """A member of staff writing in their own name: sent from their own school account (E2),
    their words checked (E6), leadership copied (E1), outside mail approved first (E4)."""

    principal: Principal
    action: str  # the endpoint, named in an audited refusal

    @property
    def school(self) -> str:
        return self.principal.school


@dataclass(frozen=True)
class OfficeAuthor:
    """Mail the service writes itself (reminders, notices to the DSL): from the school office's
    account, copying nobody."""

    school: str
    actor: str


@dataclass(frozen=True)
class Draft:
    """One message to send, as the feature that writes it knows it; ``send_draft`` does the rest."""

    author: StaffAuthor | OfficeAuthor
    kind: MessageKind
    subject: str
    body_text: str
    body_html: str | None = None
    sensitivity: Sensitivity = Sensitivity.normal
    urgent: bool = False
    # Who it is for, found through the consent service (carers, pupils, classes, addresses)...
    recipients: Targets = field(default_factory=Targets)
    # ...and envelopes the writer has addressed already (a reminder to the carer consent listed).
    addressed: tuple[Envelope, ...] = ()
    concern_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Sender:
    sub: str
    address: str


@dataclass(frozen=True)
class Sent:
    """A stored message and where it goes; the delivery worker sends it after commit."""

    message: Message
    envelopes: tuple[Envelope, ...]
    # Pupils asked for whose family has no carer with an address.
    unreachable_pupil_ids: tuple[uuid.UUID, ...] = ()


def staff_sender(settings: MailSettings, principal: Principal, action: str) -> Sender:
    """E2: the caller's own school account from the token, or a refusal (audited)."""
    address = (principal.email or "").strip().lower()
    # A plain address only: a display name or a quoted local part in a token is not one of the
    # school's accounts, and could carry text into the From header.
    plain = re.fullmatch(ADDRESS, address) is not None
    if not plain or not on_school_domain(address, settings.domains):
        raise AccessRefused(
            "Official mail goes only from your own school account; "
            f"{address or 'your account (no address in your sign-in)'} is not on the school's "
            f"domains ({', '.join(settings.domains)}).",
            principal=principal,
            action=f"refused:{action}",
            target="personal_sender",
            code="personal_sender",
            rule="E2",
        )
    return Sender(sub=principal.actor, address=address)


def office_sender(settings: MailSettings, actor: str) -> Sender:
    """System mail (reminders, report notices) comes from the school office's account."""
    address = settings.office_address or settings.head_address or settings.deputy_address
    if address is None:
        raise Conflict("The mail settings name no office address.", code="mail_settings_missing")
    return Sender(sub=actor, address=address)


def sender_of(settings: MailSettings, author: StaffAuthor | OfficeAuthor) -> Sender:
    if isinstance(author, StaffAuthor):
        return staff_sender(settings, author.principal, author.action)
    return office_sender(settings, author.actor)


def check_text(author: StaffAuthor, draft: Draft) -> None:
    """What staff wrote, before it is stored: a subject on one line, and no chain message."""
    refuse_subject_line_breaks(draft.subject)
    refuse_chain_message(author, draft)


def refuse_subject_line_breaks(subject: str) -> None:
    """A subject is one line. Carers see exactly what was typed, so a line break or control
    character is refused rather than quietly changed (rendering would make it a space)."""
    found = SUBJECT_BREAKS.search(subject)
    if found is not None:
        detail = (
            "A subject is one line of text: it may not hold a line break or control character "
            f"(U+{ord(found.group()):04X} at position {found.start()})."
        )
        raise Unprocessable(
            detail,
            code="subject_not_one_line",
            problems=[
                ProblemDetail(code="subject_not_one_line", detail=detail, where="body.subject")
            ],
        )


def refuse_chain_message(author: StaffAuthor, draft: Draft) -> None:
    """E6: chain messages are not sent; the refusal names the phrase and is audited. The text
    is read as a mail client may show it (encoded words and look-alike letters undone)."""
    phrase = find_chain_phrase(draft.subject, draft.body_text, *html_words(draft.body_html))
    if phrase is not None:
        raise AccessRefused(
            f'This reads as a chain message ("{phrase}"); chain messages are not forwarded.',
            principal=author.principal,
            action=f"refused:{author.action}",
            target="chain_message",
            status=422,
            code="chain_message",
            rule="E6",
        )


def check_recipients(draft: Draft) -> None:
    """Someone to write to; a sensitive message only to families, who open it through their
    secure link (E5), never to a bare address."""
    targets = draft.recipients
    if not targets.needs_families and not targets.addresses and not draft.addressed:
        raise Unprocessable("Name at least one recipient.", code="no_recipients")
    if draft.sensitivity is Sensitivity.sensitive and targets.addresses:
        author = draft.author
        detail = (
            "A sensitive message goes only to families, who open it through their secure link; "
            "send it without addresses."
        )
        if not isinstance(author, StaffAuthor):
            raise Unprocessable(detail, code="sensitive_needs_family", rule="E5")
        raise AccessRefused(
            detail,
            principal=author.principal,
            action=f"refused:{author.action}",
            target="sensitive_needs_family",
            status=422,
            code="sensitive_needs_family",
            rule="E5",
        )


def release_of(settings: MailSettings, now: dt.datetime, urgent: bool) -> dt.datetime | None:
    try:
        return release_time(calendar_of(settings), now, urgent=urgent)
    except NoSchoolDayAhead as exc:
        raise Conflict(
            "Non-urgent mail waits for the next school day, and the term dates hold none ahead; "
            "the head adds next year's terms in PUT /v1/settings (or send it as urgent).",
            code="no_school_day_ahead",
            rule="E8",
        ) from exc


def approval_for(
    settings: MailSettings, author: StaffAuthor | OfficeAuthor, envelopes: Sequence[Envelope]
) -> tuple[Approval, str | None]:
    """E4: held for the head or deputy, approved already (one of them is sending), or not
    needed; with who approved it."""
    leader = author.principal if isinstance(author, StaffAuthor) else None
    approval = approval_of(
        reaches_outside=any(e.kind is RecipientKind.external for e in envelopes),
        school_requires_it=settings.external_needs_approval,
        by_leadership=leader is not None and leader.has_any(LEADERSHIP_ROLES),
    )
    approved_by = leader.actor if leader is not None and approval is Approval.approved else None
    return approval, approved_by


def _delivery_rows(
    settings: MailSettings,
    message: Message,
    envelopes: Sequence[Envelope],
    cc: Sequence[str],
    now: dt.datetime,
) -> list[dict[str, object]]:
    """One row per envelope. Leadership is copied on each, never the envelope's own recipient."""
    status, due_at = envelope_status(
        held=message.approval is Approval.pending, release=message.scheduled_for, now=now
    )
    domain = settings.domains[0] if settings.domains else "hallpass.invalid"
    rows: list[dict[str, object]] = []
    for envelope in envelopes:
        delivery_id = uuid.uuid4()
        rows.append(
            {
                "id": delivery_id,
                "message_id": message.id,
                "school_id": settings.school_id,
                "recipient_kind": envelope.kind,
                "guardian_ids": [str(g) for g in envelope.guardian_ids],
                "pupil_ids": [str(p) for p in envelope.pupil_ids],
                "to_addresses": list(envelope.to),
                "cc_addresses": [c for c in cc if c not in envelope.to],
                "status": status,
                "due_at": due_at,
                "attempts": 0,
                "message_id_header": new_message_id_header(delivery_id, domain),
                "created_at": now,
            }
        )
    return rows


def require_envelopes(envelopes: Sequence[Envelope]) -> None:
    if not envelopes:
        raise Unprocessable(
            "Nobody to send this to: the recipients have no address on record.",
            code="no_recipients",
            rule="E9",
        )


def store(
    session: Session,
    settings: MailSettings,
    sender: Sender,
    draft: Draft,
    envelopes: Sequence[Envelope],
    now: dt.datetime,
    *,
    approval: Approval,
    approved_by: str | None = None,
) -> Message:
    """Write the message, its envelopes and the family index, ready for the delivery worker.

    Envelopes of a message waiting for approval (E4) are held; the others go at once or at the
    next school-day morning (E8). Staff mail copies leadership (E1); the office's does not.
    """
    require_envelopes(envelopes)
    cc = (
        leadership_cc(
            settings.cc_policy,
            head=settings.head_address,
            deputy=settings.deputy_address,
            sender=sender.address,
        )
        if isinstance(draft.author, StaffAuthor)
        else []
    )
    held = approval is Approval.pending
    message = Message(
        id=uuid.uuid4(),
        school_id=settings.school_id,
        kind=draft.kind,
        sender_sub=sender.sub,
        sender_address=sender.address,
        subject=draft.subject,
        body_text=draft.body_text,
        body_html=draft.body_html,
        sensitivity=draft.sensitivity,
        urgent=draft.urgent,
        approval=approval,
        approved_by=approved_by,
        approved_at=now if approval is Approval.approved else None,
        scheduled_for=None if held else release_of(settings, now, draft.urgent),
        concern_id=draft.concern_id,
        created_at=now,
    )
    repository.add_message(session, message)
    repository.insert_deliveries(session, _delivery_rows(settings, message, envelopes, cc, now))
    pupils = dict.fromkeys(p for envelope in envelopes for p in envelope.pupil_ids)
    repository.index_for_families(session, settings.school_id, message.id, list(pupils))
    return message


@dataclass(frozen=True)
class Plan:
    """A draft checked against every rule and addressed, not yet stored."""

    settings: MailSettings
    sender: Sender
    draft: Draft
    envelopes: tuple[Envelope, ...]
    unreachable_pupil_ids: tuple[uuid.UUID, ...]
    approval: Approval
    approved_by: str | None


def plan_draft(
    session: Session, consent: ConsentClient, draft: Draft, *, caller_token: str | None = None
) -> Plan:
    """Everything a send decides before it writes: the school's settings, the sender (E2), the
    words (E6, staff only), the recipients through consent (E9) and approval (E4)."""
    settings = require_settings(session, draft.author.school)
    sender = sender_of(settings, draft.author)
    draft = replace(draft, body_html=sanitise_html(draft.body_html))
    if isinstance(draft.author, StaffAuthor):
        check_text(draft.author, draft)
    check_recipients(draft)
    families = consent.families(draft.author.school, draft.recipients, caller_token=caller_token)
    addressing = address_envelopes(families, draft.recipients, settings.domains)
    envelopes = (*addressing.envelopes, *draft.addressed)
    approval, approved_by = approval_for(settings, draft.author, envelopes)
    return Plan(
        settings, sender, draft, envelopes, addressing.unreachable_pupil_ids, approval, approved_by
    )


def send_draft(
    session: Session,
    consent: ConsentClient,
    draft: Draft,
    now: dt.datetime,
    *,
    caller_token: str | None = None,
) -> Sent:
    """The one way a message is sent, whoever writes it: planned through every rule
    (``plan_draft``), held for school hours (E8), then one transaction stores it for the
    delivery worker."""
    plan = plan_draft(session, consent, draft, caller_token=caller_token)
    message = store(
        session,
        plan.settings,
        plan.sender,
        plan.draft,
        plan.envelopes,
        now,
        approval=plan.approval,
        approved_by=plan.approved_by,
    )
    return Sent(message, plan.envelopes, plan.unreachable_pupil_ids)


def audit_details(sent: Sent) -> dict[str, object]:
    message = sent.message
    kinds: dict[str, int] = {}
    for envelope in sent.envelopes:
        kinds[envelope.kind.value] = kinds.get(envelope.kind.value, 0) + 1
    return {
        "kind": message.kind.value,
        "from": message.sender_address,
        "envelopes": kinds,
        "sensitivity": message.sensitivity.value,
        "urgent": message.urgent,
        "approval": message.approval.value,
        "scheduled_for": message.scheduled_for.isoformat() if message.scheduled_for else None,
    }


def view(session: Session, message: Message) -> MessageView:
    deliveries = repository.delivery_rows(session, message.id)
    bounces = bounce_views(session, [d.id for d in deliveries])
    cc: list[str] = []
    for delivery in deliveries:
        cc.extend(c for c in delivery.cc_addresses if c not in cc)
    return MessageView(
        id=message.id,
        kind=message.kind,
        sender_address=message.sender_address,
        subject=message.subject,
        body_text=words_for_readers(message.kind, message.body_text),
        body_html=message.body_html,
        sensitivity=message.sensitivity,
        urgent=message.urgent,
        approval=message.approval,
        approved_by=message.approved_by,
        scheduled_for=message.scheduled_for,
        expected_last_at=_expected_last_at(session, message),
        created_at=message.created_at,
        cc=cc,
        deliveries=[
            DeliveryView(
                id=d.id,
                recipient_kind=d.recipient_kind,
                to=list(d.to_addresses),
                cc=list(d.cc_addresses),
                status=d.status,
                due_at=d.due_at,
                attempts=d.attempts,
                sent_at=d.sent_at,
                last_error=d.last_error,
                bounces=bounces.get(d.id, []),
            )
            for d in deliveries
        ],
    )


def bounce_views(
    session: Session, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[BounceView]]:
    """The bounce reports read about each envelope, oldest first."""
    found: dict[uuid.UUID, list[BounceView]] = {}
    if not delivery_ids:
        return found
    query = (
        select(MailBounce)
        .where(MailBounce.delivery_id.in_(list(delivery_ids)))
        .order_by(MailBounce.received_at, MailBounce.recipient)
    )
    for bounce in session.scalars(query):
        found.setdefault(bounce.delivery_id, []).append(
            BounceView(
                recipient=bounce.recipient,
                action=bounce.action,
                status=bounce.status,
                diagnostic=bounce.diagnostic,
                received_at=bounce.received_at,
            )
        )
    return found


def _expected_last_at(session: Session, message: Message) -> dt.datetime | None:
    found = session.get(MessageForecast, message.id)
    return found.expected_last_at if found is not None else None


def expected_last_at(
    session: Session,
    limits: SendingLimits | None,
    sender_address: str,
    recipients: Sequence[int],
    start: dt.datetime,
    now: dt.datetime,
    *,
    message_id: uuid.UUID | None = None,
) -> dt.datetime | None:
    """When the last of these envelopes (recipients each) is expected to leave the sender's
    mailbox under the provider's limits, behind the envelopes already waiting there; None when
    no limit applies."""
    if limits is None or not limits.active:
        return None
    mailbox = mailbox_key(sender_address)
    due_by = max(start, now)
    exclude = message_id or uuid.UUID(int=0)
    ahead = {
        mailbox: deliveries.waiting_recipients(
            session, due_by=due_by, exclude_message=exclude, sender=mailbox
        )
    }
    if not limits.transport.unlimited:
        ahead[TRANSPORT] = deliveries.waiting_recipients(
            session, due_by=due_by, exclude_message=exclude
        )
    return forecast(session, limits, mailbox, ahead, recipients, due_by, now)


def remember_forecast(
    session: Session, limits: SendingLimits | None, message: Message, now: dt.datetime
) -> None:
    """Keep when the message's last envelope should leave, for its 202 and its history."""
    if limits is None or not limits.active:
        return  # no limit: nothing to forecast, and no envelope to read back
    waiting = [
        d
        for d in repository.deliveries_of(session, [message.id])
        if d.status in (DeliveryStatus.queued, DeliveryStatus.scheduled)
    ]
    if not waiting:
        return
    expected = expected_last_at(
        session,
        limits,
        message.sender_address,
        [len(d.to_addresses) + len(d.cc_addresses) for d in waiting],
        min(d.due_at for d in waiting),
        now,
        message_id=message.id,
    )
    if expected is None:
        return
    found = session.get(MessageForecast, message.id)
    if found is None:
        session.add(
            MessageForecast(message_id=message.id, expected_last_at=expected, computed_at=now)
        )
    else:
        found.expected_last_at, found.computed_at = expected, now
    session.flush()


def receipt(session: Session, sent: Sent) -> MessageReceipt:
    return MessageReceipt(
        **view(session, sent.message).model_dump(),
        unreachable_pupil_ids=list(sent.unreachable_pupil_ids),
    )


def _find(session: Session, principal: Principal, message_id: uuid.UUID) -> Message:
    message = repository.get_message(session, principal.school, message_id)
    if message is None:
        raise NotFound("No such message in this school.", code="unknown_message")
    return message


def read(session: Session, principal: Principal, message_id: uuid.UUID) -> MessageView:
    """A message and each envelope's status, for its sender and the school's leadership."""
    message = _find(session, principal, message_id)
    if message.sender_sub != principal.actor and not principal.has_any(MESSAGE_READERS):
        raise AccessRefused(
            "No such message in this school.",
            principal=principal,
            action="refused:read_message",
            target=f"message:{message_id}",
            status=404,
            code="unknown_message",
        )
    return view(session, message)


def approve(
    session: Session,
    principal: Principal,
    message_id: uuid.UUID,
    now: dt.datetime,
    *,
    limits: SendingLimits | None = None,
) -> MessageView:
    """E4: the head or deputy lets a held message go; it then follows school hours (E8)."""
    settings = require_settings(session, principal.school)
    message = _find(session, principal, message_id)
    if message.approval is not Approval.pending:
        raise Conflict(
            f"This message is not waiting for approval (it is {message.approval.value}).",
            code="not_pending_approval",
            rule="E4",
        )
    release = release_of(settings, now, message.urgent)
    message.approval = Approval.approved
    message.approved_by = principal.actor
    message.approved_at = now
    message.scheduled_for = release
    status, due_at = envelope_status(held=False, release=release, now=now)
    for delivery in repository.deliveries_of(session, [message.id]):
        if delivery.status is DeliveryStatus.pending_approval:
            delivery.status, delivery.due_at = status, due_at
    session.flush()
    remember_forecast(session, limits, message, now)
    record_audit(
        session,
        principal,
        "message.approved",
        target=f"message:{message.id}",
        details={"scheduled_for": release.isoformat() if release else None},
    )
    return view(session, message)


def secure_view(
    session: Session, principal: Principal, message_id: uuid.UUID, now: dt.datetime
) -> SecureMessage:
    """E5: a sensitive message's words, for a carer it was sent to, while the link is valid."""
    settings = require_settings(session, principal.school)
    message = repository.get_message(session, principal.school, message_id)
    mine = str(principal.guardian_id)
    reached_me = message is not None and any(
        mine in d.guardian_ids and has_reached(d.status, d.due_at, now)
        for d in repository.deliveries_of(session, [message.id])
    )
    if message is None or message.sensitivity is not Sensitivity.sensitive or not reached_me:
        raise AccessRefused(
            "No such message for you.",
            principal=principal,
            action="refused:secure_view",
            target=f"message:{message_id}",
            status=404,
            code="unknown_message",
            rule="A2",
        )
    link = secure_link(
        created_at=message.created_at,
        approved_at=message.approved_at,
        scheduled_for=message.scheduled_for,
        valid_days=settings.secure_view_days,
    )
    if link.expired(now):
        raise Gone(
            "This secure link has expired; ask the school to send the message again.",
            code="secure_view_expired",
            rule="E5",
        )
    record_audit(session, principal, "message.secure_view", target=f"message:{message.id}")
    return SecureMessage(
        id=message.id,
        sender_address=message.sender_address,
        subject=message.subject,
        body_text=message.body_text,
        body_html=message.body_html,
        sent_at=link.sent_at,
        expires_at=link.expires_at,
    )


def secure_view_page(message: SecureMessage) -> str:
    """E5 in a browser: the message as a plain, accessible HTML page, every word escaped.

    Only the text part is shown: the HTML part, however cleaned when it was written, is never
    put into a page Hallpass serves under its own address.
    """
    paragraphs = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in paragraph.splitlines()) + "</p>"
        for paragraph in re.split(r"\n\s*\n", message.body_text.strip())
        if paragraph.strip()
    )
    subject = html.escape(message.subject) or "(no subject)"
    return (
        '<!doctype html>\n<html lang="en-GB">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{subject} - Hallpass</title>\n"
        "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5;color:#1b1b1b}.note{color:#444}</style>\n"
        "</head>\n<body>\n<main>\n<article>\n"
        f"<h1>{subject}</h1>\n"
        f'<p class="note">From {html.escape(message.sender_address)}, sent '
        f'<time datetime="{message.sent_at.isoformat()}">{_when(message.sent_at)}</time>.</p>\n'
        f"{paragraphs}\n</article>\n"
        f'<p class="note">This link works until <time datetime="{message.expires_at.isoformat()}">'
        f"{_when(message.expires_at)}</time>.</p>\n"
        "</main>\n</body>\n</html>\n"
    )


def _when(moment: dt.datetime) -> str:
    utc = moment.astimezone(dt.UTC)
    return f"{utc.day} {utc:%B %Y, %H:%M} UTC"


def _staff_draft(principal: Principal, body: MessageCreate, action: str) -> Draft:
    r = body.recipients
    return Draft(
        author=StaffAuthor(principal, action),
        kind=MessageKind.staff_message,
        subject=body.subject,
        body_text=body.body_text,
        body_html=body.body_html,
        sensitivity=body.sensitivity,
        urgent=body.urgent,
        recipients=Targets(
            guardian_ids=frozenset(r.guardian_ids),
            pupil_ids=frozenset(r.pupil_ids),
            class_ids=frozenset(r.class_ids),
            year_groups=frozenset(r.year_groups),
            addresses=tuple(r.addresses),
        ),
    )


def preview(
    session: Session,
    consent: ConsentClient,
    principal: Principal,
    body: MessageCreate,
    now: dt.datetime,
    *,
    caller_token: str | None = None,
    limits: SendingLimits | None = None,
) -> MessagePreview:
    """What sending this message now would do, through the same rules, writing nothing: how
    many families, who is copied (E1), whether it waits for approval (E4) or the morning (E8)."""
    plan = plan_draft(
        session,
        consent,
        _staff_draft(principal, body, "preview_message"),
        caller_token=caller_token,
    )
    require_envelopes(plan.envelopes)
    settings = plan.settings
    kinds = [envelope.kind for envelope in plan.envelopes]
    held = plan.approval is Approval.pending
    cc = leadership_cc(
        settings.cc_policy,
        head=settings.head_address,
        deputy=settings.deputy_address,
        sender=plan.sender.address,
    )
    scheduled_for = None if held else release_of(settings, now, body.urgent)
    expected = (
        None
        if held
        else expected_last_at(
            session,
            limits,
            plan.sender.address,
            [len(e.to) + len([c for c in cc if c not in e.to]) for e in plan.envelopes],
            scheduled_for or now,
            now,
        )
    )
    return MessagePreview(
        sender_address=plan.sender.address,
        families=kinds.count(RecipientKind.family),
        pupils=len({p for envelope in plan.envelopes for p in envelope.pupil_ids}),
        staff_addresses=kinds.count(RecipientKind.staff),
        outside_addresses=kinds.count(RecipientKind.external),
        cc=cc,
        approval=plan.approval,
        scheduled_for=scheduled_for,
        expected_last_at=expected,
        unreachable_pupil_ids=list(plan.unreachable_pupil_ids),
    )


def pending_approval(session: Session, principal: Principal) -> list[MessageView]:
    """E4: the school's messages waiting for the head or deputy, oldest first."""
    return [view(session, m) for m in repository.pending_messages(session, principal.school)]


def send(
    session: Session,
    consent: ConsentClient,
    principal: Principal,
    body: MessageCreate,
    now: dt.datetime,
    *,
    caller_token: str | None = None,
    limits: SendingLimits | None = None,
) -> MessageReceipt:
    """A member of staff's message, through every rule, stored for the delivery worker; with
    provider limits, when its last envelope is expected to leave."""
    draft = _staff_draft(principal, body, "send_message")
    sent = send_draft(session, consent, draft, now, caller_token=caller_token)
    held = sent.message.approval is Approval.pending
    if not held:
        remember_forecast(session, limits, sent.message, now)
    record_audit(
        session,
        principal,
        "message.held_for_approval" if held else "message.sent",
        target=f"message:{sent.message.id}",
        details=audit_details(sent),
    )
    return receipt(session, sent)
