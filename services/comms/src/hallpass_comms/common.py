"""What every comms feature shares: role groups, the audit chain, text types."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

from hallpass_comms.models import kit_tables
from hallpass_kit.audit import AuditChain
from hallpass_kit.auth import STAFF_ROLES, Role
from hallpass_kit.errors import PROBLEM_MEDIA_TYPE, HallpassError, Problem
from hallpass_kit.fields import STORABLE, TRIM, VISIBLE, json_kinds

audit = AuditChain(kit_tables.audit_entry)

# Who may do what (A1). The sender of a message may always read it back as well.
SENDERS = (Role.staff, Role.head, Role.deputy, Role.dsl, Role.office, Role.pastoral)
SETTINGS_ADMINS = (Role.head, Role.admin)
APPROVERS = (Role.head, Role.deputy)  # E4: authorise mail to outside organisations
MESSAGE_READERS = (Role.head, Role.deputy, Role.dsl)
HISTORY_READERS = (Role.head, Role.deputy, Role.dsl, Role.pastoral, Role.office)
SEARCHERS = (Role.head, Role.dsl)  # E3: search over subjects and bodies
# Who reads the words of a sensitive message or a pastoral reply in the history.
SENSITIVE_READERS = (Role.head, Role.deputy, Role.dsl, Role.pastoral)
PASTORAL_READERS = (Role.dsl, Role.pastoral)  # E7: designated, trained staff only
REPORTERS = (Role.parent, *sorted(STAFF_ROLES), Role.pastoral)  # E10
# E10: the designated staff told of a report (the DSL, by the notice) and the head teacher, who
# answers for the school's communication.
REPORT_READERS = (Role.dsl, Role.head)
# A trust's data protection officer checks each school's trail is whole (UK GDPR Art. 5(2)) and
# holds no other comms role: they send nothing, read no family's mail and no pastoral matter
# (E7); a family's history for a subject access request is the head's or the office's to give.
# A trust's administrator holds ``admin`` in each of its schools: settings, and reports (E10).
AUDITORS = (Role.head, Role.dsl, Role.trust_dpo)

# One line that shows something: no line break or control character anywhere (the service
# refuses them too, for subjects it builds itself), and one character that is not blank.
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_BLANK = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"
ONE_LINE = rf"^[^{_CONTROL}]*[^{_CONTROL}{_BLANK}][^{_CONTROL}]*$"
Subject = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=ONE_LINE), STORABLE, TRIM
]
# What a carer types as the subject of a concern is kept as typed; a reply quoting it is made
# one line by the service.
ConcernSubject = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE), STORABLE, TRIM
]
BodyText = Annotated[
    str, StringConstraints(min_length=1, max_length=50_000, pattern=VISIBLE), STORABLE, TRIM
]
# Plain addresses only: no display names, quotes, commas or line breaks, so nothing a client
# sends can add a header or a second recipient.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})+"
ADDRESS = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_HOST}$"
DOMAIN = rf"^{_HOST}$"
Address = Annotated[
    str, StringConstraints(max_length=254, pattern=ADDRESS), STORABLE, AfterValidator(str.lower)
]
Domain = Annotated[
    str, StringConstraints(max_length=253, pattern=DOMAIN), STORABLE, AfterValidator(str.lower)
]


DateText = json_kinds("a date string", str, dt.date)


class Gone(HallpassError):
    status, code, title = 410, "gone", "No longer available"


GONE_RESPONSE: dict[int | str, dict[str, Any]] = {
    410: {
        "model": Problem,
        "description": "It was here once and has expired",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


record_audit = audit.record
