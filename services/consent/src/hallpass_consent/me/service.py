"""Parent self-service (A2): a carer sees and changes only their own children.

A carer may have a record in more than one school (children at a primary and a secondary of one
trust). Their children are listed from every school; a call about one child acts for the school
that holds that child's record, found from the carer's own records, never named by the caller.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

from sqlalchemy.orm import Session

from hallpass_consent.consents import repository as consent_records
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.policy import Reason, Verdict
from hallpass_consent.consents.schemas import ConsentReceipt, ConsentRecordView
from hallpass_consent.me import repository
from hallpass_consent.me.schemas import Child, ChildConsent
from hallpass_consent.models import Decision, GuardianLink, Pupil, Purpose, kit_tables
from hallpass_kit.auth import AccessRefused, CarerLink, Principal
from hallpass_kit.idempotency import IdempotencyKey, run_idempotent


def _guardian_of(principal: Principal) -> uuid.UUID:
    # Only a linked carer reaches these functions, acting as one of their records (_as_carer).
    assert principal.guardian_id is not None
    return principal.guardian_id


def _records(principal: Principal) -> list[CarerLink]:
    """The carer records this request may act as: those in the school chosen for it, or every
    one when the carer has several schools and named none."""
    links = list(principal.carers)
    if not links and principal.guardian_id is not None:
        links = [CarerLink(principal.school, principal.guardian_id)]
    return [link for link in links if not principal.school or link.school == principal.school]


def _as_carer(principal: Principal, link: CarerLink) -> Principal:
    """The carer acting for the school of ``link``, as that record."""
    return replace(principal.acting_for(link.school), guardian_id=link.guardian_id)


def _not_yours(principal: Principal, action: str, target: str) -> AccessRefused:
    # 404, not 403: a carer must not learn whether another family's child exists (A2).
    return AccessRefused(
        "No such child of yours.",
        principal=principal,
        action=action,
        target=target,
        status=404,
        code="not_found",
        rule="A2",
    )


def _own_child(
    session: Session, principal: Principal, pupil_id: uuid.UUID, action: str
) -> tuple[Principal, GuardianLink, Pupil]:
    """The child, and the carer acting for the school that holds them; 404 for anyone else's."""
    for record in _records(principal):
        carer = _as_carer(principal, record)
        for link, pupil in repository.children_of_guardian(
            session, carer.school, _guardian_of(carer)
        ):
            if pupil.id == pupil_id:
                return carer, link, pupil
    raise _not_yours(principal, action, str(pupil_id))


def _state_shown_to_carer(verdict: Verdict) -> str:
    # A safeguarding restriction is never named to a carer (C12): the school holds the decision.
    return "held_by_school" if verdict.reason is Reason.restricted else verdict.reason.value


def _child_consent(
    purpose: Purpose, verdict: Verdict, own: tuple[Decision, uuid.UUID] | None
) -> ChildConsent:
    return ChildConsent(
        purpose=purpose.code,
        title=purpose.title,
        title_cy=purpose.title_cy,
        wording_version=purpose.current_version,
        your_decision=own[0] if own else None,
        your_record_id=own[1] if own else None,
        allowed=verdict.allowed,
        state=_state_shown_to_carer(verdict),
        valid_until=verdict.valid_until,
    )


def _child(
    session: Session, principal: Principal, link: GuardianLink, pupil: Pupil, now: dt.datetime
) -> Child:
    purposes = [
        p for p in consents.consent_purposes(session, principal.school) if p.requires_consent
    ]
    verdicts = consents.evaluate(session, principal.school, purposes, [pupil.id], now)
    mine = repository.latest_answers(session, principal.school, pupil.id, _guardian_of(principal))
    return Child(
        school=principal.school,
        pupil_id=pupil.id,
        given_name=pupil.given_name,
        family_name=pupil.family_name,
        preferred_name=pupil.preferred_name,
        year_group=pupil.year_group,
        parental_responsibility=link.parental_responsibility,
        consents=[
            _child_consent(purpose, verdicts[(pupil.id, purpose.code)], mine.get(purpose.id))
            for purpose in purposes
        ],
    )


def my_children(session: Session, principal: Principal, *, now: dt.datetime) -> list[Child]:
    """The carer's children on roll in every school they have a record in (or the one school
    chosen), each with the carer's answer and what applies now."""
    children: list[Child] = []
    for record in _records(principal):
        carer = _as_carer(principal, record)
        children.extend(
            _child(session, carer, link, pupil, now)
            for link, pupil in repository.children_of_guardian(
                session, carer.school, _guardian_of(carer)
            )
            if pupil.archived_at is None
        )
    return children


def my_child(
    session: Session, principal: Principal, pupil_id: uuid.UUID, *, now: dt.datetime
) -> Child:
    carer, link, pupil = _own_child(session, principal, pupil_id, "refused:me.child")
    return _child(session, carer, link, pupil, now)


def my_child_history(
    session: Session, principal: Principal, pupil_id: uuid.UUID
) -> list[ConsentRecordView]:
    carer, _link, _pupil = _own_child(session, principal, pupil_id, "refused:me.history")
    return consents.history(session, carer.school, pupil_id)


def answer_for_child(
    session: Session,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    pupil_id: uuid.UUID,
    purpose: str,
    decision: Decision,
    wording_version: int | None,
    *,
    now: dt.datetime,
    action: str,
    wording_language: str = "en",
) -> object:
    """A carer's answer for their own child, recorded once per Idempotency-Key.

    Whose child it is is checked before any stored answer is replayed, so a key never answers
    for a child the carer no longer has.
    """
    carer, _link, pupil = _own_child(session, principal, pupil_id, action)
    return run_idempotent(
        session,
        kit_tables,
        carer,
        idempotency,
        lambda: consents.record_parent_consent(
            session,
            carer,
            pupil,
            purpose,
            decision,
            wording_version,
            now=now,
            wording_language=wording_language,
        ),
        status_code=201,
    )


def my_receipt(
    session: Session, principal: Principal, record_id: uuid.UUID, *, now: dt.datetime
) -> ConsentReceipt:
    """The receipt of a record about one of the carer's children, from whichever of their
    schools holds it."""
    for school in sorted({record.school for record in _records(principal)}):
        record = consent_records.get_record(session, school, record_id)
        if record is None:
            continue
        carer, _link, _pupil = _own_child(
            session, principal.acting_for(school), record.pupil_id, "refused:me.receipt"
        )
        return consents.receipt(session, carer.school, record, now=now)
    raise _not_yours(principal, "refused:me.receipt", str(record_id))
