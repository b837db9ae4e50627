"""Leadership and safeguarding pages: approving mail to outside organisations (E4), each
service's audit trail with its verification, the school's mail settings, the DSL's safeguarding
restrictions (C12: set, change, lift) and the reports of offensive messages (E10).

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
# comms' readers of reports of offensive messages (E10): the DSL, told of each, and the head.
REPORT_READERS = frozenset({Role.dsl, Role.head})
RESTRICTION_KINDS = ("court_order", "looked_after", "adopted", "not_locatable", "other")
# A name search lists at most this many pupils; a fuller name finds the rest.
MAX_FOUND = 50
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
        Section("/app/reports", "leadership.reports.title", REPORT_READERS),
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


def _named(pupil: Mapping[str, Any], query: str) -> bool:
    """A pupil whose names hold every word asked for."""
    said = " ".join(
        str(pupil.get(name) or "") for name in ("given_name", "preferred_name", "family_name")
    ).casefold()
    return all(word in said for word in query.casefold().split())


async def _whole_roll(api: PageApi) -> list[dict[str, Any]] | Answer:
    """Every pupil on the roll, a page at a time (or the API's refusal)."""
    pupils: list[dict[str, Any]] = []
    params = {"limit": "500"}
    for _ in range(ROLL_PAGES):
        roll = await api.get("/consent/v1/pupils", params=params)
        if not roll.ok:
            return roll
        pupils.extend(roll.body.get("items", []))
        cursor = roll.body.get("next_cursor")
        if not cursor:
            break
        params = {"limit": "500", "cursor": cursor}
    return pupils


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

    async def allowed_and_found(
        request: Request, roles: frozenset[Role], raw_id: str, unknown: str
    ) -> tuple[Translator, str] | Response:
        """The page's words and the id in its path, or the page that turns the person away: not
        one of ``roles``, or an id that is no id at all (404 in the words of ``unknown``)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(roles):
            return not_allowed(request)
        t = Translator(language_of(request))
        ident = as_uuid(raw_id)
        if ident is None:
            return refused(request, Answer(404, {"detail": t(unknown)}))
        return t, ident

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
        """Pupils under a safeguarding restriction (C12), with its reason: the DSL's alone; and
        a search for the pupil to restrict."""
        principal = await viewer(request, verifier)
        if not principal.has_any(RESTRICTION_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        query = request.query_params.get("q", "").strip()[:100]
        async with PageApi(request.app, request) as api:
            roll = await _whole_roll(api)
            if isinstance(roll, Answer):
                return refused(request, roll)
            rows = []
            for pupil in (p for p in roll if p.get("restricted")):
                answer = await api.get(f"/consent/v1/pupils/{pupil['id']}/restriction")
                if not answer.ok:
                    return refused(request, answer)
                rows.append({"pupil": pupil, "restriction": answer.body})
        found = [p for p in roll if _named(p, query)] if query else []
        found.sort(key=lambda p: (str(p.get("family_name", "")).casefold(), pupil_name(p)))
        return render(
            request,
            "leadership/restrictions.html",
            title=t("leadership.restrictions.title"),
            rows=rows,
            query=query,
            found=found[:MAX_FOUND],
            more=max(0, len(found) - MAX_FOUND),
            lifted=request.query_params.get("lifted") == "1",
            pupil_name=pupil_name,
            when=lambda value: when(t, value, with_time=False),
        )

    async def restriction_page(
        request: Request,
        pupil_id: str,
        *,
        status: int = 200,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        error: str | None = None,
        confirm_lift: bool = False,
    ) -> Response:
        t = Translator(language_of(request))
        async with PageApi(request.app, request) as api:
            pupil = await api.get(f"/consent/v1/pupils/{pupil_id}")
            if not pupil.ok:
                return refused(request, pupil)
            current: dict[str, Any] | None = None
            if pupil.body.get("restricted"):
                answer = await api.get(f"/consent/v1/pupils/{pupil_id}/restriction")
                if not answer.ok:
                    return refused(request, answer)
                current = answer.body
        shown = dict(values or {})
        if not shown and current is not None:
            shown = {"kind": current["kind"], "reason": current["reason"]}
        return render(
            request,
            "leadership/restriction.html",
            status=status,
            # The pupil's name alone: a reason never goes in a title, a link or a message.
            title=pupil_name(pupil.body),
            pupil=pupil.body,
            current=current,
            values=shown,
            kinds=RESTRICTION_KINDS,
            errors=errors or {},
            error=error,
            saved=request.query_params.get("saved") == "1",
            confirm_lift=confirm_lift,
            when=lambda value: when(t, value, with_time=False),
        )

    @router.get("/app/restrictions/{pupil_id}", response_class=HTMLResponse)
    async def restriction(request: Request, pupil_id: str) -> Response:
        """One pupil's restriction: set it, change it or lift it (DSL only)."""
        found = await allowed_and_found(
            request, RESTRICTION_READERS, pupil_id, "leadership.restriction.unknown"
        )
        if isinstance(found, Response):
            return found
        _t, ident = found
        return await restriction_page(request, ident)

    @router.post("/app/restrictions/{pupil_id}", response_class=HTMLResponse)
    async def set_restriction(request: Request, pupil_id: str) -> Response:
        """Set or change the restriction (C12); the consent API audits it and tells media."""
        found = await allowed_and_found(
            request, RESTRICTION_READERS, pupil_id, "leadership.restriction.unknown"
        )
        if isinstance(found, Response):
            return found
        t, ident = found
        form = await request.form()
        values = {
            "kind": str(form.get("kind", ""))[:40],
            "reason": str(form.get("reason", ""))[:2000],
        }
        if values["kind"] not in RESTRICTION_KINDS:
            return await restriction_page(
                request,
                ident,
                status=422,
                values=values,
                errors={"kind": t("leadership.restriction.choose_kind")},
            )
        async with PageApi(request.app, request) as api:
            answer = await api.put(f"/consent/v1/pupils/{ident}/restriction", json=values)
        if not answer.ok:
            errors, error = field_errors(answer, {"body.kind": "kind", "body.reason": "reason"})
            return await restriction_page(
                request, ident, status=answer.status, values=values, errors=errors, error=error
            )
        return RedirectResponse(f"/app/restrictions/{ident}?saved=1", status_code=303)

    @router.get("/app/restrictions/{pupil_id}/lift", response_class=HTMLResponse)
    async def confirm_lift(request: Request, pupil_id: str) -> Response:
        """Ask before lifting: consents apply again from the moment it is lifted."""
        found = await allowed_and_found(
            request, RESTRICTION_READERS, pupil_id, "leadership.restriction.unknown"
        )
        if isinstance(found, Response):
            return found
        _t, ident = found
        return await restriction_page(request, ident, confirm_lift=True)

    @router.post("/app/restrictions/{pupil_id}/lift", response_class=HTMLResponse)
    async def lift(request: Request, pupil_id: str) -> Response:
        """Lift the restriction, as confirmed (audited by the consent API)."""
        found = await allowed_and_found(
            request, RESTRICTION_READERS, pupil_id, "leadership.restriction.unknown"
        )
        if isinstance(found, Response):
            return found
        _t, ident = found
        async with PageApi(request.app, request) as api:
            answer = await api.delete(f"/consent/v1/pupils/{ident}/restriction")
        if not answer.ok:
            return refused(request, answer)
        return RedirectResponse("/app/restrictions?lifted=1", status_code=303)

    @router.get("/app/reports", response_class=HTMLResponse)
    async def reports(request: Request) -> Response:
        """Reports of offensive messages (E10), newest first (the DSL and the head; audited)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(REPORT_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        params = {"limit": "50"}
        cursor = request.query_params.get("cursor")
        if cursor:
            params["cursor"] = cursor[:200]
        async with PageApi(request.app, request) as api:
            listed = await api.get("/comms/v1/reports", params=params)
        if not listed.ok:
            return refused(request, listed)
        return render(
            request,
            "leadership/reports.html",
            title=t("leadership.reports.title"),
            reports=listed.body.get("items", []),
            next_cursor=listed.body.get("next_cursor"),
            when=lambda value: when(t, value),
        )

    @router.get("/app/reports/{report_id}", response_class=HTMLResponse)
    async def report(request: Request, report_id: str) -> Response:
        """One report: who reported what, and the notice the DSL was sent at once."""
        found = await allowed_and_found(
            request, REPORT_READERS, report_id, "leadership.reports.unknown"
        )
        if isinstance(found, Response):
            return found
        t, ident = found
        async with PageApi(request.app, request) as api:
            answer = await api.get(f"/comms/v1/reports/{ident}")
        if not answer.ok:
            return refused(request, answer)
        return _report_page(request, t, answer.body)

    def _report_page(
        request: Request,
        t: Translator,
        report: Mapping[str, Any],
        *,
        status: int = 200,
        error: str = "",
        resolution: str = "",
    ) -> Response:
        return render(
            request,
            "leadership/report.html",
            status=status,
            title=t("leadership.reports.one", reference=report["reference"]),
            report=report,
            received=when(t, report.get("created_at")),
            resolved=when(t, report.get("resolved_at")) if report.get("resolved_at") else "",
            error=error,
            resolution=resolution,
        )

    @router.post("/app/reports/{report_id}", response_class=HTMLResponse)
    async def resolve_report(request: Request, report_id: str) -> Response:
        """Mark a report handled, saying what was done (E10); the API refuses a second answer."""
        found = await allowed_and_found(
            request, REPORT_READERS, report_id, "leadership.reports.unknown"
        )
        if isinstance(found, Response):
            return found
        t, ident = found
        form = await request.form()
        resolution = str(form.get("resolution", ""))[:6000]
        async with PageApi(request.app, request) as api:
            answer = await api.post(
                f"/comms/v1/reports/{ident}:resolve", json={"resolution": resolution}
            )
            if answer.ok:
                return RedirectResponse(f"/app/reports/{ident}?resolved=1", status_code=303)
            if answer.status != 422:
                return refused(request, answer)
            current = await api.get(f"/comms/v1/reports/{ident}")
        if not current.ok:
            return refused(request, current)
        return _report_page(
            request,
            t,
            current.body,
            status=422,
            error=t("leadership.reports.resolution_needed"),
            resolution=resolution,
        )

    return router
