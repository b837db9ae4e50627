"""Provider sending limits: how many messages and recipients one mailbox may send, and when.

Microsoft 365 and Google Workspace refuse (or suspend) a mailbox that sends faster than they
allow: Exchange Online 30 messages a minute and 10,000 recipients a day per mailbox, Gmail
2,000 messages and 10,000 recipients a day per user, counted over rolling windows. Every delivery
worker and replica shares the count through the database: before an envelope is handed to the
transport, a worker locks the mailbox's ``mail_pace`` row (``FOR UPDATE`` on PostgreSQL; SQLite
serialises writers anyway), counts the mailbox's sends (``mail_send_slot``) in the last minute and
day, and either records a slot for the envelope or learns when the next slot frees. An envelope
without a slot goes back to the queue until then, untried, using up no attempt.

When the provider throttles anyway (another program sends from the same mailbox, or the
provider's limits are lower than configured), the mailbox is held until the provider's
``Retry-After`` (or a back-off) and its pace halves; the pace doubles back every
``RECOVERY`` until the mailbox runs at full speed again.

A forecast replays the same rules over the envelopes already waiting for a mailbox, so the
202 of a send can say when its last envelope is expected to leave.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hallpass_comms.models import MailPace, MailSendSlot
from hallpass_comms.settings import CommsSettings
from hallpass_kit.db import Database, utcnow

MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)
# A lowered pace doubles back this often until it is full speed again.
RECOVERY = dt.timedelta(minutes=5)
# The slowest a throttled mailbox goes: 1/64 of its pace, never nothing.
SLOWEST_PACE = 1 / 64
# A throttle without Retry-After holds the mailbox for a back-off at most this long.
LONGEST_HOLD = dt.timedelta(minutes=15)
# The whole transport (a relay's own limit) counts under this name beside the mailboxes.
TRANSPORT = "*"

Provider = Literal["microsoft", "google", "none"]


@dataclass(frozen=True)
class Limit:
    """One bucket's limits; 0 is no limit."""

    messages_per_minute: int = 0
    messages_per_day: int = 0
    recipients_per_day: int = 0
    # The "minute" messages_per_minute counts over: shorter only to measure the benchmark in
    # seconds instead of minutes.
    minute: dt.timedelta = MINUTE

    @property
    def unlimited(self) -> bool:
        return not (self.messages_per_minute or self.messages_per_day or self.recipients_per_day)


# The providers' published limits per mailbox (docs/mail-delivery.md cites each).
PROVIDER_LIMITS: dict[Provider, Limit] = {
    "microsoft": Limit(messages_per_minute=30, recipients_per_day=10_000),
    "google": Limit(messages_per_day=2_000, recipients_per_day=10_000),
    "none": Limit(),
}


def provider_of(settings: CommsSettings) -> Provider:
    """Whose limits apply: the setting, else what the transport says (the .eml folder: none)."""
    if settings.limit_provider is not None:
        return settings.limit_provider
    chosen = getattr(settings, "mail_transport", None)
    kind = str(chosen or ("smtp" if settings.smtp_host else "eml"))
    if kind == "graph":
        return "microsoft"
    if kind == "gmail":
        return "google"
    if kind == "eml":
        return "none"
    host = (settings.smtp_host or "").lower()
    if host.endswith(("office365.com", "outlook.com")):
        return "microsoft"
    if host.endswith(("gmail.com", "google.com", "googlemail.com")):
        return "google"
    return "none"


