"""The words of a consent request email, without I/O."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Collection, Iterable
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from hallpass_comms.consent_client import RequestCarerLink, RoundLinks
from hallpass_comms.models import MessageKind

# Where a carer answers: the gateway's parents' page for a personal link.
LINK_PATH = "/parents/requests/{token}"
# What leadership's copy and every reader of the stored message see instead of a carer's link:
# the link answers as that carer, so only the carer's own inbox ever holds it.
LINK_SHOWN_TO_OTHERS = "[this carer's personal link]"
_LINK = re.compile(r"\S*" + re.escape("/parents/requests/") + r"[A-Za-z0-9_\-]+")
# The mail row that stands for leadership's one copy of a round (E1): not a carer's id.
LEADERSHIP_COPY = uuid.uuid5(uuid.NAMESPACE_URL, "hallpass:consent-request:leadership-copy")


class MailDueNotice(BaseModel):
    """The consent service's ``consent_request.mail_due``, as comms reads it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: uuid.UUID
    school_id: str = Field(min_length=1, max_length=64)
    round: int = Field(ge=1)


def personal_link(public_base_url: str, token: str) -> str:
    return public_base_url.rstrip("/") + LINK_PATH.format(token=token)


def due_carers(links: RoundLinks, already_mailed: Collection[uuid.UUID]) -> list[RequestCarerLink]:
    """Carers of this round not written to yet: a redelivered event mails nobody twice."""
    return [c for c in links.carers if c.guardian_id not in already_mailed and c.children]


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    if len(listed) <= 1:
        return "".join(listed)
    return ", ".join(listed[:-1]) + " and " + listed[-1]


def subject(links: RoundLinks) -> str:
    # The title is one line already (consent refuses control characters in it).
    prefix = "Reminder: " if links.round > 1 else ""
    return f"{prefix}{links.title}"


def body_text(links: RoundLinks, carer: RequestCarerLink, link: str, timezone: str) -> str:
    """The email: the school's request in its own words, who and what it is about, the link."""
    children = _names(c.given_name for c in carer.children)
    lines = [
        "Dear parent or carer,",
        "",
        f"{links.school_name} asks for your answer: {links.title}.",
    ]
    if links.note:
        lines += ["", links.note]
    lines += ["", f"It is about {children}, and these uses:", ""]
    lines += [f"- {title}" for title in carer.purposes]
    lines += [
        "",
        "Please answer yes or no for each on this page, made for you alone (no sign-in needed):",
        "",
        link,
        "",
        "Please do not forward this email: the link records your answers as yours.",
    ]
    if links.closes_at is not None:
        lines += ["", f"The school collects answers until {_day(links.closes_at, timezone)}."]
    lines += ["", "With thanks,", links.school_name]
    return "\n".join(lines)


def _day(at: dt.datetime, timezone: str) -> str:
    local = at.astimezone(ZoneInfo(timezone))
    return f"{local.day} {local:%B %Y}"


def words_for_readers(kind: MessageKind, text: str) -> str:
    """A stored message's words as the API shows them: a consent request's personal link is
    taken out, since whoever holds it can answer as that carer (staff record answers in their
    own name)."""
    return without_link(text) if kind is MessageKind.consent_request else text


def without_link(text: str) -> str:
    """The words of a consent request email with every personal link taken out."""
    return _LINK.sub(LINK_SHOWN_TO_OTHERS, text)


def leadership_text(links: RoundLinks, carers: int, example: str) -> str:
    """Leadership's one copy of a round (E1): how many carers were written to, and the words one of
    them received, with the link taken out so the copy cannot answer for anyone."""
    what = "A reminder" if links.round > 1 else "A consent request"
    return "\n".join(
        [
            f"{what} went to {carers} parents and carers today: {links.title}.",
            "",
            "Each received the words below, with their own link and their own children's names.",
            "",
            "----",
            "",
            without_link(example),
        ]
    )
