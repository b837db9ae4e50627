"""Every statement about carers' own accounts and their invitations."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hallpass_consent.models import CarerAccount, CarerInvitation, Guardian


def accounts_of_person(session: Session, issuer: str, subject: str) -> Sequence[CarerAccount]:
    """Every record this account was ever linked to, unlinked ones included."""
    return session.scalars(
        select(CarerAccount)
        .where(CarerAccount.issuer == issuer, CarerAccount.subject == subject)
        .order_by(CarerAccount.school_id, CarerAccount.guardian_id)
    ).all()


def guardians_with_email(session: Session, email: str) -> Sequence[Guardian]:
    """The carer records in every school holding ``email``, in any case.

    Both sides are lower-cased by the database, so the comparison is the same whichever database
    runs it, and ``ix_guardian_email_lower`` serves it.
    """
    return session.scalars(
        select(Guardian)
        .where(func.lower(Guardian.email) == func.lower(email))
        .order_by(Guardian.school_id, Guardian.id)
    ).all()


def get_guardian(session: Session, school_id: str, guardian_id: uuid.UUID) -> Guardian | None:
    return session.scalars(
        select(Guardian).where(Guardian.school_id == school_id, Guardian.id == guardian_id)
    ).one_or_none()


def account_of(
    session: Session, issuer: str, subject: str, guardian_id: uuid.UUID
) -> CarerAccount | None:
    return session.scalars(
        select(CarerAccount).where(
            CarerAccount.issuer == issuer,
            CarerAccount.subject == subject,
            CarerAccount.guardian_id == guardian_id,
        )
    ).one_or_none()


def linked_accounts(
    session: Session, school_id: str, guardian_id: uuid.UUID
) -> Sequence[CarerAccount]:
    return session.scalars(
        select(CarerAccount)
        .where(
            CarerAccount.school_id == school_id,
            CarerAccount.guardian_id == guardian_id,
            CarerAccount.unlinked_at.is_(None),
        )
        .order_by(CarerAccount.linked_at, CarerAccount.id)
    ).all()


def linked_account(
    session: Session, school_id: str, guardian_id: uuid.UUID, account_id: uuid.UUID
) -> CarerAccount | None:
    return session.scalars(
        select(CarerAccount).where(
            CarerAccount.id == account_id,
            CarerAccount.school_id == school_id,
            CarerAccount.guardian_id == guardian_id,
            CarerAccount.unlinked_at.is_(None),
        )
    ).one_or_none()


def invitation_by_hash(session: Session, code_hash: str) -> CarerInvitation | None:
    return session.scalars(
        select(CarerInvitation).where(CarerInvitation.code_hash == code_hash)
    ).one_or_none()


def revoke_open_invitations(
    session: Session, school_id: str, guardian_id: uuid.UUID, now: dt.datetime
) -> int:
    """Retire the carer's unused codes; how many there were."""
    result = session.execute(
        update(CarerInvitation)
        .where(
            CarerInvitation.school_id == school_id,
            CarerInvitation.guardian_id == guardian_id,
            CarerInvitation.redeemed_at.is_(None),
            CarerInvitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def claim_invitation(
    session: Session, invitation_id: uuid.UUID, issuer: str, subject: str, now: dt.datetime
) -> bool:
    """Mark the invitation used by this account, unless someone used or retired it first.

    One conditional UPDATE: of two people redeeming the same code at once, exactly one wins.
    """
    result = session.execute(
        update(CarerInvitation)
        .where(
            CarerInvitation.id == invitation_id,
            CarerInvitation.redeemed_at.is_(None),
            CarerInvitation.revoked_at.is_(None),
            CarerInvitation.expires_at > now,
        )
        .values(redeemed_at=now, redeemed_by_issuer=issuer, redeemed_by_subject=subject)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def add(session: Session, row: CarerAccount | CarerInvitation) -> None:
    session.add(row)
    session.flush()
