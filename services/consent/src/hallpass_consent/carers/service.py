"""Carers' own accounts: linked by a verified address or a one-time code, unlinked by the office.

Every link and unlink is audited in the school whose carer record it is, whoever made it; the
audit says how the link was made and by which issuer's account, never a code.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy.orm import Session

from hallpass_consent.carers import policy, repository
from hallpass_consent.carers.schemas import (
    CarerAccountView,
    CarerLinkView,
    InvitationIssued,
    MyLinks,
)
from hallpass_consent.common import audit, record_audit
from hallpass_consent.models import CarerAccount, CarerAccountHow, CarerInvitation, Guardian
from hallpass_kit.auth import CarerLink, Principal
from hallpass_kit.errors import NotFound, Unprocessable

LINKED = "carer_account.linked"


def my_links(principal: Principal) -> MyLinks:
    """The records the signed-in carer is (already looked up when the request was identified)."""
    links = [
        CarerLinkView(school=link.school, guardian_id=link.guardian_id) for link in principal.carers
    ]
    return MyLinks(links=links, schools=sorted({link.school for link in links}))


def account_links(
    session: Session, principal: Principal
) -> tuple[list[CarerLink], dict[uuid.UUID, bool]]:
    """This account's live links, and every record it was ever linked to (True while linked)."""
    accounts = repository.accounts_of_person(session, principal.issuer, principal.sub)
    live = [CarerLink(a.school_id, a.guardian_id) for a in accounts if a.unlinked_at is None]
    return live, {a.guardian_id: a.unlinked_at is None for a in accounts}


def guardians_for_address(session: Session, principal: Principal) -> list[policy.GuardianByEmail]:
    """The carer records holding the person's address, when their provider vouches for it."""
    if not principal.email_verified or not principal.email:
        return []
    return [
        policy.GuardianByEmail(school=g.school_id, guardian_id=g.id)
        for g in repository.guardians_with_email(session, principal.email)
    ]


def link_by_email(
    session: Session, principal: Principal, guardian: policy.GuardianByEmail, *, now: dt.datetime
) -> CarerLink:
    """Link the account to one record holding its verified address, audited in that school."""
    repository.add(
        session,
        CarerAccount(
            issuer=principal.issuer,
            subject=principal.sub,
            school_id=guardian.school,
            guardian_id=guardian.guardian_id,
            how=CarerAccountHow.verified_email,
            email=principal.email,
            linked_at=now,
            linked_by=principal.actor,
        ),
    )
    _audit_link(
        session, principal, guardian.school, guardian.guardian_id, CarerAccountHow.verified_email
    )
    return CarerLink(guardian.school, guardian.guardian_id)


def _audit_link(
    session: Session,
    principal: Principal,
    school: str,
    guardian_id: uuid.UUID,
    how: CarerAccountHow,
    **details: str,
) -> None:
    audit.append(
        session,
        actor=principal.actor,
        school=school,
        action=LINKED,
        target=str(guardian_id),
        details={"how": how.value, "issuer": principal.issuer, **details},
    )


# --- invitations ---------------------------------------------------------------------------------


def _guardian_here(session: Session, principal: Principal, guardian_id: uuid.UUID) -> Guardian:
    guardian = repository.get_guardian(session, principal.school, guardian_id)
    if guardian is None:
        raise NotFound("No such carer in this school.", code="unknown_guardian")
    return guardian


