"""The class consent sheet (C7): who may appear, for what, at a glance before a photo or film."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from hallpass_consent.common import PUPIL_READERS
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.policy import Reason
from hallpass_consent.pupils import repository as pupils
from hallpass_consent.schools.repository import get_school
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.db import utcnow
from hallpass_kit.errors import NotFound, problem_responses

router = APIRouter(prefix="/v1", tags=["classes"], responses=problem_responses(403, 404))

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


class SheetCell(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    allowed: bool
    reason: Reason


class SheetRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pupil_id: uuid.UUID
    name: str
    restricted: bool
    cells: list[SheetCell]


class SheetPurpose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    title: str


class ConsentSheet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_id: uuid.UUID
    class_name: str
    school_name: str
    at: dt.datetime
    purposes: list[SheetPurpose]
    rows: list[SheetRow]


def build_sheet(session: Session, principal: Principal, class_id: uuid.UUID) -> ConsentSheet:
    school_class = pupils.get_class(session, principal.school, class_id)
    if school_class is None:
        raise NotFound("No such class in this school.", code="unknown_class")
    members = pupils.page_pupils(
        session,
        principal.school,
        after=None,
        limit=10_000,
        class_id=class_id,
        include_archived=False,
    )
    purposes = [
        p for p in consents.consent_purposes(session, principal.school) if p.requires_consent
    ]
    at = utcnow()
    verdicts = consents.evaluate(session, principal.school, purposes, [m.id for m in members], at)
    school = get_school(session, principal.school)
    rows = []
    for pupil in members:
        cells = [
            SheetCell(
                purpose=p.code,
                allowed=verdicts[(pupil.id, p.code)].allowed,
                reason=verdicts[(pupil.id, p.code)].reason,
            )
            for p in purposes
        ]
        shown = pupil.preferred_name or pupil.given_name
        rows.append(
            SheetRow(
                pupil_id=pupil.id,
                name=f"{shown} {pupil.family_name}",
                restricted=any(c.reason is Reason.restricted for c in cells),
                cells=cells,
            )
        )
    return ConsentSheet(
        class_id=class_id,
        class_name=school_class.name,
        school_name=school.name if school else principal.school,
        at=at,
        purposes=[SheetPurpose(code=p.code, title=p.title) for p in purposes],
        rows=rows,
    )


@router.get("/classes/{class_id}/consent-sheet")
def consent_sheet(
    class_id: uuid.UUID, session: SessionDep, principal: Principal = require_roles(*PUPIL_READERS)
) -> ConsentSheet:
    """Every pupil of the class against every purpose: allowed or not, and why (C7)."""
    return build_sheet(session, principal, class_id)


@router.get(
    "/classes/{class_id}/consent-sheet.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}},
)
def consent_sheet_page(
    class_id: uuid.UUID, session: SessionDep, principal: Principal = require_roles(*PUPIL_READERS)
) -> HTMLResponse:
    """The same sheet as a printable page, to pin up or carry to the activity."""
    sheet = build_sheet(session, principal, class_id)
    html = _templates.get_template("consent_sheet.html").render(sheet=sheet)
    return HTMLResponse(html)
