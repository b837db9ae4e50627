"""A school's mail settings: domains, leadership addresses, CC policy, hours and terms."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from hallpass_comms.common import record_audit
from hallpass_comms.mail_settings import repository
from hallpass_comms.mail_settings.schemas import MailSettingsBody, MailSettingsView, TermDates
from hallpass_comms.messages.policy import (
    SchoolCalendar,
    addresses_cc_policy_needs,
    on_school_domain,
    terms_in_order,
)
from hallpass_comms.models import MailSettings
from hallpass_kit.auth import Principal
from hallpass_kit.errors import Conflict, NotFound, ProblemDetail, Unprocessable

ADDRESS_FIELDS = ("head_address", "deputy_address", "dsl_address", "office_address")


def require_settings(session: Session, school_id: str) -> MailSettings:
    """The school's settings; nothing is sent before the head has made them (409)."""
    settings = repository.get(session, school_id)
    if settings is None:
        raise Conflict(
            "This school's mail settings are not made yet; the head or an admin sets them with "
            "PUT /v1/settings before any message can be sent.",
            code="mail_settings_missing",
        )
    return settings


def calendar_of(settings: MailSettings) -> SchoolCalendar:
    return SchoolCalendar(
        timezone=settings.timezone,
        day_start=settings.school_day_start,
        day_end=settings.school_day_end,
        morning_send=settings.morning_send_time,
        school_days=frozenset(int(d) for d in settings.school_days),
        terms=tuple(
            (dt.date.fromisoformat(t["start"]), dt.date.fromisoformat(t["end"]))
            for t in settings.term_dates
        ),
    )


def _view(settings: MailSettings) -> MailSettingsView:
    return MailSettingsView(
        domains=list(settings.domains),
        head_address=settings.head_address,
        deputy_address=settings.deputy_address,
        dsl_address=settings.dsl_address or "",
        office_address=settings.office_address or "",
        cc_policy=settings.cc_policy,
        timezone=settings.timezone,
        school_day_start=settings.school_day_start.strftime("%H:%M"),
        school_day_end=settings.school_day_end.strftime("%H:%M"),
        morning_send_time=settings.morning_send_time.strftime("%H:%M"),
        school_days=list(settings.school_days),
        term_dates=[TermDates.model_validate(t) for t in settings.term_dates],
        external_needs_approval=settings.external_needs_approval,
        sensitive_delivery=settings.sensitive_delivery,
        secure_view_days=settings.secure_view_days,
        updated_at=settings.updated_at,
        updated_by=settings.updated_by,
    )


def read(session: Session, principal: Principal) -> MailSettingsView:
    settings = repository.get(session, principal.school)
    if settings is None:
        raise NotFound(
            "This school's mail settings are not made yet.", code="mail_settings_missing"
        )
    return _view(settings)


def _problems(body: MailSettingsBody) -> list[ProblemDetail]:
    problems: list[ProblemDetail] = []
    for field in ADDRESS_FIELDS:
        address = getattr(body, field)
        if address is not None and not on_school_domain(address, body.domains):
            problems.append(
                ProblemDetail(
                    code="address_off_domain",
                    detail=f"{address} is not on the school's domains ({', '.join(body.domains)}).",
                    where=f"body.{field}",
                    rule="E2",
                )
            )
    for field in addresses_cc_policy_needs(body.cc_policy):
        if getattr(body, field) is None:
            problems.append(
                ProblemDetail(
                    code="cc_address_missing",
                    detail=f"The CC policy {body.cc_policy.value} needs {field}.",
                    where=f"body.{field}",
                    rule="E1",
                )
            )
    if body.head_address is None and body.deputy_address is None:
        problems.append(
            ProblemDetail(
                code="cc_address_missing",
                detail="Every staff email copies the head or the deputy: give at least one.",
                where="body.head_address",
                rule="E1",
            )
        )
    if body.timezone not in available_timezones():
        problems.append(
            ProblemDetail(
                code="unknown_timezone",
                detail=f"{body.timezone} is not an IANA time zone (e.g. Europe/London).",
                where="body.timezone",
            )
        )
    # Zero-padded HH:MM strings sort in time order.
    if not body.school_day_start < body.school_day_end:
        problems.append(
            ProblemDetail(
                code="invalid_school_hours",
                detail="The school day must start before it ends.",
                where="body.school_day_end",
                rule="E8",
            )
        )
    if not body.morning_send_time < body.school_day_end:
        problems.append(
            ProblemDetail(
                code="invalid_school_hours",
                detail="Held mail must go out before the school day ends.",
                where="body.morning_send_time",
                rule="E8",
            )
        )
    if len(set(body.school_days)) != len(body.school_days):
        problems.append(
            ProblemDetail(
                code="duplicate_school_day",
                detail="Each weekday is listed once.",
                where="body.school_days",
            )
        )
    if not terms_in_order((t.start, t.end) for t in body.term_dates):
        problems.append(
            ProblemDetail(
                code="term_dates_out_of_order",
                detail="Each term ends on or after its start, and terms are listed in order "
                "without overlapping.",
                where="body.term_dates",
                rule="E8",
            )
        )
    if len(set(body.domains)) != len(body.domains):
        problems.append(
            ProblemDetail(
                code="duplicate_domain", detail="Each domain is listed once.", where="body.domains"
            )
        )
    return problems


def replace(
    session: Session, principal: Principal, body: MailSettingsBody, now: dt.datetime
) -> MailSettingsView:
    """Set the school's mail settings whole; refused as a whole when any part is wrong."""
    problems = _problems(body)
    if problems:
        raise Unprocessable(
            "These mail settings cannot be used; nothing was changed.",
            code=problems[0].code,
            rule=problems[0].rule,
            problems=problems,
        )
    try:
        ZoneInfo(body.timezone)
    except ZoneInfoNotFoundError as exc:  # listed but without data: refused the same way
        raise Unprocessable(f"{body.timezone} cannot be loaded.", code="unknown_timezone") from exc
    settings = repository.get(session, principal.school)
    created = settings is None
    if settings is None:
        settings = MailSettings(school_id=principal.school)
        repository.add(session, settings)
    settings.domains = list(body.domains)
    settings.head_address = body.head_address
    settings.deputy_address = body.deputy_address
    settings.dsl_address = body.dsl_address
    settings.office_address = body.office_address
    settings.cc_policy = body.cc_policy
    settings.timezone = body.timezone
    settings.school_day_start = dt.time.fromisoformat(body.school_day_start)
    settings.school_day_end = dt.time.fromisoformat(body.school_day_end)
    settings.morning_send_time = dt.time.fromisoformat(body.morning_send_time)
    settings.school_days = list(body.school_days)
    settings.term_dates = [
        {"start": t.start.isoformat(), "end": t.end.isoformat()} for t in body.term_dates
    ]
    settings.external_needs_approval = body.external_needs_approval
    settings.sensitive_delivery = body.sensitive_delivery
    settings.secure_view_days = body.secure_view_days
    settings.updated_at = now
    settings.updated_by = principal.actor
    session.flush()
    record_audit(
        session,
        principal,
        "settings.created" if created else "settings.changed",
        target="mail_settings",
        details=body.model_dump(mode="json"),
    )
    return _view(settings)