@dataclass(frozen=True)
class SendingLimits:
    """The limits of each sending mailbox and of the transport as a whole."""

    mailbox: Limit = Limit()
    transport: Limit = Limit()

    @classmethod
    def from_settings(cls, settings: CommsSettings) -> SendingLimits:
        default = PROVIDER_LIMITS[provider_of(settings)]

        def pick(value: int | None, fallback: int) -> int:
            return fallback if value is None else value

        minute = dt.timedelta(seconds=settings.limit_minute_seconds)

        return cls(
            mailbox=Limit(
                messages_per_minute=pick(
                    settings.limit_messages_per_minute, default.messages_per_minute
                ),
                messages_per_day=pick(settings.limit_messages_per_day, default.messages_per_day),
                recipients_per_day=pick(
                    settings.limit_recipients_per_day, default.recipients_per_day
                ),
                minute=minute,
            ),
            transport=Limit(
                messages_per_minute=settings.limit_transport_messages_per_minute,
                recipients_per_day=settings.limit_transport_recipients_per_day,
                minute=minute,
            ),
        )

    @property
    def active(self) -> bool:
        return not (self.mailbox.unlimited and self.transport.unlimited)

    def buckets(self, mailbox: str) -> list[tuple[str, Limit]]:
        """The rows an envelope from ``mailbox`` counts in, in locking order (``*`` first)."""
        found = [(mailbox_key(mailbox), self.mailbox)]
        if not self.transport.unlimited:
            found.insert(0, (TRANSPORT, self.transport))
        return found


def mailbox_key(address: str) -> str:
    return address.strip().lower()


@dataclass(frozen=True)
class Slot:
    """A reservation: the envelope may go now; cancelled if the provider did not take it."""

    ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class Wait:
    """No slot yet: the envelope waits until ``until`` (and so does the rest of its mailbox)."""

    until: dt.datetime
    reason: str


class TooManyRecipients(Exception):
    """One envelope has more recipients than the mailbox may send to in a whole day."""


def current_pace(pace: MailPace | None, now: dt.datetime) -> float:
    """The mailbox's pace now: halved at each throttle, doubling back every RECOVERY."""
    if pace is None or pace.paced_at is None or pace.pace >= 1:
        return 1.0
    elapsed = max((now - pace.paced_at) / RECOVERY, 0.0)
    return min(1.0, pace.pace * 2**elapsed)


def per_minute(limit: Limit, pace: MailPace | None, now: dt.datetime) -> int:
    """Messages allowed in any 60 seconds now: the limit, lowered while the pace is."""
    share = current_pace(pace, now)
    if share >= 1:
        return limit.messages_per_minute
    base = limit.messages_per_minute or (pace.base_per_minute if pace is not None else None)
    if not base:
        return limit.messages_per_minute
    return max(1, math.floor(base * share))


