"""Pure consent rules: given the records, what is a pupil's effective state for a purpose?

No I/O here: the decisions endpoint, the class sheet, the parent view and the events all call
``decide`` with what the repository loaded, so every caller reads consent the same way. The date
rules (how long a grant lasts, which dates a form may carry, when a grant is due for renewal) are
here too, handed the time by the caller: nothing in this module reads a clock.
"""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from hallpass_consent.models import Basis, ConsentExpiry, Decision, GivenBy
from hallpass_kit.errors import ProblemDetail, Unprocessable

SCHOOL_TIME = ZoneInfo("Europe/London")
# A form keyed in a few minutes after the carer pressed "send" is not backdated.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)
# A grant given this close to the end of the academic year also covers the next year.
RENEWAL_SEASON = dt.timedelta(days=60)


class Reason(StrEnum):
    granted = "granted"  # a carer with parental responsibility said yes, and it is in force
    no_objection = "no_objection"  # objection-based purpose and nobody objected
    no_consent_needed = "no_consent_needed"  # internal assessment (C6)
    no_record = "no_record"  # silence on an opt-in purpose means no (C2)
    refused = "refused"
    withdrawn = "withdrawn"
    expired = "expired"
    not_yet_valid = "not_yet_valid"
    pupil_refused = "pupil_refused"  # C8: the pupil's own say on their work
    pupil_agreement_missing = "pupil_agreement_missing"
    restricted = "restricted"  # C12: overrides every consent; the reason is never given here
    not_on_roll = "not_on_roll"  # a leaver: nothing new is published


@dataclass(frozen=True, slots=True)
class PurposeRule:
    code: str
    basis: Basis
    requires_consent: bool
    needs_pupil_agreement: bool


@dataclass(frozen=True, slots=True)
class RecordView:
    id: uuid.UUID
    given_by: GivenBy
    guardian_id: uuid.UUID | None
    decision: Decision
    recorded_at: dt.datetime
    valid_from: dt.datetime
    valid_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: Reason
    record_id: uuid.UUID | None = None
    valid_until: dt.datetime | None = None


_RESTRICTED = Verdict(False, Reason.restricted)
_NOT_ON_ROLL = Verdict(False, Reason.not_on_roll)
_NO_CONSENT_NEEDED = Verdict(True, Reason.no_consent_needed)


def _in_force(record: RecordView, at: dt.datetime) -> bool:
    return record.valid_from <= at and (record.valid_until is None or at < record.valid_until)


def decide(
    purpose: PurposeRule,
    *,
    at: dt.datetime,
    on_roll: bool,
    restricted: bool,
    responsible_guardians: frozenset[uuid.UUID],
    records: Iterable[RecordView],
) -> Verdict:
    """The effective state of one pupil for one purpose at instant ``at``.

    Each party's latest record that applies at ``at`` counts: made by then and, for a grant, begun
    by then — so a renewal given in advance leaves today's grant standing until it starts. A
    refusal or withdrawal by any carer with parental responsibility wins over any grant (C11); a
    grant counts only while in force.
    """
    if not on_roll:
        return _NOT_ON_ROLL
    if not purpose.requires_consent:
        return _NO_CONSENT_NEEDED
    if restricted:
        return _RESTRICTED

    latest: dict[uuid.UUID | None, RecordView] = {}
    upcoming: RecordView | None = None
    for record in records:
        if record.recorded_at > at:
            continue
        party = record.guardian_id if record.given_by is GivenBy.guardian else None
        if record.given_by is GivenBy.guardian and party not in responsible_guardians:
            continue
        # A "no" applies the moment it is made, whatever dates it carries (fail closed); only a
        # grant can wait for its start.
        if record.decision is Decision.granted and record.valid_from > at:
            if party is not None and (upcoming is None or record.valid_from < upcoming.valid_from):
                upcoming = record
            continue
        current = latest.get(party)
        if current is None or (record.recorded_at, record.id.bytes) > (
            current.recorded_at,
            current.id.bytes,
        ):
            latest[party] = record

    pupil_record = latest.pop(None, None)
    refusal: RecordView | None = None
    grant: RecordView | None = None
    lapsed: RecordView | None = None
    for record in latest.values():
        if record.decision is not Decision.granted:
            if refusal is None or record.recorded_at > refusal.recorded_at:
                refusal = record
        elif _in_force(record, at):
            if grant is None or record.recorded_at > grant.recorded_at:
                grant = record
        elif lapsed is None or record.recorded_at > lapsed.recorded_at:
            lapsed = record

    if refusal is not None:
        reason = Reason.withdrawn if refusal.decision is Decision.withdrawn else Reason.refused
        return Verdict(False, reason, refusal.id)

    pupil_said_no = pupil_record is not None and pupil_record.decision is not Decision.granted
    if purpose.needs_pupil_agreement and pupil_record is not None and pupil_said_no:
        return Verdict(False, Reason.pupil_refused, pupil_record.id)

    if grant is None:
        if purpose.basis is Basis.objection:
            return Verdict(True, Reason.no_objection)
        if upcoming is not None:
            return Verdict(False, Reason.not_yet_valid, upcoming.id)
        if lapsed is not None:
            return Verdict(False, Reason.expired, lapsed.id)
        return Verdict(False, Reason.no_record)

    if purpose.needs_pupil_agreement and (pupil_record is None or not _in_force(pupil_record, at)):
        return Verdict(False, Reason.pupil_agreement_missing, grant.id)
    return Verdict(True, Reason.granted, grant.id, grant.valid_until)


