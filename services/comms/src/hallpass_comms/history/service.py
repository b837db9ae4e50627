"""E3: the messages between the school and one family, kept and found per pupil."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from hallpass_comms.common import PASTORAL_READERS, SEARCHERS, SENSITIVE_READERS, record_audit
from hallpass_comms.history import repository
from hallpass_comms.history.schemas import FamilyHistoryEntry
from hallpass_comms.messages.repository import deliveries_of
from hallpass_comms.models import Delivery, DeliveryStatus, Message, MessageKind, Sensitivity
from hallpass_comms.recipients.service import children_of, pupil_in_school
from hallpass_kit.auth import AccessRefused, Principal, Role
from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import NotFound
from hallpass_kit.pagination import Page, decode_position, encode_position

BATCH = 200


def _visible_to_carer(deliveries: list[Delivery], guardian: str, now: dt.datetime) -> bool:
    return any(
        guardian in d.guardian_ids
        and d.status is not DeliveryStatus.pending_approval
        and d.due_at <= now
        for d in deliveries
    )


def family_history(
    session: Session,
    consent: ServiceClient,
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
    carer = principal.has_any({Role.parent}) and not principal.has_any(
        {Role.head, Role.deputy, Role.dsl, Role.pastoral, Role.office}
    )
    if search and not principal.has_any(SEARCHERS):
        raise AccessRefused(
            "Only the head and the DSL search families' messages.",
            principal=principal,
            action="refused:search_family_messages",
            target=f"pupil:{pupil_id}",
            code="search_not_allowed",
            rule="E3",
        )
    if carer:
        assert principal.guardian_id is not None  # a carer's token always names them (A2)
        if pupil_id not in children_of(
            consent, principal.school, principal.guardian_id, caller_token=caller_token
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
    elif not pupil_in_school(consent, principal.school, pupil_id, caller_token=caller_token):
        raise NotFound("No such pupil in this school.", code="unknown_pupil")
    kinds = set(MessageKind)
    if not carer and not principal.has_any({*PASTORAL_READERS, Role.head}):
        kinds.discard(MessageKind.pastoral_reply)  # E7: pastoral matters stay with pastoral staff
    reads_sensitive = not carer and principal.has_any(SENSITIVE_READERS)
    guardian = str(principal.guardian_id)

    found: list[tuple[Message, list[Delivery]]] = []
    after = decode_position(cursor)
    while len(found) <= limit:
        batch = repository.family_messages(
            session,
            principal.school,
            pupil_id,
            after=after,
            limit=BATCH,
            search=search,
            kinds=kinds,
        )
        if not batch:
            break
        deliveries: dict[uuid.UUID, list[Delivery]] = {m.id: [] for m in batch}
        for delivery in deliveries_of(session, [m.id for m in batch]):
            if str(pupil_id) in delivery.pupil_ids:
                deliveries[delivery.message_id].append(delivery)
        for message in batch:
            mine = deliveries[message.id]
            if carer:
                if not _visible_to_carer(mine, guardian, now):
                    continue
                mine = [d for d in mine if guardian in d.guardian_ids]
            found.append((message, mine))
        after = (batch[-1].created_at, batch[-1].id)
        if len(batch) < BATCH:
            break
    more = len(found) > limit
    page = found[:limit]
    record_audit(
        session,
        principal,
        "history.search" if search else "history.read",
        target=f"pupil:{pupil_id}",
        details={"search": search} if search else None,
    )
    return Page[FamilyHistoryEntry](
        items=[
            FamilyHistoryEntry(
                id=m.id,
                kind=m.kind,
                sender_address=m.sender_address,
                subject=m.subject,
                body_text=(
                    m.body_text if m.sensitivity is Sensitivity.normal or reads_sensitive else None
                ),
                sensitivity=m.sensitivity,
                urgent=m.urgent,
                created_at=m.created_at,
                scheduled_for=m.scheduled_for,
                delivery_statuses=[d.status for d in ds],
            )
            for m, ds in page
        ],
        next_cursor=(
            encode_position(page[-1][0].created_at, page[-1][0].id) if more and page else None
        ),
    )
