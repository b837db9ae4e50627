"""The mail rules, decided without I/O: who is copied (E1), who may send (E2), who a recipient is
and what waits for approval (E4), how long a secure link works (E5), what is a chain message (E6)
and when held mail goes out (E8)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from hallpass_comms.messages.reading import readings
from hallpass_comms.models import Approval, CcPolicy, DeliveryStatus, RecipientKind

# --- E1: leadership copies -------------------------------------------------------------------


def leadership_cc(
    policy: CcPolicy, *, head: str | None, deputy: str | None, sender: str
) -> list[str]:
    """The head and/or deputy addresses every staff email copies, per the school's policy.

    Nobody is copied to themselves: when the head sends, the deputy is copied instead (and the
    other way round); under ``both`` the one who is not the sender is.
    """
    me = sender.lower()
    head = head.lower() if head else None
    deputy = deputy.lower() if deputy else None
    if policy is CcPolicy.both:
        wanted = [head, deputy]
    elif policy in (CcPolicy.head, CcPolicy.head_else_deputy):
        wanted = [head] if head and head != me else [deputy]
    else:
        wanted = [deputy] if deputy and deputy != me else [head]
    copied: list[str] = []
    for address in wanted:
        if address and address != me and address not in copied:
            copied.append(address)
    return copied


def addresses_cc_policy_needs(policy: CcPolicy) -> tuple[str, ...]:
    """Which leadership addresses a policy cannot work without (names of settings fields)."""
    return {
        CcPolicy.head: ("head_address",),
        CcPolicy.deputy: ("deputy_address",),
        CcPolicy.both: ("head_address", "deputy_address"),
        CcPolicy.head_else_deputy: (),
        CcPolicy.deputy_else_head: (),
    }[policy]


# --- E2 / E4: whose address is it ------------------------------------------------------------


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def on_school_domain(address: str, domains: Collection[str]) -> bool:
    """Whether the address is one of the school's own accounts (exact domain, no subdomains)."""
    return "@" in address and domain_of(address) in {d.lower() for d in domains}


def classify_address(address: str, domains: Collection[str]) -> RecipientKind:
    """An address on the school's domains is staff; any other is an outside organisation."""
    return RecipientKind.staff if on_school_domain(address, domains) else RecipientKind.external


# --- E6: chain messages ----------------------------------------------------------------------

_COUNT = (
    r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"fifty|a hundred|several|many|lots of|all (?:of )?your|everyone|everybody|"
    r"as many|at least \w+)"
)
_CROWD = r"(?:people|persons|friends|contacts|parents|others|families|mums|dads|groups|chats)"
_IT = r"(?:this|it|the message|this message|this email|this e-mail|this letter|this post)"

# Each pattern names a shape chain messages take; ordinary requests to pass something on to one
# named person ("forward this to your child's other parent") match none of them.
CHAIN_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        rf"\b(?:forward|send|pass|share|copy|repost)\s+{_IT}\s+(?:on\s+)?(?:to|with)\s+"
        rf"{_COUNT}(?:\s+(?:other|more|of your))?(?:\s+\w+)?\s+{_CROWD}\b",
        rf"\b(?:forward|send|pass|share)\s+{_IT}\s+(?:on\s+)?(?:to|with)\s+"
        r"(?:everyone|everybody|all) (?:you know|in your (?:contacts|address book|phone))",
        r"\bchain (?:letter|mail|message|e-?mail)s?\b",
        r"\b(?:break|breaking) (?:this|the) chain\b",
        r"\bbad luck\b.{0,40}\b(?:unless|if you (?:don't|do not|fail))\b",
        r"\b(?:unless|if you (?:don't|do not)) (?:forward|pass|send|share)\b.{0,60}\bbad luck\b",
        rf"\b(?:forward|send|pass|share)\s+{_IT}\s+(?:on\s+)?within\s+\d+\s+(?:minutes|hours)\b",
    )
)


def find_chain_phrase(*texts: str) -> str | None:
    """The first chain-message phrase in the texts, as a mail client may show it; None when
    there is none. Each text is read every way it may be shown (``reading.readings``): encoded
    words and quoted-printable decoded, look-alike and invisible characters undone."""
    for text in texts:
        for shown in readings(text):
            for pattern in CHAIN_PATTERNS:
                found = pattern.search(shown)
                if found is not None:
                    return found.group(0)
    return None