class Pacer:
    """Reserves send slots for envelopes and slows a mailbox down when its provider throttles."""

    def __init__(
        self,
        database: Database,
        limits: SendingLimits,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        backoff: Callable[[int], dt.timedelta] | None = None,
    ) -> None:
        self.database = database
        self.limits = limits
        self.clock = clock
        self._backoff = backoff or (lambda n: min(dt.timedelta(seconds=2**n), LONGEST_HOLD))
        # Without limits nothing is counted in the database; a throttle holds the mailbox in this
        # process only (docs/mail-delivery.md says so).
        self._holds: dict[str, dt.datetime] = {}
        self._hold_counts: dict[str, int] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------
    # Reserve and cancel

    def reserve(self, mailbox: str, recipients: int, delivery_id: uuid.UUID) -> Slot | Wait:
        if not self.limits.active:
            return self._reserve_in_process(mailbox_key(mailbox))
        buckets = self.limits.buckets(mailbox)
        with self.database.session() as session:
            now = self.clock()
            paces = {key: self._locked_pace(session, key, now) for key, _ in buckets}
            waits: list[Wait] = []
            for key, limit in buckets:
                until, reason = self._earliest(session, key, limit, paces[key], recipients, now)
                if until > now:
                    waits.append(Wait(until, reason))
            if waits:
                return max(waits, key=lambda wait: wait.until)
            ids: list[uuid.UUID] = []
            for key, _ in buckets:
                slot_id = uuid.uuid4()
                session.add(
                    MailSendSlot(
                        id=slot_id,
                        mailbox=key,
                        reserved_at=now,
                        recipients=recipients,
                        delivery_id=delivery_id,
                    )
                )
                ids.append(slot_id)
                # Sends older than the longest window count for nothing any more.
                session.execute(
                    delete(MailSendSlot).where(
                        MailSendSlot.mailbox == key, MailSendSlot.reserved_at <= now - DAY
                    )
                )
            return Slot(tuple(ids))

    def cancel(self, slot: Slot | Wait | None) -> None:
        """The provider did not take the envelope: its slot frees for the next one."""
        if not isinstance(slot, Slot) or not slot.ids:
            return
        with self.database.session() as session:
            session.execute(delete(MailSendSlot).where(MailSendSlot.id.in_(slot.ids)))

    def _reserve_in_process(self, key: str) -> Slot | Wait:
        with self._lock:
            until = self._holds.get(key)
            if until is not None and until > self.clock():
                return Wait(until, "the provider asked this mailbox to slow down")
        return Slot(())

    def _locked_pace(self, session: Session, key: str, now: dt.datetime) -> MailPace:
        """The bucket's pace row, created if new, locked until the transaction ends."""
        insert = postgresql_insert if self.database.dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(MailPace)
            .values(mailbox=key, pace=1.0, throttles=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["mailbox"])
        )
        query = select(MailPace).where(MailPace.mailbox == key).with_for_update()
        return session.scalars(query.execution_options(populate_existing=True)).one()

    def _earliest(
        self,
        session: Session,
        key: str,
        limit: Limit,
        pace: MailPace,
        recipients: int,
        now: dt.datetime,
    ) -> tuple[dt.datetime, str]:
        """The first moment an envelope of ``recipients`` fits every window of the bucket."""
        until, reason = now, ""
        if pace.held_until is not None and pace.held_until > until:
            until, reason = pace.held_until, "the provider asked this mailbox to slow down"
        allowed = per_minute(limit, pace, now)
        slots = MailSendSlot.__table__.c
        mine = slots.mailbox == key
        if allowed:
            recent = list(
                session.scalars(
                    select(slots.reserved_at)
                    .where(mine, slots.reserved_at > now - limit.minute)
                    .order_by(slots.reserved_at)
                )
            )
            if len(recent) >= allowed:
                frees = recent[len(recent) - allowed] + limit.minute
                if frees > until:
                    until, reason = frees, f"{allowed} messages a minute"
        if limit.messages_per_day:
            count = session.scalar(select(func.count()).where(mine, slots.reserved_at > now - DAY))
            if count is not None and count >= limit.messages_per_day:
                oldest = session.scalar(
                    select(slots.reserved_at)
                    .where(mine, slots.reserved_at > now - DAY)
                    .order_by(slots.reserved_at)
                    .offset(count - limit.messages_per_day)
                    .limit(1)
                )
                if oldest is not None and oldest + DAY > until:
                    until, reason = oldest + DAY, f"{limit.messages_per_day} messages a day"
        if limit.recipients_per_day:
            if recipients > limit.recipients_per_day:
                raise TooManyRecipients(
                    f"{recipients} recipients in one envelope, and the mailbox may send to "
                    f"{limit.recipients_per_day} a day"
                )
            total = session.scalar(
                select(func.coalesce(func.sum(slots.recipients), 0)).where(
                    mine, slots.reserved_at > now - DAY
                )
            )
            excess = int(total or 0) + recipients - limit.recipients_per_day
            if excess > 0:
                rows = session.execute(
                    select(slots.reserved_at, slots.recipients)
                    .where(mine, slots.reserved_at > now - DAY)
                    .order_by(slots.reserved_at)
                )
                for reserved_at, count in rows:
                    excess -= count
                    if excess <= 0:
                        if reserved_at + DAY > until:
                            until = reserved_at + DAY
                            reason = f"{limit.recipients_per_day} recipients a day"
                        break
        return until, reason

    # ----------------------------------------------------------------------------------------
    # Throttling

    def throttled(self, mailbox: str, retry_after: float | None) -> dt.datetime:
        """The provider said slow down: hold the mailbox and halve its pace; until when."""
        key = mailbox_key(mailbox)
        if not self.limits.active:
            with self._lock:
                now = self.clock()
                count = self._hold_counts.get(key, 0) + 1
                if (held := self._holds.get(key)) is None or held <= now - LONGEST_HOLD:
                    count = 1  # the last throttle was long ago: start the back-off again
                self._hold_counts[key] = count
                until = now + self._hold(retry_after, count)
                self._holds[key] = max(until, self._holds.get(key, until))
                return self._holds[key]
        with self.database.session() as session:
            now = self.clock()
            pace = self._locked_pace(session, key, now)
            share = current_pace(pace, now)
            if share >= 1:
                # Recovered since the last throttle: the back-off starts again, and with no
                # per-minute limit the lowered pace is a share of the rate seen just now.
                pace.throttles = 0
                if not self.limits.mailbox.messages_per_minute:
                    slots = MailSendSlot.__table__.c
                    seen = session.scalar(
                        select(func.count()).where(
                            slots.mailbox == key,
                            slots.reserved_at > now - self.limits.mailbox.minute,
                        )
                    )
                    pace.base_per_minute = max(int(seen or 0), 1)
            pace.pace = max(share / 2, SLOWEST_PACE)
            pace.paced_at = now
            pace.throttles += 1
            until = now + self._hold(retry_after, pace.throttles)
            if pace.held_until is None or pace.held_until < until:
                pace.held_until = until
            pace.updated_at = now
            return pace.held_until

    def _hold(self, retry_after: float | None, throttles: int) -> dt.timedelta:
        if retry_after is not None and retry_after >= 0:
            return dt.timedelta(seconds=retry_after)
        return min(self._backoff(throttles), LONGEST_HOLD)


