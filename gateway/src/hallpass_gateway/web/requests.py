"""Consent requests: the office asks carers for chosen purposes by email (``/app/requests``), and
each carer answers on the page their personal link opens (``/parents/requests/<token>``).

Both sides are built on the consent API's own answers. The carer's page needs no sign-in: the
link is the credential (the API's link endpoints are public and learn everything from the token),
so the page deliberately never asks who is looking.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hallpass_gateway.web.api import Answer, PageApi
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.pages import as_uuid, long_date, trouble
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import Role, TokenVerifier

# The consent API's registrars: who may ask carers and follow the answers (A1).
REQUEST_ROLES = frozenset({Role.office, Role.admin, Role.head, Role.deputy})
# What a link token looks like (the API issues 43 url-safe characters); anything else is no link.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# A closing date is a school day's end where the school is; Hallpass schools are in the UK.
_SCHOOL_ZONE = ZoneInfo("Europe/London")
YEAR_GROUPS = list(range(-1, 15))
_EMPTY_FORM: Mapping[str, Any] = {
    "title": "",
    "note": "",
    "closes_on": "",
    "purposes": [],
    "class_ids": [],
    "year_groups": [],
    "whole_school": False,
}

SECTIONS.append(Section("/app/requests", "requests.title", REQUEST_ROLES))


def _not_allowed(request: Request) -> Response:
    t = Translator(language_of(request))
    return render(
        request,
        "message.html",
        status=403,
        title=t("site.error_title"),
        message=t("site.not_allowed"),
    )


def _percent(answered: int, total: int) -> int:
    return round(100 * answered / total) if total else 0


def _closing_instant(day: str) -> str | None:
    """The end of the chosen day in the school's time, as the API's date-time; None if no date."""
    try:
        chosen = dt.date.fromisoformat(day)
    except ValueError:
        return None
    end = dt.datetime.combine(chosen, dt.time(23, 59, 59), tzinfo=_SCHOOL_ZONE)
    return end.isoformat()


def _year_label(t: Translator, year: int) -> str:
    if year == -1:
        return t("office.nursery")
    if year == 0:
        return t("office.reception")
    return t("office.year", year=year)


def _no_referrer(response: Response) -> Response:
    # The page's address holds the carer's link: it must never travel to another site.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def requests_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def allowed(request: Request) -> bool:
        return (await viewer(request, verifier)).has_any(REQUEST_ROLES)

    # --- the office's side --------------------------------------------------------------------

    @router.get("/app/requests", response_class=HTMLResponse)
    async def list_requests(request: Request) -> Response:
        """Every request, newest first, with how many pupils have answered."""
        if not await allowed(request):
            return _not_allowed(request)
        t = Translator(language_of(request))
        cursor = request.query_params.get("cursor", "")[:500]
        async with PageApi(request.app, request) as api:
            listed = await api.get(
                "/consent/v1/consent-requests", params={"cursor": cursor} if cursor else None
            )
        if not listed.ok:
            return trouble(request, listed.status, listed.detail)
        items = [
            {
                **r,
                "percent": _percent(r["answered"], r["total"]),
                "created": long_date(t, r["created_at"]),
            }
            for r in listed.body["items"]
        ]
        return render(
            request,
            "requests/list.html",
            title=t("requests.title"),
            items=items,
            next_cursor=listed.body.get("next_cursor"),
        )

    async def _form_page(
        request: Request,
        *,
        status: int = 200,
        values: Mapping[str, Any] | None = None,
        errors: Mapping[str, str] | None = None,
        error: str = "",
    ) -> Response:
        t = Translator(language_of(request))
        async with PageApi(request.app, request) as api:
            purposes = await api.get("/consent/v1/purposes")
            classes = await api.get("/consent/v1/classes")
        for answer in (purposes, classes):
            if not answer.ok:
                return trouble(request, answer.status, answer.detail)
        years = sorted({c["year_group"] for c in classes.body})
        return render(
            request,
            "requests/new.html",
            status=status,
            title=t("requests.new.title"),
            purposes=[p for p in purposes.body if p["requires_consent"]],
            classes=classes.body,
            years=[(y, _year_label(t, y)) for y in years],
            values=values or _EMPTY_FORM,
            errors=errors or {},
            error=error,
            key=str(uuid.uuid4()),
        )

    @router.get("/app/requests/new", response_class=HTMLResponse)
    async def new_request(request: Request) -> Response:
        """The form: title, note, purposes, who is asked, closing date."""
        if not await allowed(request):
            return _not_allowed(request)
        return await _form_page(request)

    @router.post("/app/requests", response_class=HTMLResponse)
    async def create_request(request: Request) -> Response:
        """Ask the carers; the emails go out after the request is stored."""
        if not await allowed(request):
            return _not_allowed(request)
        t = Translator(language_of(request))
        form = await request.form()
        values: dict[str, Any] = {
            "title": str(form.get("title", ""))[:300],
            "note": str(form.get("note", ""))[:5000],
            "closes_on": str(form.get("closes_on", ""))[:20],
            "purposes": [str(v)[:64] for v in form.getlist("purposes")][:20],
            "class_ids": [c for v in form.getlist("class_ids") if (c := as_uuid(v))][:200],
            "year_groups": [
                int(str(v)) for v in form.getlist("year_groups") if str(v).lstrip("-").isdigit()
            ][:20],
            "whole_school": form.get("whole_school") == "yes",
        }
        errors: dict[str, str] = {}
        if not values["purposes"]:
            errors["purposes"] = t("requests.new.choose_purpose")
        if not (values["class_ids"] or values["year_groups"] or values["whole_school"]):
            errors["scope"] = t("requests.new.choose_scope")
        closes_at = _closing_instant(values["closes_on"]) if values["closes_on"] else None
        if values["closes_on"] and closes_at is None:
            errors["closes_on"] = t("requests.new.bad_date")
        if errors:
            return await _form_page(request, status=422, values=values, errors=errors)
        body = {
            "title": values["title"],
            "note": values["note"] or None,
            "purposes": values["purposes"],
            "scope": {
                "class_ids": values["class_ids"],
                "year_groups": [y for y in values["year_groups"] if y in YEAR_GROUPS],
                "whole_school": values["whole_school"],
            },
            "closes_at": closes_at,
        }
        key = str(form.get("key", ""))[:100]
        async with PageApi(request.app, request) as api:
            created = await api.post(
                "/consent/v1/consent-requests",
                json=body,
                headers={"Idempotency-Key": key} if key else None,
            )
        if created.ok:
            return RedirectResponse(
                f"/app/requests/{created.body['id']}?done=created", status_code=303
            )
        return await _form_page(
            request,
            status=created.status,
            values=values,
            errors=_placed(created),
            error=created.detail,
        )

    @router.get("/app/requests/{request_id}", response_class=HTMLResponse)
    async def show_request(request: Request, request_id: str) -> Response:
        """Progress per class, who has not answered yet (printable for chasing), remind, close."""
        if not await allowed(request):
            return _not_allowed(request)
        t = Translator(language_of(request))
        known = as_uuid(request_id)
        if known is None:
            return trouble(request, 404, t("requests.not_found"))
        async with PageApi(request.app, request) as api:
            found = await api.get(f"/consent/v1/consent-requests/{known}")
            purposes = await api.get("/consent/v1/purposes")
        if not found.ok:
            return trouble(request, found.status, found.detail)
        titles = {p["code"]: p["title"] for p in purposes.body} if purposes.ok else {}
        view = found.body
        done = request.query_params.get("done", "")
        return render(
            request,
            "requests/show.html",
            title=view["title"],
            view=view,
            percent=_percent(view["answered"], view["total"]),
            classes=[
                {**c, "percent": _percent(c["answered"], c["total"])} for c in view["classes"]
            ],
            purposes=[titles.get(code, code) for code in view["purposes"]],
            created=long_date(t, view["created_at"]),
            closes=long_date(t, view["closes_at"]) if view["closes_at"] else "",
            notice=t(f"requests.done.{done}") if done in ("created", "reminded", "closed") else "",
        )

    async def _act(request: Request, request_id: str, action: str, done: str) -> Response:
        if not await allowed(request):
            return _not_allowed(request)
        t = Translator(language_of(request))
        known = as_uuid(request_id)
        if known is None:
            return trouble(request, 404, t("requests.not_found"))
        form = await request.form()
        key = str(form.get("key", ""))[:100]
        async with PageApi(request.app, request) as api:
            acted = await api.post(
                f"/consent/v1/consent-requests/{known}:{action}",
                headers={"Idempotency-Key": key} if key else None,
            )
        if not acted.ok:
            return trouble(request, acted.status, acted.detail)
        return RedirectResponse(f"/app/requests/{known}?done={done}", status_code=303)

    @router.post("/app/requests/{request_id}/remind", response_class=HTMLResponse)
    async def remind(request: Request, request_id: str) -> Response:
        """Email the carers of pupils who have not answered yet, with a fresh link."""
        return await _act(request, request_id, "remind", "reminded")

    @router.post("/app/requests/{request_id}/close", response_class=HTMLResponse)
    async def close(request: Request, request_id: str) -> Response:
        """Stop collecting answers: the links stop working."""
        return await _act(request, request_id, "close", "closed")

    # --- the carer's side ---------------------------------------------------------------------
    #
    # CSRF: these pages act on no cookie. Without a session nothing but the link authenticates
    # the answer, and the link's token sits in the form's own address: another site cannot post
    # an answer without knowing the token, so it does the work of a per-form CSRF token. When the
    # carer happens to be signed in, the session middleware checks the session's CSRF token as
    # for any page, and the form carries it.

    async def _opened(request: Request, token: str) -> Answer:
        async with PageApi(request.app, request) as api:
            return await api.post("/consent/v1/consent-requests:open-link", json={"token": token})

    def _link_trouble(request: Request, answer: Answer) -> Response:
        t = Translator(language_of(request))
        title = (
            t("requests.link.closed_title")
            if answer.status == 410
            else t("requests.link.problem_title")
        )
        response = render(
            request,
            "requests/link_problem.html",
            status=answer.status if answer.status >= 400 else 502,
            title=title,
            message=answer.detail or t("site.try_again"),
        )
        return _no_referrer(response)

    def _questions(request: Request, opened: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Each child's purposes with the words in the page's language where the school gave
        them, and which language that is (what the record will say was shown)."""
        welsh = language_of(request) == "cy"
        children = []
        for child in opened["children"]:
            purposes = []
            for q in child["purposes"]:
                in_welsh = welsh and q["wording_cy"] is not None
                purposes.append(
                    {
                        **q,
                        "shown": q["wording_cy"] if in_welsh else q["wording"],
                        "shown_language": "cy" if in_welsh else "en",
                        "no_welsh": welsh and not in_welsh,
                    }
                )
            children.append({**child, "purposes": purposes})
        return children

    async def _link_page(
        request: Request,
        token: str,
        *,
        status: int = 200,
        chosen: Mapping[str, str] | None = None,
        error: str = "",
    ) -> Response:
        t = Translator(language_of(request))
        opened = await _opened(request, token)
        if not opened.ok:
            return _link_trouble(request, opened)
        body = opened.body
        return _no_referrer(
            render(
                request,
                "requests/answer.html",
                status=status,
                title=body["title"],
                request_view=body,
                children=_questions(request, body),
                token=token,
                chosen=chosen or {},
                error=error,
                closes=long_date(t, body["closes_at"]) if body["closes_at"] else "",
            )
        )

    @router.get("/parents/requests/{token}", response_class=HTMLResponse)
    async def answer_page(request: Request, token: str) -> Response:
        """The carer's form: for each child, each purpose's words and yes or no."""
        if not _TOKEN.match(token):
            return _link_trouble(request, _unknown_link(request))
        return await _link_page(request, token)

    @router.post("/parents/requests/{token}", response_class=HTMLResponse)
    async def send_answers(request: Request, token: str) -> Response:
        """Record the answers, all or none, then say what was recorded."""
        t = Translator(language_of(request))
        if not _TOKEN.match(token):
            return _link_trouble(request, _unknown_link(request))
        form = await request.form()
        chosen: dict[str, str] = {}
        answers = []
        for name, value in form.multi_items():
            parts = str(name).split(":")
            if len(parts) != 3 or parts[0] != "answer" or value not in ("granted", "refused"):
                continue
            pupil_id, purpose = as_uuid(parts[1]), parts[2][:64]
            version = str(form.get(f"version:{parts[1]}:{purpose}", ""))
            shown = str(form.get(f"language:{parts[1]}:{purpose}", "en"))
            if pupil_id is None or not version.isdigit():
                continue
            chosen[f"{pupil_id}:{purpose}"] = str(value)
            answers.append(
                {
                    "pupil_id": pupil_id,
                    "purpose": purpose,
                    "decision": str(value),
                    "wording_version": int(version),
                    "wording_language": "cy" if shown == "cy" else "en",
                }
            )
        if not answers:
            return await _link_page(request, token, status=422, error=t("requests.link.choose"))
        async with PageApi(request.app, request) as api:
            sent = await api.post(
                "/consent/v1/consent-requests:answer-link",
                json={"token": token, "language": language_of(request), "answers": answers},
            )
        if sent.status in (404, 410) and sent.problem_code in ("link_not_found", "request_closed"):
            return _link_trouble(request, sent)
        if not sent.ok:
            return await _link_page(
                request, token, status=sent.status, chosen=chosen, error=sent.detail
            )
        return _no_referrer(
            render(
                request,
                "requests/thanks.html",
                title=t("requests.thanks.title"),
                recorded=sent.body["recorded"],
            )
        )

    return router


def _unknown_link(request: Request) -> Answer:
    t = Translator(language_of(request))
    return Answer(404, {"code": "link_not_found", "detail": t("requests.link.unknown")})


def _placed(answer: Answer) -> dict[str, str]:
    """The API's problems placed next to the form's fields."""
    placed: dict[str, str] = {}
    body = answer.body if isinstance(answer.body, dict) else {}
    for problem in body.get("problems") or []:
        where = str(problem.get("where") or "")
        for name, field in (("purposes", "purposes"), ("scope", "scope"), ("title", "title")):
            if f"body.{field}" in where and name not in placed:
                placed[name] = str(problem.get("detail") or "")
    return placed
