"""Leadership and safeguarding pages: approving mail to outside organisations (E4), each
service's audit trail with its verification, the school's mail settings, and the DSL's list of
safeguarding restrictions (C12).

Every page is built from the services' own APIs as the signed-in person, so the API's role
rules hold: a restriction's reason is fetched only by the DSL, whom the consent API alone
answers with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hallpass_gateway.web.api import Answer, PageApi
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.mail import field_errors, not_allowed, when
from hallpass_gateway.web.pages import as_uuid, pupil_name, refused
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import Role, TokenVerifier

# The services' role groups (A1), as their documentation states them; the APIs still decide.
APPROVERS = frozenset({Role.head, Role.deputy})
AUDITORS = frozenset({Role.head, Role.dsl, Role.trust_dpo})
SETTINGS_ADMINS = frozenset({Role.head, Role.admin, Role.trust_admin})
RESTRICTION_READERS = frozenset({Role.dsl})
# The services whose trails a page reads, by their path under the gateway.
SERVICES = ("consent", "media", "comms")
# The restrictions page reads the whole roll a page at a time; a school this many pages long
# (50,000 pupils) is far past any in the UK.
ROLL_PAGES = 100
CC_POLICIES = ("both", "head", "deputy", "head_else_deputy", "deputy_else_head")
WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)
SETTINGS_TEXT_FIELDS = (
    "head_address",
    "deputy_address",
    "dsl_address",
    "office_address",
    "timezone",
    "school_day_start",
    "school_day_end",
    "morning_send_time",
)
# Each settings field the API may name in a refusal (``where``), by form field.
SETTINGS_WHERE = {
    f"body.{name}": name
    for name in (*SETTINGS_TEXT_FIELDS, "domains", "cc_policy", "school_days", "secure_view_days")
} | {"body.term_dates": "term_dates"}

SECTIONS.extend(
    [
        Section("/app/approvals", "leadership.approvals.title", APPROVERS),
        Section("/app/audit", "leadership.audit.title", AUDITORS),
        Section("/app/mail-settings", "leadership.settings.title", SETTINGS_ADMINS),
        Section("/app/restrictions", "leadership.restrictions.title", RESTRICTION_READERS),
    ]
)


def _terms_text(terms: Any) -> str:
    """Term dates as the form shows them: one term a line, ``2026-09-03 2026-12-18``."""
    if not isinstance(terms, list):
        return ""
    return "\n".join(f"{term.get('start', '')} {term.get('end', '')}" for term in terms)


def _terms_of(text: str) -> list[dict[str, str]]:
    """The form's term lines as the API's term dates; the API checks the dates themselves."""
    terms = []
    for line in text.splitlines()[:40]:
        words = line.replace(",", " ").split()
        if words:
            terms.append({"start": words[0], "end": words[-1] if len(words) > 1 else ""})
    return terms


def _settings_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form as the API's whole settings body (``PUT`` replaces them all)."""

    def text(name: str) -> str:
        return str(form.get(name, "")).strip()[:300]

    body: dict[str, Any] = {
        "domains": [d for d in text("domains").replace(",", " ").split() if d][:20],
        "cc_policy": text("cc_policy"),
        "external_needs_approval": form.get("external_needs_approval") == "yes",
        "sensitive_delivery": "secure_link",
        "term_dates": _terms_of(str(form.get("term_dates", ""))[:4000]),
    }
    for name in SETTINGS_TEXT_FIELDS:
        body[name] = text(name) or None
    days = form.getlist("school_days") if hasattr(form, "getlist") else []
    body["school_days"] = [int(d) for d in days if str(d) in {str(w) for w in WEEKDAYS}]
    secure_days = text("secure_view_days")
    body["secure_view_days"] = int(secure_days) if secure_days.isdigit() else secure_days
    return body