def forecast(
    session: Session,
    limits: SendingLimits,
    mailbox: str,
    ahead: Mapping[str, Sequence[int]],
    ours: Sequence[int],
    start: dt.datetime,
    now: dt.datetime,
) -> dt.datetime | None:
    """When the last of ``ours`` (recipients per envelope) is expected to leave ``mailbox``.

    ``ahead`` holds, per bucket key, the recipients of each envelope already waiting in front of
    ours. The replay assumes the pace stays as it is now (a lowered pace that recovers only makes
    the send earlier). None when no limit applies: it leaves as fast as the provider takes it.
    """
    if not limits.active or not ours:
        return None
    first = max(start, now)
    last = first
    for key, limit in limits.buckets(mailbox):
        queue = [*ahead.get(key, ()), *ours]
        last = max(
            last, _replay(session, key, limit, session.get(MailPace, key), queue, first, now)
        )
    return last


def _replay(
    session: Session,
    key: str,
    limit: Limit,
    pace: MailPace | None,
    queue: Sequence[int],
    start: dt.datetime,
    now: dt.datetime,
) -> dt.datetime:
    """Send ``queue`` (recipients per envelope) in order under the bucket's windows, starting
    from its real sends of the last day; the moment the last one goes."""
    slots = MailSendSlot.__table__.c
    past = session.execute(
        select(slots.reserved_at, slots.recipients)
        .where(slots.mailbox == key, slots.reserved_at > now - DAY)
        .order_by(slots.reserved_at)
    ).all()
    times = [row[0] for row in past]
    counts = [int(row[1]) for row in past]
    t = start
    if pace is not None and pace.held_until is not None:
        t = max(t, pace.held_until)
    allowed = per_minute(limit, pace, now)
    daily, recipients_daily = limit.messages_per_day, limit.recipients_per_day
    first = 0  # the oldest send still inside the 24-hour window at t
    window = sum(counts)
    for n in queue:
        if allowed and len(times) >= allowed:
            t = max(t, times[-allowed] + limit.minute)
        if daily and len(times) >= daily:
            t = max(t, times[-daily] + DAY)
        while first < len(times) and times[first] <= t - DAY:
            window -= counts[first]
            first += 1
        if recipients_daily:
            while window + n > recipients_daily and first < len(times):
                t = max(t, times[first] + DAY)
                window -= counts[first]
                first += 1
        times.append(t)
        counts.append(n)
        window += n
    return t


__all__ = [
    "DAY",
    "MINUTE",
    "PROVIDER_LIMITS",
    "TRANSPORT",
    "Limit",
    "Pacer",
    "SendingLimits",
    "Slot",
    "TooManyRecipients",
    "Wait",
    "current_pace",
    "forecast",
    "mailbox_key",
    "per_minute",
    "provider_of",
]
