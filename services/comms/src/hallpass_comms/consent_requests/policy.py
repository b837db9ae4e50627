"""The words of a consent request email, without I/O."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from hallpass_comms.consent_client import RequestCarerLink, RoundLinks

# Where a carer answers: the gateway's parents' page for a personal link.
LINK_PATH = "/parents/requests/{token}"


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
