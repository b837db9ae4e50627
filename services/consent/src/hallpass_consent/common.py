"""What every consent feature shares: role groups, the audit chain, events, the school check."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, StringConstraints
from sqlalchemy.orm import Session

from hallpass_consent.events import EVENTS
from hallpass_consent.models import School, kit_tables
from hallpass_consent.schools.repository import get_school
from hallpass_kit.audit import AuditChain
from hallpass_kit.auth import STAFF_ROLES, Role
from hallpass_kit.errors import Conflict
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE, json_kinds
from hallpass_kit.outbox import emit

audit = AuditChain(kit_tables.audit_entry)

# Who may do what (A1). Carers act only through /v1/me (A2). A trust's administrator holds
# ``admin`` in each school of the trust (``school_roles``), so every group naming ``admin`` is
# theirs too.
REGISTRARS = (Role.office, Role.admin, Role.head, Role.deputy)
SCHOOL_ADMINS = (Role.admin, Role.head)
# A trust's data protection officer checks each school's trail is whole (UK GDPR Art. 5(2),
# accountability) and answers subject access requests (A3): they read one pupil, that pupil's
# consent history and each record's evidence (C10), and change nothing. No class lists, rosters
# or carers' contact details (A3: only what the request needs), and never a safeguarding
# restriction (C12: DSL only).
AUDITORS = (Role.head, Role.dsl, Role.trust_dpo)
PUPIL_READERS = (*STAFF_ROLES, Role.service)
# One pupil's record and consent history: what a subject access request about the pupil asks.
PUPIL_RECORD_READERS = (*PUPIL_READERS, Role.trust_dpo)
# A consent record and its receipt: the evidence of who decided, how and on which wording (C10).
RECORD_READERS = (*REGISTRARS, Role.dsl, Role.trust_dpo)
GUARDIAN_READERS = (Role.office, Role.admin, Role.head, Role.deputy, Role.dsl, Role.service)
# The accounts that sign in as a carer: staff who look after carers' records; no other service
# needs them (they find a carer's records through the carer's own token).
ACCOUNT_READERS = (Role.office, Role.admin, Role.head, Role.deputy, Role.dsl)
DECIDERS = (*STAFF_ROLES, Role.cms, Role.service)
EVERYONE = tuple(Role)

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=VISIBLE), STORABLE, TRIM
]
DateTimeText = json_kinds("a date-time string", str, dt.datetime)


record_audit = audit.record


# Payload model -> event type: an event is named by what it is, so a payload can never be
# announced under another event's name.
_EVENT_TYPES = {model: name for name, model in EVENTS.items()}


def emit_event(session: Session, school: str, event: BaseModel) -> None:
    """Write one of the service's events (events.py) to the outbox, in the caller's transaction."""
    emit(
        session,
        kit_tables,
        type=_EVENT_TYPES[type(event)],
        school=school,
        payload=event.model_dump(mode="json"),
    )


def require_school(session: Session, school_id: str) -> School:
    school = get_school(session, school_id)
    if school is None:
        raise Conflict(
            "This school is not set up yet; an admin or the head sets it up with PUT /v1/school.",
            code="school_not_set_up",
        )
    return school
