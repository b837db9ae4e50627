"""Carers' own accounts: which records a signed-in carer is, redeeming a school's invitation
code, and the office's side (issuing codes, seeing and removing linked accounts)."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Response

from hallpass_consent.carers import service
from hallpass_consent.carers.auth import Carer
from hallpass_consent.carers.schemas import (
    CarerAccountView,
    CarerLinkView,
    InvitationIssued,
    InvitationRedemption,
    MyLinks,
)
from hallpass_consent.common import ACCOUNT_READERS, REGISTRARS
from hallpass_consent.context import ConsentContextDep
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses

# Mounted behind ``identified`` only (app.py): a carer reaches these before any school is chosen,
# and before they are linked to any record at all.
me_router = APIRouter(prefix="/v1/me", tags=["me"], responses=problem_responses(403))

# The office's side, one school per request like every staff route.
router = APIRouter(prefix="/v1", tags=["carer accounts"], responses=problem_responses(403, 404))


@me_router.get("/links")
def my_links(principal: Principal = Carer) -> MyLinks:
    """The carer records your account is, in every school (empty until it is linked). Other
    Hallpass services ask this with your own token to find your records."""
    return service.my_links(principal)


@me_router.post("/invitations:redeem", responses=problem_responses(422))
def redeem_invitation(
    body: InvitationRedemption,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = Carer,
) -> CarerLinkView:
    """Link your account to your record with the one-time code the school gave you. A code that
    is mistyped, used already or expired answers 422 ``invitation_not_valid``."""
    return service.redeem_invitation(session, principal, body.code, now=context.clock())


@router.post("/guardians/{guardian_id}/invitations", status_code=201)
def issue_invitation(
    guardian_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> InvitationIssued:
    """A one-time code for this carer to link their own account; shown only in this answer.
    Their earlier unused code stops working."""
    return service.issue_invitation(
        session,
        principal,
        guardian_id,
        now=context.clock(),
        lifetime=dt.timedelta(days=context.settings.invitation_days),
    )


@router.get("/guardians/{guardian_id}/accounts")
def carer_accounts(
    guardian_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*ACCOUNT_READERS),
) -> list[CarerAccountView]:
    """The accounts that sign in as this carer: their issuer, how each was linked and when."""
    return service.accounts_of_guardian(session, principal, guardian_id)


@router.delete("/guardians/{guardian_id}/accounts/{account_id}", status_code=204)
def unlink_carer_account(
    guardian_id: uuid.UUID,
    account_id: uuid.UUID,
    session: SessionDep,
    context: ConsentContextDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> Response:
    """Stop an account signing in as this carer. Its address will not link it again; a new
    invitation can."""
    service.unlink_account(session, principal, guardian_id, account_id, now=context.clock())
    return Response(status_code=204)