def issue_invitation(
    session: Session,
    principal: Principal,
    guardian_id: uuid.UUID,
    *,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> InvitationIssued:
    """A new one-time code for a carer; their earlier unused code stops working."""
    guardian = _guardian_here(session, principal, guardian_id)
    replaced = repository.revoke_open_invitations(session, principal.school, guardian.id, now)
    code = policy.code_from_number(secrets.randbits(policy.CODE_BITS))
    normalised = policy.normalised_code(code)
    assert normalised is not None  # a code made here always reads back
    invitation = CarerInvitation(
        school_id=principal.school,
        guardian_id=guardian.id,
        code_hash=policy.code_hash(normalised),
        expires_at=now + lifetime,
        created_by=principal.actor,
        created_at=now,
    )
    repository.add(session, invitation)
    record_audit(
        session,
        principal,
        "carer_invitation.issued",
        str(guardian.id),
        {
            "invitation": str(invitation.id),
            "expires_at": invitation.expires_at.isoformat(),
            "replaced": replaced,
        },
    )
    return InvitationIssued(code=code, expires_at=invitation.expires_at)


def _not_valid() -> Unprocessable:
    # One answer for every bad code (unknown, used, replaced, expired): a guess learns nothing.
    return Unprocessable(
        "This invitation code is not valid: it may be mistyped, used already or expired. Ask the "
        "school for a new one.",
        code="invitation_not_valid",
        rule="A2",
    )


def redeem_invitation(
    session: Session, principal: Principal, text: str, *, now: dt.datetime
) -> CarerLinkView:
    """Link the signed-in account to the carer the code was issued for; the code is then used."""
    code = policy.normalised_code(text)
    if code is None:
        raise _not_valid()
    offered = policy.code_hash(code)
    invitation = repository.invitation_by_hash(session, offered)
    if invitation is None or not policy.same_hash(invitation.code_hash, offered):
        raise _not_valid()
    state = policy.InvitationState(
        expires_at=invitation.expires_at,
        revoked=invitation.revoked_at is not None,
        redeemed=invitation.redeemed_at is not None,
    )
    if not policy.invitation_usable(state, now):
        raise _not_valid()
    if not repository.claim_invitation(
        session, invitation.id, principal.issuer, principal.sub, now
    ):
        raise _not_valid()  # used by someone else a moment ago
    account = repository.account_of(
        session, principal.issuer, principal.sub, invitation.guardian_id
    )
    if account is None:
        repository.add(
            session,
            CarerAccount(
                issuer=principal.issuer,
                subject=principal.sub,
                school_id=invitation.school_id,
                guardian_id=invitation.guardian_id,
                how=CarerAccountHow.invitation,
                email=principal.email,
                linked_at=now,
                linked_by=principal.actor,
            ),
        )
    elif account.unlinked_at is not None:
        # The school unlinked this account once and has now invited it again.
        account.how = CarerAccountHow.invitation
        account.email = principal.email
        account.linked_at = now
        account.linked_by = principal.actor
        account.unlinked_at = None
        account.unlinked_by = None
        session.flush()
    _audit_link(
        session,
        principal,
        invitation.school_id,
        invitation.guardian_id,
        CarerAccountHow.invitation,
        invitation=str(invitation.id),
    )
    return CarerLinkView(school=invitation.school_id, guardian_id=invitation.guardian_id)


# --- the office's view ---------------------------------------------------------------------------


def accounts_of_guardian(
    session: Session, principal: Principal, guardian_id: uuid.UUID
) -> list[CarerAccountView]:
    """The accounts linked to one of this school's carers."""
    guardian = _guardian_here(session, principal, guardian_id)
    return [
        CarerAccountView(
            id=account.id,
            issuer=account.issuer,
            how=account.how,
            email=account.email,
            linked_at=account.linked_at,
            linked_by=account.linked_by,
        )
        for account in repository.linked_accounts(session, principal.school, guardian.id)
    ]


def unlink_account(
    session: Session,
    principal: Principal,
    guardian_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    now: dt.datetime,
) -> None:
    """The account stops being this carer; its address will not link it again by itself."""
    guardian = _guardian_here(session, principal, guardian_id)
    account = repository.linked_account(session, principal.school, guardian.id, account_id)
    if account is None:
        raise NotFound("No such account linked to this carer.", code="unknown_carer_account")
    account.unlinked_at = now
    account.unlinked_by = principal.actor
    session.flush()
    record_audit(
        session,
        principal,
        "carer_account.unlinked",
        str(guardian.id),
        {"account": str(account.id), "issuer": account.issuer, "how": account.how.value},
    )
