"""What every part of the console does the same way: read an id from a path, name a pupil,
write a date, show the API's refusal."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hallpass_gateway.web.api import Answer
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.render import render


def as_uuid(value: object) -> str | None:
    """``value`` as a canonical UUID string, or None when it is not one."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def pupil_name(pupil: Mapping[str, Any]) -> str:
    """The name the school calls the pupil by: the preferred name when there is one."""
    given = pupil.get("preferred_name") or pupil.get("given_name") or ""
    return f"{given} {pupil.get('family_name', '')}".strip()


def day_words(t: Translator, day: dt.date) -> str:
    """A day as a person reads it: ``5 July 2027`` / ``5 Gorffennaf 2027``."""
    return t("site.date", day=day.day, month=t(f"site.month.{day.month}"), year=day.year)


def long_date(t: Translator, value: object) -> str:
    """An API date-time's day in words; text that is no date is shown as it came."""
    if not isinstance(value, str):
        return ""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return day_words(t, when)


def trouble(request: Request, status: int, detail: str) -> Response:
    """The API said no or could not answer: its own words, with its status."""
    t = Translator(language_of(request))
    return render(
        request,
        "message.html",
        status=status if status >= 400 else 502,
        title=t("site.error_title"),
        message=detail or t("site.try_again"),
    )


def refused(request: Request, answer: Answer) -> Response:
    """``trouble`` for an API answer that is not a success."""
    return trouble(request, answer.status, answer.detail)
