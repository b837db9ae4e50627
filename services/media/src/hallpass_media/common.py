"""What every media feature shares: role groups, the audit chain and events."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy.orm import Session

from hallpass_kit.audit import AuditChain
from hallpass_kit.auth import STAFF_ROLES, AccessRefused, Principal, Role
from hallpass_kit.errors import ProblemDetail
from hallpass_kit.outbox import emit
from hallpass_media.events import EVENTS
from hallpass_media.models import kit_tables

audit = AuditChain(kit_tables.audit_entry)

# Who may do what (A1).
STAFF = tuple(sorted(STAFF_ROLES))
DEVICE_REGISTRARS = (Role.office, Role.admin, Role.head, Role.deputy)
UPLOADERS = STAFF
CHECKERS = (*STAFF, Role.cms)
# M6: the head holds editorial responsibility; the deputy and the social media manager publish
# under it.
PUBLISHERS = (Role.head, Role.deputy, Role.social_media)
PUBLICATION_READERS = (*STAFF, Role.cms)
SETTINGS_ADMINS = (Role.head, Role.admin)
# Subject access (M8) is handled by the school office and leadership, or asked by a carer; a
# trust's data protection officer answers such requests for each school of the trust (A3).
SUBJECT_ACCESS_STAFF = (Role.office, Role.admin, Role.head, Role.deputy, Role.dsl, Role.trust_dpo)
# The trust's data protection officer also checks each school's trail is whole (UK GDPR Art.
# 5(2)); they hold no other media role: they neither upload, publish nor change settings. A
# trust's administrator holds ``admin`` in each of its schools, so every group naming ``admin``
# is theirs too.
AUDITORS = (Role.head, Role.dsl, Role.trust_dpo)

record_audit = audit.record


class Refused(AccessRefused):
    """A rule forbids what the caller asked; the refusal is audited once the request rolled back.

    Auditing it in the request's own transaction would vanish with the rollback, and a second
    transaction opened meanwhile would wait on the first one's lock (SQLite).
    """

    def __init__(
        self,
        detail: str,
        *,
        principal: Principal,
        action: str,
        target: str | None,
        status: int,
        code: str,
        rule: str | None,
        problems: Sequence[ProblemDetail] = (),
        title: str = "Refused",
    ) -> None:
        super().__init__(
            detail,
            principal=principal,
            action=action,
            target=target,
            status=status,
            code=code,
            rule=rule,
        )
        self.problems = list(problems)
        if status != 404:
            self.title = title


_EVENT_TYPE = {payload: event_type for event_type, payload in EVENTS.items()}


def emit_event(session: Session, school: str, event: BaseModel) -> None:
    """Write one of media's events to the outbox, in the transaction of the change it announces."""
    emit(
        session,
        kit_tables,
        type=_EVENT_TYPE[type(event)],
        school=school,
        payload=event.model_dump(mode="json"),
    )
