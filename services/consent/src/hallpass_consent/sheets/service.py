"""The class consent sheet (C7): who may appear, for what, at a glance before a photo or film."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from hallpass_consent.consents import service as consents
from hallpass_consent.consents.policy import Reason
from hallpass_consent.models import Pupil, Purpose
from hallpass_consent.schools.repository import get_school
from hallpass_consent.sheets import repository
from hallpass_consent.sheets.schemas import ConsentSheet, SheetCell, SheetPurpose, SheetRow
from hallpass_kit.auth import Principal
from hallpass_kit.errors import NotFound


def _row(pupil: Pupil, purposes: list[Purpose], verdicts: consents.Verdicts) -> SheetRow:
    cells = [
        SheetCell(
            purpose=p.code,
            allowed=verdicts[(pupil.id, p.code)].allowed,
            reason=verdicts[(pupil.id, p.code)].reason,
        )
        for p in purposes
    ]
    shown = pupil.preferred_name or pupil.given_name
    return SheetRow(
        pupil_id=pupil.id,
        name=f"{shown} {pupil.family_name}",
        restricted=any(c.reason is Reason.restricted for c in cells),
        cells=cells,
    )


def build_sheet(
    session: Session, principal: Principal, class_id: uuid.UUID, *, now: dt.datetime
) -> ConsentSheet:
    """Every pupil of the class on roll against every purpose that needs consent, at ``now``."""
    school_class = repository.get_class(session, principal.school, class_id)
    if school_class is None:
        raise NotFound("No such class in this school.", code="unknown_class")
    members = repository.class_members(session, principal.school, class_id)
    purposes = [
        p for p in consents.consent_purposes(session, principal.school) if p.requires_consent
    ]
    verdicts = consents.evaluate(session, principal.school, purposes, [m.id for m in members], now)
    school = get_school(session, principal.school)
    return ConsentSheet(
        class_id=class_id,
        class_name=school_class.name,
        school_name=school.name if school else principal.school,
        at=now,
        purposes=[SheetPurpose(code=p.code, title=p.title) for p in purposes],
        rows=[_row(pupil, purposes, verdicts) for pupil in members],
    )
