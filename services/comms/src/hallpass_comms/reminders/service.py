"""Consent renewal reminders: carers whose consents lapse soon get one message each, through
the same pipeline as staff mail (E2 school account, E8 school hours), never twice for the same
lapsing consent."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_comms.common import audit
from hallpass_comms.mail_settings import repository as settings_repository
from hallpass_comms.mail_settings.service import require_settings
from hallpass_comms.messages import service as messages
from hallpass_comms.models import (
    Approval,
    MailSettings,
    MessageKind,
    RecipientKind,
    RenewalReminder,
    Sensitivity,
)
from hallpass_comms.recipients.policy import Envelope, FamilyRecord, Targets
from hallpass_comms.recipients.service import resolve_families
from hallpass_comms.reminders.policy import Lapsing, due_reminders, purpose_words
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.errors import HallpassError, ServiceUnavailable

ACTOR = "service:comms-reminders"
logger = logging.getLogger("hallpass.comms.reminders")


def lapsing_consents(consent: ServiceClient, school: str, within_days: int) -> list[Lapsing]:
    """Grants lapsing within ``within_days`` whose carer has an address (consent's renewals)."""
    response = consent.request_sync(
        "GET", "/v1/renewals", school=school, params={"within_days": within_days}
    )
    if response.status_code != 200:
        raise ServiceUnavailable(
            f"The consent service answered {response.status_code} for renewals.",
            code="consent_unavailable",
        )
    rows: list[dict[str, Any]] = response.json()
    return [
        Lapsing(
            record_id=uuid.UUID(r["record_id"]),
            pupil_id=uuid.UUID(r["pupil_id"]),
            purpose=str(r["purpose"]),
            guardian_id=uuid.UUID(r["guardian_id"]),
            email=str(r["guardian_email"]).lower(),
            valid_until=dt.datetime.fromisoformat(r["valid_until"]),
        )
        for r in rows
        if r.get("guardian_id") and r.get("guardian_email")
    ]


def _already_reminded(session: Session, school: str) -> set[tuple[uuid.UUID, uuid.UUID]]:
    rows = session.execute(
        select(RenewalReminder.guardian_id, RenewalReminder.record_id).where(
            RenewalReminder.school_id == school
        )
    ).all()
    return {(r.guardian_id, r.record_id) for r in rows}


def _text(
    settings: MailSettings, grants: Sequence[Lapsing], pupils: dict[uuid.UUID, FamilyRecord]
) -> str:
    zone = ZoneInfo(settings.timezone)
    lines = []
    for grant in grants:
        pupil = pupils.get(grant.pupil_id)
        name = f"{pupil.given_name} {pupil.family_name}" if pupil else "your child"
        local = grant.valid_until.astimezone(zone)
        ends = f"{local.day} {local:%B %Y}"
        lines.append(f"- {name}: {purpose_words(grant.purpose)} (ends {ends})")
    return (
        "Dear parent or carer,\n\n"
        "Some of the consents you gave the school end soon:\n\n"
        + "\n".join(lines)
        + "\n\nIf you would like them to continue, please renew them in Hallpass or ask the "
        "school office. If you do nothing they simply end and the school will stop.\n\n"
        "With thanks,\nThe school office"
    )


def remind_renewals(
    database: Database,
    consent: ServiceClient,
    school: str,
    *,
    within_days: int,
    now: dt.datetime,
) -> int:
    """Write a reminder to each carer with consents lapsing within ``within_days`` not yet
    reminded about; returns how many messages were written."""
    with database.session() as session:
        require_settings(session, school)  # nothing is asked of consent for a school not set up
    lapsing = lapsing_consents(consent, school, within_days)
    if not lapsing:
        return 0
    with database.session() as session:
        due = due_reminders(lapsing, _already_reminded(session, school))
    if not due:
        return 0
    families = resolve_families(
        consent, school, Targets(pupil_ids=frozenset(g.pupil_id for gs in due.values() for g in gs))
    )
    pupils = {f.pupil_id: f for f in families}
    written = 0
    with database.session() as session:
        settings = require_settings(session, school)
        sender = messages.system_sender(settings, ACTOR)
        # Read again inside this transaction: a run that overlapped ours must not double up.
        already = _already_reminded(session, school)
        for guardian_id, grants in due.items():
            grants = [g for g in grants if (guardian_id, g.record_id) not in already]
            if not grants:
                continue
            message = messages.store(
                session,
                settings,
                sender,
                messages.Draft(
                    kind=MessageKind.renewal_reminder,
                    subject="Consents that end soon",
                    body_text=_text(settings, grants, pupils),
                    body_html=None,
                    sensitivity=Sensitivity.normal,
                    urgent=False,
                ),
                [
                    Envelope(
                        kind=RecipientKind.family,
                        to=(grants[0].email,),
                        guardian_ids=(guardian_id,),
                        pupil_ids=tuple(sorted({g.pupil_id for g in grants})),
                    )
                ],
                now,
                copy_leadership=False,
                approval=Approval.not_needed,
            )
            session.add_all(
                RenewalReminder(
                    school_id=school,
                    guardian_id=guardian_id,
                    record_id=g.record_id,
                    message_id=message.id,
                    created_at=now,
                )
                for g in grants
            )
            session.flush()
            audit.append(
                session,
                actor=ACTOR,
                school=school,
                action="reminder.sent",
                target=f"message:{message.id}",
                details={
                    "guardian_id": str(guardian_id),
                    "records": [str(g.record_id) for g in grants],
                    "scheduled_for": (
                        message.scheduled_for.isoformat() if message.scheduled_for else None
                    ),
                },
            )
            written += 1
    return written


def remind_every_school(
    database: Database, consent: ServiceClient, *, within_days: int, now: dt.datetime
) -> int:
    """The periodic job: every school with mail settings; one school's failure skips only it."""
    with database.session() as session:
        schools = list(settings_repository.schools_with_settings(session))
    written = 0
    for school in schools:
        try:
            written += remind_renewals(database, consent, school, within_days=within_days, now=now)
        except HallpassError as exc:
            logger.warning("renewal reminders for %s skipped: %s", school, exc.detail)
    return written
