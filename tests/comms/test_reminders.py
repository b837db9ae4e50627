"""Consent renewal reminders: one message per carer per lapsing consent, through the pipeline."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.models import Delivery, Message, MessageKind
from hallpass_comms.reminders.service import remind_every_school, remind_renewals
from hallpass_kit.db import Database, utcnow
from tests.comms.conftest import OFFICE, FrozenClock
from tests.consent.builders import SchoolBuilder


def _soon(days: int) -> str:
    return (utcnow() + dt.timedelta(days=days)).isoformat()


def _reminders(database: Database) -> list[tuple[Message, Delivery]]:
    with database.session() as session:
        rows = session.execute(
            select(Message, Delivery)
            .join(Delivery, Delivery.message_id == Message.id)
            .where(Message.kind == MessageKind.renewal_reminder)
        ).all()
        return [(m, d) for m, d in rows]


def test_a_carer_with_consents_ending_soon_gets_one_reminder_listing_them(
    comms: TestClient,
    comms_db: Database,
    comms_consent: ConsentClient,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    guardian = family.guardian_ids[0]
    school.consent(family.pupil_id, guardian, valid_until=_soon(10))
    school.consent(family.pupil_id, guardian, purpose="livestream", valid_until=_soon(20))
    school.consent(family.pupil_id, guardian, purpose="print_publication", valid_until=_soon(200))

    written = remind_renewals(comms_db, comms_consent, "oakfield", within_days=30, now=clock())

    assert written == 1
    ((message, delivery),) = _reminders(comms_db)
    assert message.sender_address == OFFICE
    assert delivery.guardian_ids == [guardian]
    assert delivery.pupil_ids == [family.pupil_id]
    assert delivery.cc_addresses == []
    assert "Amara Okafor: website photo" in message.body_text
    assert "livestream" in message.body_text
    assert "print publication" not in message.body_text


def test_a_second_run_does_not_remind_again_but_a_new_lapse_is_reminded(
    comms: TestClient,
    comms_db: Database,
    comms_consent: ConsentClient,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    guardian = family.guardian_ids[0]
    school.consent(family.pupil_id, guardian, valid_until=_soon(10))
    remind_renewals(comms_db, comms_consent, "oakfield", within_days=30, now=clock())

    again = remind_renewals(comms_db, comms_consent, "oakfield", within_days=30, now=clock())
    school.consent(family.pupil_id, guardian, purpose="livestream", valid_until=_soon(15))
    later = remind_renewals(comms_db, comms_consent, "oakfield", within_days=30, now=clock())

    assert (again, later) == (0, 1)
    bodies = [m.body_text for m, _ in _reminders(comms_db)]
    (newest,) = [b for b in bodies if "livestream" in b]
    assert "website photo" not in newest


def test_e8_a_reminder_written_at_night_waits_for_the_morning(
    comms: TestClient,
    comms_db: Database,
    comms_consent: ConsentClient,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    clock: FrozenClock,
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0], valid_until=_soon(10))
    clock.advance(hours=13)  # 23:00

    remind_every_school(comms_db, comms_consent, within_days=30, now=clock())

    ((message, delivery),) = _reminders(comms_db)
    assert delivery.status.value == "scheduled"
    assert message.scheduled_for == dt.datetime(2026, 11, 19, 8, 0, tzinfo=dt.UTC)


def test_the_periodic_job_skips_schools_without_mail_settings(
    comms_app: FastAPI,
    comms_db: Database,
    comms_consent: ConsentClient,
    school: SchoolBuilder,
    clock: FrozenClock,
) -> None:
    family = school.family()
    school.consent(family.pupil_id, family.guardian_ids[0], valid_until=_soon(10))

    assert remind_every_school(comms_db, comms_consent, within_days=30, now=clock()) == 0
    assert _reminders(comms_db) == []
