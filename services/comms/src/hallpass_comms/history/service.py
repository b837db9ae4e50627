"""E3: the messages between the school and one family, kept and found per pupil."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hallpass_comms.common import PASTORAL_READERS, SEARCHERS, SENSITIVE_READERS, record_audit
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.consent_requests.policy import words_for_readers
from hallpass_comms.history import repository
from hallpass_comms.history.schemas import FamilyHistoryEntry
from hallpass_comms.messages.policy import has_reached
from hallpass_comms.messages.repository import deliveries_of
from hallpass_comms.messages.schemas import BounceView
from hallpass_comms.messages.service import bounce_views
from hallpass_comms.models import Delivery, Message, MessageKind, Sensitivity
from hallpass_kit.auth import AccessRefused, Principal, Role
from hallpass_kit.errors import NotFound
from hallpass_kit.pagination import Page, Position, decode_position, encode_position

BATCH = 200
# Staff who read a family's history as staff, even when they are a carer too.
STAFF_READERS = frozenset({Role.head, Role.deputy, Role.dsl, Role.pastoral, Role.office})


@dataclass(frozen=True)
class Reader:
    """Who reads a family's history, and so what they see of it."""

    principal: Principal
    # A carer reads only what reached them about their own child.
    carer: bool
    kinds: frozenset[MessageKind]
    reads_sensitive: bool

    @property
    def guardian(self) -> str:
        return str(self.principal.guardian_id)


def _reader(principal: Principal) -> Reader:
    carer = principal.has_any({Role.parent}) and not principal.has_any(STAFF_READERS)
    kinds = set(MessageKind)
    if not carer and not principal.has_any({*PASTORAL_READERS, Role.head}):
        kinds.discard(MessageKind.pastoral_reply)  # E7: pastoral matters stay with pastoral staff
    return Reader(
        principal=principal,
        carer=carer,
        kinds=frozenset(kinds),
        reads_sensitive=not carer and principal.has_any(SENSITIVE_READERS),
    )


def _refuse_search_unless_allowed(principal: Principal, pupil_id: uuid.UUID) -> None:
    """E3: searching over subjects and bodies is for the head and the DSL."""
    if not principal.has_any(SEARCHERS):
        raise AccessRefused(
            "Only the head and the DSL search families' messages.",
            principal=principal,
            action="refused:search_family_messages",
            target=f"pupil:{pupil_id}",
            code="search_not_allowed",
            rule="E3",
        )


def _require_pupil(
    consent: ConsentClient, reader: Reader, pupil_id: uuid.UUID, caller_token: str | None
) -> None:
    """A carer's own child (another child: 404, audited, A2); for staff, a pupil of the
    school (leavers included)."""
    principal = reader.principal
    if not reader.carer:
        if not consent.pupil_in_school(principal.school, pupil_id, caller_token=caller_token):
            raise NotFound("No such pupil in this school.", code="unknown_pupil")
        return
    assert principal.guardian_id is not None  # a carer's token always names them (A2)
    if pupil_id not in consent.children_of(
        principal.school, principal.guardian_id, caller_token=caller_token
    ):
        raise AccessRefused(
            "No such pupil in your family.",
            principal=principal,
            action="refused:family_messages",
            target=f"pupil:{pupil_id}",
            status=404,
            code="unknown_pupil",
            rule="A2",
        )


def _shown_envelopes(
    reader: Reader, envelopes: Sequence[Delivery], now: dt.datetime
) -> list[Delivery] | None:
    """The envelopes of one message the reader sees; None when the message is not shown to them
    at all (a carer sees a message once it has reached them, E4 and E8)."""
    if not reader.carer:
        return list(envelopes)
    mine = [d for d in envelopes if reader.guardian in d.guardian_ids]
    if not any(has_reached(d.status, d.due_at, now) for d in mine):
        return None
    return mine


def _envelopes_by_message(
    session: Session, batch: Sequence[Message], pupil_id: uuid.UUID
) -> dict[uuid.UUID, list[Delivery]]:
    """Each message's envelopes to this pupil's family (a class send has one per family)."""
    envelopes: dict[uuid.UUID, list[Delivery]] = {m.id: [] for m in batch}
    for delivery in deliveries_of(session, [m.id for m in batch]):
        if str(pupil_id) in delivery.pupil_ids:
            envelopes[delivery.message_id].append(delivery)
    return envelopes


def _collect(
    session: Session,
    reader: Reader,
    pupil_id: uuid.UUID,
    *,
    after: Position | None,
    wanted: int,
    search: str | None,
    now: dt.datetime,
) -> list[tuple[Message, list[Delivery]]]:
    """Up to ``wanted`` messages the reader sees, newest first, read in batches (a carer may
    see few of many)."""
    found: list[tuple[Message, list[Delivery]]] = []
    while len(found) < wanted:
        batch = repository.family_messages(
            session,
            reader.principal.school,
            pupil_id,
            after=after,
            limit=BATCH,
            search=search,
            kinds=reader.kinds,
        )
        envelopes = _envelopes_by_message(session, batch, pupil_id)
        for message in batch:
            shown = _shown_envelopes(reader, envelopes[message.id], now)
            if shown is not None:
                found.append((message, shown))
        if len(batch) < BATCH:
            break
        after = (batch[-1].created_at, batch[-1].id)
    return found


def _entry(
    reader: Reader,
    message: Message,
    envelopes: Collection[Delivery],
    expected: Mapping[uuid.UUID, dt.datetime],
    bounces: Mapping[uuid.UUID, list[BounceView]],
) -> FamilyHistoryEntry:
    words_shown = message.sensitivity is Sensitivity.normal or reader.reads_sensitive
    return FamilyHistoryEntry(
        id=message.id,
        kind=message.kind,
        sender_address=message.sender_address,
        subject=message.subject,
        body_text=words_for_readers(message.kind, message.body_text) if words_shown else None,
        sensitivity=message.sensitivity,
        urgent=message.urgent,
        created_at=message.created_at,
        scheduled_for=message.scheduled_for,
        delivery_statuses=[d.status for d in envelopes],
        expected_last_at=expected.get(message.id),
        bounces=[b for d in envelopes for b in bounces.get(d.id, [])],
    )


def family_history(
    session: Session,
    consent: ConsentClient,
    principal: Principal,
    pupil_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
    search: str | None,
    now: dt.datetime,
    caller_token: str | None = None,
) -> Page[FamilyHistoryEntry]:
    """The family's messages, newest first. Staff read per role; a carer reads only messages
    that reached them about their own child (others' children: 404, audited); searching over
    subject and body is for the head and the DSL."""
    if search:
        _refuse_search_unless_allowed(principal, pupil_id)
    reader = _reader(principal)
    _require_pupil(consent, reader, pupil_id, caller_token)
    found = _collect(
        session,
        reader,
        pupil_id,
        after=decode_position(cursor),
        wanted=limit + 1,
        search=search,
        now=now,
    )
    page = found[:limit]
    record_audit(
        session,
        principal,
        "history.search" if search else "history.read",
        target=f"pupil:{pupil_id}",
        details={"search": search} if search else None,
    )
    last = page[-1][0] if page else None
    expected = repository.forecasts(session, [m.id for m, _ in page])
    bounces = bounce_views(session, [d.id for _, envelopes in page for d in envelopes])
    return Page[FamilyHistoryEntry](
        items=[_entry(reader, m, envelopes, expected, bounces) for m, envelopes in page],
        next_cursor=(
            encode_position(last.created_at, last.id)
            if last is not None and len(found) > limit
            else None
        ),
    )
