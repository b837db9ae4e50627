"""Parent self-service (A2): a carer sees and changes only their own children."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.orm import Session

from hallpass_consent.consents import repository as consent_repository
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.policy import Reason
from hallpass_consent.consents.schemas import (
    ConsentReceipt,
    ConsentRecordView,
    ParentConsent,
)
from hallpass_consent.me.schemas import Child, ChildConsent
from hallpass_consent.models import Decision, GuardianLink, Pupil, kit_tables
from hallpass_consent.pupils import repository as pupils
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import AccessRefused, Principal, Role
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.idempotency import IdempotencyDep, IdempotencyKey, run_idempotent

router = APIRouter(prefix="/v1/me", tags=["me"], responses=problem_responses(403, 404, 422))

PurposeCode = Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z0-9_]{1,63}$"), STORABLE]
Carer = require_roles(Role.parent)


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
    assert principal.guardian_id is not None
    for link, pupil in pupils.children_of_guardian(
        session, principal.school, principal.guardian_id
    ):
        if pupil.id == pupil_id:
            return link, pupil
    raise _not_yours(principal, action, str(pupil_id))


def _child(session: Session, principal: Principal, link: GuardianLink, pupil: Pupil) -> Child:
    purposes = [
        p for p in consents.consent_purposes(session, principal.school) if p.requires_consent
    ]
    verdicts = consents.evaluate_now(session, principal.school, purposes, [pupil.id])
    mine: dict[uuid.UUID, tuple[Decision, uuid.UUID]] = {}
    for record in consent_repository.history(session, principal.school, pupil.id):
        if record.guardian_id == principal.guardian_id and record.purpose_id not in mine:
            mine[record.purpose_id] = (record.decision, record.id)
    out: list[ChildConsent] = []
    for purpose in purposes:
        verdict = verdicts[(pupil.id, purpose.code)]
        own = mine.get(purpose.id)
        state = "held_by_school" if verdict.reason is Reason.restricted else verdict.reason.value
        out.append(
            ChildConsent(
                purpose=purpose.code,
                title=purpose.title,
                wording_version=purpose.current_version,
                your_decision=own[0] if own else None,
                your_record_id=own[1] if own else None,
                allowed=verdict.allowed,
                state=state,
                valid_until=verdict.valid_until,
            )
        )
    return Child(
        pupil_id=pupil.id,
        given_name=pupil.given_name,
        family_name=pupil.family_name,
        preferred_name=pupil.preferred_name,
        year_group=pupil.year_group,
        parental_responsibility=link.parental_responsibility,
        consents=out,
    )


def _answer(
    session: Session,
    principal: Principal,
    idempotency: IdempotencyKey | None,
    pupil: Pupil,
    purpose: str,
    decision: Decision,
    wording_version: int | None,
) -> object:
    """A carer's answer for their own child, recorded once per Idempotency-Key."""
    return run_idempotent(
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: consents.record_parent_consent(
            session, principal, pupil, purpose, decision, wording_version
        ),
        status_code=201,
    )


@router.get("/children")
def my_children(session: SessionDep, principal: Principal = Carer) -> list[Child]:
    """Your children at this school and, per purpose, your answer and what applies now."""
    assert principal.guardian_id is not None
    return [
        _child(session, principal, link, pupil)
        for link, pupil in pupils.children_of_guardian(
            session, principal.school, principal.guardian_id
        )
        if pupil.archived_at is None
    ]


@router.get("/children/{pupil_id}")
def my_child(pupil_id: uuid.UUID, session: SessionDep, principal: Principal = Carer) -> Child:
    """One of your children. Any other pupil id answers 404."""
    link, pupil = _own_child(session, principal, pupil_id, "refused:me.child")
    return _child(session, principal, link, pupil)


@router.get("/children/{pupil_id}/consents")
def my_child_history(
    pupil_id: uuid.UUID, session: SessionDep, principal: Principal = Carer
) -> list[ConsentRecordView]:
    """Every consent record about your child, newest first."""
    _own_child(session, principal, pupil_id, "refused:me.history")
    codes = {p.id: p.code for p in consents.consent_purposes(session, principal.school)}
    return [
        consents.record_view(r, codes[r.purpose_id])
        for r in consent_repository.history(session, principal.school, pupil_id)
    ]


@router.post(
    "/children/{pupil_id}/consents",
    status_code=201,
    response_model=ConsentRecordView,
    responses=problem_responses(409),
)
def answer_for_my_child(
    pupil_id: uuid.UUID,
    body: ParentConsent,
    session: SessionDep,
    idempotency: IdempotencyDep,
    principal: Principal = Carer,
) -> object:
    """Give or refuse consent for your child for one purpose."""
    _link, pupil = _own_child(session, principal, pupil_id, "refused:me.answer")
    return _answer(
        session,
        principal,
        idempotency,
        pupil,
        body.purpose,
        Decision(body.decision),
        body.wording_version,
    )


@router.post(
    "/children/{pupil_id}/consents/{purpose}:withdraw",
    status_code=201,
    response_model=ConsentRecordView,
    responses=problem_responses(409),
)
def withdraw_for_my_child(
    pupil_id: uuid.UUID,
    purpose: PurposeCode,
    session: SessionDep,
    idempotency: IdempotencyDep,
    principal: Principal = Carer,
) -> object:
    """Withdraw consent in one call (C5): it applies to every decision from this moment."""
    _link, pupil = _own_child(session, principal, pupil_id, "refused:me.withdraw")
    return _answer(session, principal, idempotency, pupil, purpose, Decision.withdrawn, None)


@router.get("/consents/{record_id}/receipt")
def my_receipt(
    record_id: uuid.UUID, session: SessionDep, principal: Principal = Carer
) -> ConsentReceipt:
    """The receipt for a consent record about one of your children."""
    record = consent_repository.get_record(session, principal.school, record_id)
    if record is None:
        raise _not_yours(principal, "refused:me.receipt", str(record_id))
    _own_child(session, principal, record.pupil_id, "refused:me.receipt")
    return consents.receipt(session, principal.school, record)