# --- date rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchoolYear:
    """What a school decided about how long a grant lasts."""

    expiry: ConsentExpiry
    end_month: int
    end_day: int


def academic_year_end_after(year: SchoolYear, moment: dt.datetime) -> dt.datetime:
    """The first end of an academic year (midnight after its last day, school time) after
    ``moment``."""
    local = moment.astimezone(SCHOOL_TIME)
    for calendar_year in (local.year, local.year + 1):
        # A year ending on 29 February ends on the 28th in other years.
        last = calendar.monthrange(calendar_year, year.end_month)[1]
        day = dt.date(calendar_year, year.end_month, min(year.end_day, last))
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), SCHOOL_TIME)
        if end > moment:
            return end.astimezone(dt.UTC)
    raise AssertionError("unreachable: next year's end always follows")


def _start_problems(start: dt.datetime, now: dt.datetime) -> list[ProblemDetail]:
    if start >= now - CLOCK_TOLERANCE:
        return []
    return [
        ProblemDetail(
            code="date_in_past",
            where="body.valid_from",
            detail="valid_from may not be in the past.",
        )
    ]


def _end_problems(
    start: dt.datetime, valid_until: dt.datetime | None, now: dt.datetime
) -> list[ProblemDetail]:
    if valid_until is None:
        return []
    problems: list[ProblemDetail] = []
    if valid_until <= now:
        problems.append(
            ProblemDetail(
                code="date_in_past",
                where="body.valid_until",
                detail="valid_until must be in the future.",
            )
        )
    if valid_until <= start:
        problems.append(
            ProblemDetail(
                code="dates_reversed",
                where="body.valid_until",
                detail="valid_until must come after valid_from.",
            )
        )
    return problems


def _refusal_date_problems(
    decision: Decision, valid_from: dt.datetime | None, valid_until: dt.datetime | None
) -> list[ProblemDetail]:
    if decision is Decision.granted or (valid_from is None and valid_until is None):
        return []
    return [
        ProblemDetail(
            code="dates_on_refusal",
            where="body.valid_until" if valid_until is not None else "body.valid_from",
            detail="A refusal applies from now until the carer changes it; it takes no dates.",
        )
    ]


def _default_end(year: SchoolYear, start: dt.datetime) -> dt.datetime | None:
    if year.expiry is not ConsentExpiry.academic_year_end:
        return None
    end = academic_year_end_after(year, start)
    if end - start < RENEWAL_SEASON:
        # Forms answered in the last weeks of the year are the renewals for the next one.
        end = academic_year_end_after(year, end)
    return end


def validity(
    year: SchoolYear,
    decision: Decision,
    valid_from: dt.datetime | None,
    valid_until: dt.datetime | None,
    *,
    now: dt.datetime,
) -> tuple[dt.datetime, dt.datetime | None]:
    """When a new record applies from and until; every date that makes no sense is refused at
    once, together."""
    start = valid_from or now
    problems = [
        *_start_problems(start, now),
        *_end_problems(start, valid_until, now),
        *_refusal_date_problems(decision, valid_from, valid_until),
    ]
    if problems:
        raise Unprocessable("The dates do not make sense.", code="invalid_dates", problems=problems)
    if decision is not Decision.granted:
        return start, None
    return start, valid_until if valid_until is not None else _default_end(year, start)


def supersedes(later: RecordView, grant: RecordView) -> bool:
    """Whether ``later`` settles ``grant``'s renewal: an answer of no, or a grant lasting longer."""
    if later.decision is not Decision.granted:
        return True
    assert grant.valid_until is not None
    return later.valid_until is None or later.valid_until > grant.valid_until


def renewal_due(grant: RecordView, later_of_party: Iterable[RecordView]) -> bool:
    """A grant ending soon is due for renewal unless the same party has since renewed it beyond
    its end, refused or withdrawn."""
    return not any(supersedes(later, grant) for later in later_of_party)


def ending(later_of_party: Iterable[RecordView]) -> RecordView | None:
    """The first later record of the same party that ended a grant (a refusal or withdrawal)."""
    return next((r for r in later_of_party if r.decision is not Decision.granted), None)