# --- E8: school hours ------------------------------------------------------------------------


class NoSchoolDayAhead(Exception):
    """The calendar holds no school day within the search window (term dates run out)."""


@dataclass(frozen=True)
class SchoolCalendar:
    """When the school is at work: hours, weekdays and terms, in the school's time zone."""

    timezone: str
    day_start: dt.time
    day_end: dt.time
    morning_send: dt.time
    school_days: frozenset[int]  # ISO weekdays, 1 = Monday
    terms: tuple[tuple[dt.date, dt.date], ...] = ()  # empty: every school weekday is term

    def is_school_day(self, day: dt.date) -> bool:
        if day.isoweekday() not in self.school_days:
            return False
        return not self.terms or any(start <= day <= end for start, end in self.terms)

    def in_hours(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.timezone))
        return self.is_school_day(local.date()) and self.day_start <= local.time() < self.day_end


SEARCH_DAYS = 400


def release_time(calendar: SchoolCalendar, now: dt.datetime, *, urgent: bool) -> dt.datetime | None:
    """When mail composed at ``now`` may go out: None for at once, else the next school-day
    morning (the school's ``morning_send`` in its own time zone, summer time or not), in UTC.

    Urgent mail and mail written in school hours on a school day go at once. Before the school
    day starts, "the next school-day morning" is this morning; if that moment has passed
    already (written between the morning send and the start of the day), the mail goes at once.
    """
    if urgent or calendar.in_hours(now):
        return None
    zone = ZoneInfo(calendar.timezone)
    local = now.astimezone(zone)
    day = local.date()
    if not (calendar.is_school_day(day) and local.time() < calendar.day_start):
        day += dt.timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        if calendar.is_school_day(day):
            morning = dt.datetime.combine(day, calendar.morning_send, tzinfo=zone)
            release = morning.astimezone(dt.UTC)
            return None if release <= now else release
        day += dt.timedelta(days=1)
    raise NoSchoolDayAhead(f"no school day in the {SEARCH_DAYS} days after {local.date()}")


def terms_in_order(terms: Iterable[tuple[dt.date, dt.date]]) -> bool:
    """Each term ends on or after it starts, and starts after the one before has ended."""
    previous_end: dt.date | None = None
    for start, end in terms:
        if end < start or (previous_end is not None and start <= previous_end):
            return False
        previous_end = end
    return True


# --- E4 / E8: when an envelope may go ------------------------------------------------------


def approval_of(
    *, reaches_outside: bool, school_requires_it: bool, by_leadership: bool
) -> Approval:
    """E4: mail reaching an outside organisation waits for the head or deputy when the school
    says so, unless one of them is sending it (they are who would approve it)."""
    if not reaches_outside or not school_requires_it:
        return Approval.not_needed
    return Approval.approved if by_leadership else Approval.pending


def envelope_status(
    *, held: bool, release: dt.datetime | None, now: dt.datetime
) -> tuple[DeliveryStatus, dt.datetime]:
    """An envelope's first status and when it falls due: held for approval (E4), scheduled
    for the school-day morning (E8), or queued at once."""
    if held:
        return DeliveryStatus.pending_approval, now
    if release is not None:
        return DeliveryStatus.scheduled, release
    return DeliveryStatus.queued, now


def has_reached(status: DeliveryStatus, due_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether an envelope has gone out as far as its carer may know: approved (E4) and no
    longer held for the morning (E8)."""
    return status is not DeliveryStatus.pending_approval and due_at <= now


# --- E5: how long a secure link works ---------------------------------------------------------


@dataclass(frozen=True)
class SecureLink:
    sent_at: dt.datetime
    expires_at: dt.datetime

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires_at


def secure_link(
    *,
    created_at: dt.datetime,
    approved_at: dt.datetime | None,
    scheduled_for: dt.datetime | None,
    valid_days: int,
) -> SecureLink:
    """A sensitive message's link works for ``valid_days`` from when the message went out: the
    latest of writing, approval (E4) and the morning it was held for (E8)."""
    sent_at = max(created_at, approved_at or created_at, scheduled_for or created_at)
    return SecureLink(sent_at=sent_at, expires_at=sent_at + dt.timedelta(days=valid_days))
