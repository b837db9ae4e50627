"""What every consent feature shares: role groups, the audit chain, events, the school check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from sqlalchemy.orm import Session

from hallpass_consent.models import School, kit_tables
from hallpass_kit.audit import AuditChain
from hallpass_kit.auth import STAFF_ROLES, Principal, Role
from hallpass_kit.errors import Conflict
from hallpass_kit.outbox import emit

audit = AuditChain(kit_tables.audit_entry)

# Who may do what (A1). Carers act only through /v1/me (A2).
REGISTRARS = (Role.office, Role.admin, Role.head, Role.deputy)
SCHOOL_ADMINS = (Role.admin, Role.head)
AUDITORS = (Role.head, Role.dsl)
PUPIL_READERS = (*STAFF_ROLES, Role.service)
GUARDIAN_READERS = (Role.office, Role.admin, Role.head, Role.deputy, Role.dsl, Role.service)
DECIDERS = (*STAFF_ROLES, Role.cms, Role.service)
EVERYONE = tuple(Role)

# Text as sent must fit the documented limits (a schema cannot say "after trimming") and show a
# character that is not white space; the white space around it is then dropped. The class spells
# out every character str.strip() removes (and U+FEFF), because \s means different things to
# ECMAScript (the schema's regex dialect), Python and the Rust engine pydantic validates with.
VISIBLE = (
    r"[^\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
TRIM = AfterValidator(str.strip)
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=VISIBLE), TRIM]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE), TRIM]


def _json_kinds(description: str, *kinds: type) -> BeforeValidator:
    """Let through only the JSON kinds the schema documents, before the type's own validation.

    FastAPI validates JSON bodies in Python mode, where pydantic's lax mode would read `true` or
    "3" as an integer and 1700000000 as a date-time.
    """

    def check(value: Any) -> Any:
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ValueError(f"Input should be {description}")
        return value

    return BeforeValidator(check)


JsonInteger = _json_kinds("an integer", int, float)  # 3.0 is an integer in JSON; 3.5 still fails
DateTimeText = _json_kinds("a date-time string", str, dt.datetime)


def record_audit(
    session: Session,
    principal: Principal,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    audit.append(
        session,
        actor=principal.actor,
        school=principal.school,
        action=action,
        target=target,
        details=details,
    )


def emit_event(session: Session, school: str, type: str, payload: Mapping[str, Any]) -> None:
    emit(session, kit_tables, type=type, school=school, payload=payload)


def require_school(session: Session, school_id: str) -> School:
    school = session.get(School, school_id)
    if school is None:
        raise Conflict(
            "This school is not set up yet; an admin or the head sets it up with PUT /v1/school.",
            code="school_not_set_up",
        )
    return school
