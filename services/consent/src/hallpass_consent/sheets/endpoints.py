"""The class consent sheet (C7): who may appear, for what, at a glance before a photo or film."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hallpass_consent.common import PUPIL_READERS
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.sheets import service
from hallpass_consent.sheets.schemas import ConsentSheet
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["classes"], responses=problem_responses(403, 404))

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


@router.get("/classes/{class_id}/consent-sheet")
def consent_sheet(
    class_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*PUPIL_READERS),
) -> ConsentSheet:
    """Every pupil of the class against every purpose: allowed or not, and why (C7)."""
    return service.build_sheet(session, principal, class_id, now=context.clock())


@router.get(
    "/classes/{class_id}/consent-sheet.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}},
)
def consent_sheet_page(
    class_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*PUPIL_READERS),
) -> HTMLResponse:
    """The same sheet as a printable page, to pin up or carry to the activity."""
    sheet = service.build_sheet(session, principal, class_id, now=context.clock())
    html = _templates.get_template("consent_sheet.html").render(sheet=sheet)
    return HTMLResponse(html)