def leadership_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def approvals_page(
        request: Request, *, status: int = 200, error: str | None = None
    ) -> Response:
        t = Translator(language_of(request))
        async with PageApi(request.app, request) as api:
            waiting = await api.get("/comms/v1/approvals")
        if not waiting.ok:
            return refused(request, waiting)
        return render(
            request,
            "leadership/approvals.html",
            status=status,
            title=t("leadership.approvals.title"),
            messages=waiting.body,
            approved=request.query_params.get("approved") == "1",
            error=error,
            when=lambda value: when(t, value),
        )

    @router.get("/app/approvals", response_class=HTMLResponse)
    async def approvals(request: Request) -> Response:
        """E4: mail to outside organisations waiting for the head or deputy."""
        principal = await viewer(request, verifier)
        if not principal.has_any(APPROVERS):
            return not_allowed(request)
        return await approvals_page(request)

    @router.post("/app/approvals/{message_id}", response_class=HTMLResponse)
    async def approve(request: Request, message_id: str) -> Response:
        """Let one held message go; it then follows school hours (E8). Audited by comms."""
        principal = await viewer(request, verifier)
        if not principal.has_any(APPROVERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        ident = as_uuid(message_id)
        if ident is None:
            return await approvals_page(request, status=404, error=t("mail.message.unknown"))
        async with PageApi(request.app, request) as api:
            answer = await api.post(f"/comms/v1/messages/{ident}:approve")
        if not answer.ok:
            return await approvals_page(request, status=answer.status, error=answer.detail)
        return RedirectResponse("/app/approvals?approved=1", status_code=303)

    @router.get("/app/audit", response_class=HTMLResponse)
    async def audit(request: Request) -> Response:
        """One service's trail, newest first, filtered by action or target, with whether the
        chain verifies whole."""
        principal = await viewer(request, verifier)
        if not principal.has_any(AUDITORS):
            return not_allowed(request)
        t = Translator(language_of(request))
        query = request.query_params
        service = query.get("service", "comms")
        if service not in SERVICES:
            service = "comms"
        filters = {
            name: query.get(name, "").strip()[:limit]
            for name, limit in (("action", 100), ("target", 200))
        }
        params = {"limit": "100", **{name: value for name, value in filters.items() if value}}
        cursor = query.get("cursor")
        if cursor:
            params["cursor"] = cursor[:200]
        async with PageApi(request.app, request) as api:
            entries = await api.get(f"/{service}/v1/audit", params=params)
            verified = await api.get(f"/{service}/v1/audit:verify")
        if not entries.ok:
            return refused(request, entries)
        if not verified.ok:
            return refused(request, verified)
        next_params = {"service": service, **filters, "cursor": entries.body.get("next_cursor")}
        return render(
            request,
            "leadership/audit.html",
            title=t("leadership.audit.title"),
            services=SERVICES,
            service=service,
            filters=filters,
            entries=entries.body.get("items", []),
            next_params=next_params if entries.body.get("next_cursor") else None,
            report=verified.body,
            when=lambda value: when(t, value),
        )

    async def settings_page(
        request: Request,
        values: Mapping[str, Any],
        *,
        status: int = 200,
        errors: Mapping[str, str] | None = None,
        error: str | None = None,
        saved: bool = False,
        missing: bool = False,
    ) -> Response:
        t = Translator(language_of(request))
        return render(
            request,
            "leadership/settings.html",
            status=status,
            title=t("leadership.settings.title"),
            values=values,
            domains=" ".join(values.get("domains") or []),
            terms=_terms_text(values.get("term_dates")),
            cc_policies=CC_POLICIES,
            weekdays=WEEKDAYS,
            errors=errors or {},
            error=error,
            saved=saved,
            missing=missing,
            updated=when(t, values.get("updated_at")),
        )

    @router.get("/app/mail-settings", response_class=HTMLResponse)
    async def mail_settings(request: Request) -> Response:
        """The school's mail rules (head or admin): domains, who is copied (E1), school hours
        (E8), approval of outside mail (E4), how long secure links work (E5)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(SETTINGS_ADMINS):
            return not_allowed(request)
        async with PageApi(request.app, request) as api:
            current = await api.get("/comms/v1/settings")
        if current.problem_code == "mail_settings_missing" or current.status == 404:
            defaults = {
                "domains": [],
                "cc_policy": "both",
                "timezone": "Europe/London",
                "school_day_start": "08:30",
                "school_day_end": "16:00",
                "morning_send_time": "08:00",
                "school_days": [1, 2, 3, 4, 5],
                "term_dates": [],
                "external_needs_approval": True,
                "secure_view_days": 14,
            }
            return await settings_page(request, defaults, missing=True)
        if not current.ok:
            return refused(request, current)
        return await settings_page(
            request, current.body, saved=request.query_params.get("saved") == "1"
        )

    @router.post("/app/mail-settings", response_class=HTMLResponse)
    async def change_mail_settings(request: Request) -> Response:
        """Replace the settings whole with the form (audited by comms)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(SETTINGS_ADMINS):
            return not_allowed(request)
        body = _settings_from_form(await request.form())
        async with PageApi(request.app, request) as api:
            answer = await api.put("/comms/v1/settings", json=body)
        if answer.ok:
            return RedirectResponse("/app/mail-settings?saved=1", status_code=303)
        errors, error = field_errors(answer, SETTINGS_WHERE)
        return await settings_page(request, body, status=answer.status, errors=errors, error=error)

    @router.get("/app/restrictions", response_class=HTMLResponse)
    async def restrictions(request: Request) -> Response:
        """Pupils under a safeguarding restriction (C12), with its reason: the DSL's alone."""
        principal = await viewer(request, verifier)
        if not principal.has_any(RESTRICTION_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        restricted: list[dict[str, Any]] = []
        async with PageApi(request.app, request) as api:
            params = {"limit": "500"}
            for _ in range(ROLL_PAGES):
                roll = await api.get("/consent/v1/pupils", params=params)
                if not roll.ok:
                    return refused(request, roll)
                restricted.extend(p for p in roll.body.get("items", []) if p.get("restricted"))
                cursor = roll.body.get("next_cursor")
                if not cursor:
                    break
                params = {"limit": "500", "cursor": cursor}
            rows = []
            for pupil in restricted:
                answer: Answer = await api.get(f"/consent/v1/pupils/{pupil['id']}/restriction")
                if not answer.ok:
                    return refused(request, answer)
                rows.append({"pupil": pupil, "restriction": answer.body})
        return render(
            request,
            "leadership/restrictions.html",
            title=t("leadership.restrictions.title"),
            rows=rows,
            pupil_name=pupil_name,
            when=lambda value: when(t, value, with_time=False),
        )

    return router
