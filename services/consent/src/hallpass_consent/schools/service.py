from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy.orm import Session

from hallpass_consent.common import SCHOOL_ADMINS, record_audit, require_school
from hallpass_consent.consents import service as consents
from hallpass_consent.events import ChangeCause
from hallpass_consent.models import Basis, Purpose, PurposeWording, School
from hallpass_consent.schools import repository
from hallpass_consent.schools.catalogue import CATALOGUE, EXPLICIT_ONLY
from hallpass_consent.schools.schemas import (
    NewWording,
    PurposeChange,
    PurposeHistory,
    PurposeView,
    SchoolSettings,
    SchoolView,
    WordingVersion,
)
from hallpass_kit.auth import Principal
from hallpass_kit.errors import NotFound, Unprocessable

__all__ = ["SCHOOL_ADMINS"]


def _view(school: School) -> SchoolView:
    return SchoolView(
        id=school.id,
        name=school.name,
        consent_expiry=school.consent_expiry,
        academic_year_ends=f"{school.academic_year_end_month:02d}-{school.academic_year_end_day:02d}",
        roster_version=school.roster_version,
    )


def get_school(session: Session, principal: Principal) -> SchoolView:
    school = repository.get_school(session, principal.school)
    if school is None:
        raise NotFound("This school is not set up yet.", code="school_not_set_up")
    return _view(school)


def put_school(
    session: Session, principal: Principal, settings: SchoolSettings, *, now: dt.datetime
) -> SchoolView:
    month, day = (int(part) for part in settings.academic_year_ends.split("-"))
    if day > (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31):
        raise Unprocessable("academic_year_ends is not a day of the year.", code="invalid_date")
    school = repository.get_school(session, principal.school)
    created = school is None
    if school is None:
        school = School(id=principal.school, created_at=now, roster_version=1)
    school.name = settings.name
    school.consent_expiry = settings.consent_expiry
    school.academic_year_end_month, school.academic_year_end_day = month, day
    school.updated_at = now
    if created:
        repository.add(session, school)
    else:
        repository.save(session)
    if created:
        seed_purposes(session, principal.school, actor=principal.actor, now=now)
    record_audit(
        session,
        principal,
        "school.created" if created else "school.updated",
        principal.school,
        settings.model_dump(mode="json"),
    )
    return _view(school)


def seed_purposes(session: Session, school_id: str, *, actor: str, now: dt.datetime) -> None:
    for position, seed in enumerate(CATALOGUE):
        purpose = Purpose(
            school_id=school_id,
            code=seed.code,
            title=seed.title,
            title_cy=seed.title_cy,
            basis=seed.basis,
            requires_consent=seed.requires_consent,
            publishable=seed.publishable,
            names_pupil=seed.names_pupil,
            needs_pupil_agreement=seed.needs_pupil_agreement,
            current_version=1,
            position=position,
        )
        repository.add(session, purpose)
        repository.add(
            session,
            _wording_row(purpose, 1, seed.wording, seed.wording_cy, actor=actor, now=now),
        )


def sha256_of(text: str) -> str:
    """The hash a receipt carries, so a carer can show the words they were given are these."""
    return hashlib.sha256(text.encode()).hexdigest()


def _wording_row(
    purpose: Purpose, version: int, text: str, text_cy: str | None, *, actor: str, now: dt.datetime
) -> PurposeWording:
    return PurposeWording(
        purpose_id=purpose.id,
        version=version,
        text=text,
        text_sha256=sha256_of(text),
        text_cy=text_cy,
        text_cy_sha256=sha256_of(text_cy) if text_cy is not None else None,
        created_by=actor,
        created_at=now,
    )


def _purpose_view(purpose: Purpose, wording: PurposeWording) -> PurposeView:
    return PurposeView(
        code=purpose.code,
        title=purpose.title,
        title_cy=purpose.title_cy,
        basis=purpose.basis,
        requires_consent=purpose.requires_consent,
        publishable=purpose.publishable,
        names_pupil=purpose.names_pupil,
        needs_pupil_agreement=purpose.needs_pupil_agreement,
        wording_version=wording.version,
        wording=wording.text,
        wording_sha256=wording.text_sha256,
        wording_cy=wording.text_cy,
        wording_cy_sha256=wording.text_cy_sha256,
    )


def list_purposes(session: Session, principal: Principal) -> list[PurposeView]:
    return [_purpose_view(p, w) for p, w in repository.purposes(session, principal.school)]


def find_purpose(session: Session, school_id: str, code: str) -> Purpose:
    purpose = repository.purpose_by_code(session, school_id, code)
    if purpose is None:
        raise NotFound(
            f"No purpose '{code}' in this school's catalogue.", code="unknown_purpose", rule="C1"
        )
    return purpose


def purpose_history(session: Session, principal: Principal, code: str) -> PurposeHistory:
    purpose = find_purpose(session, principal.school, code)
    versions = repository.wordings(session, purpose.id)
    current = next(w for w in versions if w.version == purpose.current_version)
    return PurposeHistory(
        **_purpose_view(purpose, current).model_dump(),
        versions=[
            WordingVersion(
                version=w.version,
                text=w.text,
                sha256=w.text_sha256,
                text_cy=w.text_cy,
                sha256_cy=w.text_cy_sha256,
                created_by=w.created_by,
                created_at=w.created_at,
            )
            for w in versions
        ],
    )


def add_wording(
    session: Session, principal: Principal, code: str, body: NewWording, *, now: dt.datetime
) -> PurposeHistory:
    require_school(session, principal.school)
    purpose = find_purpose(session, principal.school, code)
    purpose.current_version += 1
    repository.add(
        session,
        _wording_row(
            purpose,
            purpose.current_version,
            body.text,
            body.text_cy,
            actor=principal.actor,
            now=now,
        ),
    )
    repository.save(session)
    record_audit(
        session,
        principal,
        "purpose.wording_added",
        code,
        {
            "version": purpose.current_version,
            "languages": ["en", "cy"] if body.text_cy is not None else ["en"],
        },
    )
    return purpose_history(session, principal, code)


def change_purpose(
    session: Session, principal: Principal, code: str, change: PurposeChange, *, now: dt.datetime
) -> PurposeHistory:
    purpose = find_purpose(session, principal.school, code)
    if not purpose.requires_consent:
        raise Unprocessable(
            "This purpose needs no consent; it has no basis to change.",
            code="no_consent_needed",
            rule="C6",
        )
    if change.basis is Basis.objection and code in EXPLICIT_ONLY:
        raise Unprocessable(
            f"'{code}' needs an explicit yes from a parent; it cannot be objection-based.",
            code="explicit_consent_required",
            rule=EXPLICIT_ONLY[code],
        )
    # Silence reads differently under the new basis: every pupil without a record flips, and
    # publishers must hear of each one that can no longer appear (C2, M7).
    on_roll = repository.on_roll_pupil_ids(session, principal.school)
    states = consents.evaluate(session, principal.school, [purpose], on_roll, now)
    before = purpose.basis
    purpose.basis = change.basis
    repository.save(session)
    consents.announce_changes(
        session,
        principal.school,
        [purpose],
        on_roll,
        states,
        cause=ChangeCause.purpose_basis_changed,
        now=now,
    )
    record_audit(
        session,
        principal,
        "purpose.basis_changed",
        code,
        {"from": before.value, "to": change.basis.value},
    )
    return purpose_history(session, principal, code)
