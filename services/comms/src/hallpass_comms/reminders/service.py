"""Consent renewal reminders: carers whose consents lapse soon get one message each, through
the same pipeline as staff mail (E2 school account, E8 school hours), never twice for the same
lapsing consent."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from hallpass_comms.common import audit
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.mail_settings import repository as settings_repository
from hallpass_comms.mail_settings.service import require_settings
from hallpass_comms.messages import service as messages
from hallpass_comms.models import MailSettings, MessageKind, RecipientKind, RenewalReminder
from hallpass_comms.recipients.policy import Envelope, FamilyRecord, Targets
from hallpass_comms.reminders import repository
from hallpass_comms.reminders.policy import Lapsing, due_reminders, purpose_words
from hallpass_kit.db import Database
from hallpass_kit.errors import HallpassError

ACTOR = "service:comms-reminders"
logger = logging.getLogger("hallpass.comms.reminders")


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


def _remind(
    session: Session,
    consent: ConsentClient,
    settings: MailSettings,
    guardian_id: uuid.UUID,
    grants: Sequence[Lapsing],
    pupils: dict[uuid.UUID, FamilyRecord],
    now: dt.datetime,
) -> None:
    """One carer's reminder about their lapsing grants, and the note that it was written."""
    school = settings.school_id
    draft = messages.Draft(
        author=messages.OfficeAuthor(school, ACTOR),
        kind=MessageKind.renewal_reminder,
        subject="Consents that end soon",
        body_text=_text(settings, grants, pupils),
        # To the address consent listed with the grant, about the pupils the grants are for.
        addressed=(
            Envelope(
                kind=RecipientKind.family,
                to=(grants[0].email,),
                guardian_ids=(guardian_id,),
                pupil_ids=tuple(sorted({g.pupil_id for g in grants})),
            ),
        ),
    )
    message = messages.send_draft(session, consent, draft, now).message
    repository.add_reminders(
        session,
        (
            RenewalReminder(
                school_id=school,
                guardian_id=guardian_id,
                record_id=g.record_id,
                message_id=message.id,
                created_at=now,
            )
            for g in grants
        ),
    )
    audit.append(
        session,
        actor=ACTOR,
        school=school,
        action="reminder.sent",
        target=f"message:{message.id}",
        details={
            "guardian_id": str(guardian_id),
            "records": [str(g.record_id) for g in grants],
            "scheduled_for": message.scheduled_for.isoformat() if message.scheduled_for else None,
        },
    )


def remind_renewals(
    database: Database,
    consent: ConsentClient,
    school: str,
    *,
    within_days: int,
    now: dt.datetime,
) -> int:
    """Write a reminder to each carer with consents lapsing within ``within_days`` not yet
    reminded about; returns how many messages were written."""
    with database.session() as session:
        require_settings(session, school)  # nothing is asked of consent for a school not set up
    lapsing = consent.lapsing_consents(school, within_days)
    if not lapsing:
        return 0
    with database.session() as session:
        due = due_reminders(lapsing, repository.already_reminded(session, school))
    if not due:
        return 0
    families = consent.families(
        school, Targets(pupil_ids=frozenset(g.pupil_id for gs in due.values() for g in gs))
    )
    pupils = {f.pupil_id: f for f in families}
    written = 0
    with database.session() as session:
        settings = require_settings(session, school)
        # Read again inside this transaction: a run that overlapped ours must not double up.
        already = repository.already_reminded(session, school)
        for guardian_id, grants in due.items():
            grants = [g for g in grants if (guardian_id, g.record_id) not in already]
            if grants:
                _remind(session, consent, settings, guardian_id, grants, pupils, now)
                written += 1
    return written


def remind_every_school(
    database: Database, consent: ConsentClient, *, within_days: int, now: dt.datetime
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
