"""Parent self-service (A2): a carer sees and changes only their own children."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from hallpass_consent.consents import repository as consent_records
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.policy import Reason, Verdict
from hallpass_consent.consents.schemas import ConsentReceipt, ConsentRecordView
from hallpass_consent.me import repository
from hallpass_consent.me.schemas import Child, ChildConsent
from hallpass_consent.models import Decision, GuardianLink, Pupil, Purpose, kit_tables
from hallpass_kit.auth import AccessRefused, Principal
from hallpass_kit.idempotency import IdempotencyKey, run_idempotent


def _guardian_of(principal: Principal) -> uuid.UUID:
    # Only the parent role reaches these functions, and a parent's token always names the carer.
    assert principal.guardian_id is not None
    return principal.guardian_id


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
) -> tuple[GuardianLink, Pupil]:
    for link, pupil in repository.children_of_guardian(
        session, principal.school, _guardian_of(principal)
    ):
        if pupil.id == pupil_id:
            return link, pupil
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
    """The carer's children on roll, each with the carer's answer and what applies now."""
    return [
        _child(session, principal, link, pupil, now)
        for link, pupil in repository.children_of_guardian(
            session, principal.school, _guardian_of(principal)
        )
        if pupil.archived_at is None
    ]


def my_child(
    session: Session, principal: Principal, pupil_id: uuid.UUID, *, now: dt.datetime
) -> Child:
    link, pupil = _own_child(session, principal, pupil_id, "refused:me.child")
    return _child(session, principal, link, pupil, now)


def my_child_history(
    session: Session, principal: Principal, pupil_id: uuid.UUID
) -> list[ConsentRecordView]:
    _own_child(session, principal, pupil_id, "refused:me.history")
    return consents.history(session, principal.school, pupil_id)


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
) -> object:
    """A carer's answer for their own child, recorded once per Idempotency-Key.

    Whose child it is is checked before any stored answer is replayed, so a key never answers
    for a child the carer no longer has.
    """
    _link, pupil = _own_child(session, principal, pupil_id, action)
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: consents.record_parent_consent(
            session, principal, pupil, purpose, decision, wording_version, now=now
        ),
        status_code=201,
    )


def my_receipt(
    session: Session, principal: Principal, record_id: uuid.UUID, *, now: dt.datetime
) -> ConsentReceipt:
    record = consent_records.get_record(session, principal.school, record_id)
    if record is None:
        raise _not_yours(principal, "refused:me.receipt", str(record_id))
    _own_child(session, principal, record.pupil_id, "refused:me.receipt")
    return consents.receipt(session, principal.school, record, now=now)
