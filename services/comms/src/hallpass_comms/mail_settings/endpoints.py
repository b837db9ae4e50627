"""GET and PUT /v1/settings: the school's mail rules (head or admin)."""

from __future__ import annotations

from fastapi import APIRouter

from hallpass_comms.common import SETTINGS_ADMINS
from hallpass_comms.context import CommsContextDep
from hallpass_comms.mail_settings import service
from hallpass_comms.mail_settings.schemas import MailSettingsBody, MailSettingsView
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["settings"], responses=problem_responses(403))


@router.get("/settings", responses=problem_responses(404))
def read_settings(
    session: SessionDep, principal: Principal = require_roles(*SETTINGS_ADMINS)
) -> MailSettingsView:
    """The school's mail settings; 404 until the head or an admin has made them."""
    return service.read(session, principal)


@router.put("/settings", responses=problem_responses(422))
def replace_settings(
    body: MailSettingsBody,
    session: SessionDep,
    context: CommsContextDep,
    principal: Principal = require_roles(*SETTINGS_ADMINS),
) -> MailSettingsView:
    """Set the school's mail settings whole: its domains, leadership and DSL addresses, the CC
    policy (E1), school hours, days, terms and time zone (E8), whether outside mail needs
    approval (E4) and how long secure links work (E5). Audited."""
    return service.replace(session, principal, body, context.clock())
