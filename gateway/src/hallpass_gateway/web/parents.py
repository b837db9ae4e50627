"""The carers' pages (``/parents``): their children, what they agreed to and changing it in one
tap, the receipt of every change, their child's photos, the school's messages, a concern for the
pastoral team and a report of an offensive message.

Every page reads and writes through the services' own APIs as the carer (rule A2: only their
own children), so a page can show nothing the API would not. Each child's pages speak to the
school that holds the child's record: a carer with children in two schools needs no school
chosen first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from hallpass_gateway.web.api import Answer, PageApi
from hallpass_gateway.web.i18n import Translator, catalogue, language_of
from hallpass_gateway.web.pages import day_words, pupil_name, refused
from hallpass_gateway.web.people import viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import TokenVerifier
from hallpass_kit.clients import SCHOOL_HEADER

# Form fields are bounded before they reach the API, which checks them again and says why.
MAX_SUBJECT = 200
MAX_TEXT = 5000
MAX_CODE = 64
# A fresh key in every form makes a second tap on the same button the same answer, not two.
IDEMPOTENCY_FIELD = "request_key"
MESSAGES_PER_PAGE = 20
SCHOOL_TIME = ZoneInfo("Europe/London")
# The languages a purpose's words may be shown in; the page's language picks one (C10).
WORDING_LANGUAGES = ("en", "cy")
# Refusals the carer can act on, said in the page's language rather than the API's English.
_CARER_PROBLEMS = {
    "stale_wording": "parents.problem.stale_wording",
    "wording_not_in_welsh": "parents.problem.wording_not_in_welsh",
}


class ShowInstead(Exception):
    """The page cannot be drawn (no such child of the carer's, the API said no): this page is
    shown in its place. Raised by the small fetch functions, turned into the page in one place
    (``_ParentsRoute``), so no handler repeats "if not ok, render trouble"."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _ParentsRoute(APIRoute):
    """A ``/parents`` route: a ``ShowInstead`` raised while drawing becomes the page shown."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except ShowInstead as instead:
                return instead.response
            return response

        return handle


def parents_router(verifier: TokenVerifier) -> APIRouter:
    """The ``/parents`` pages; ``verifier`` tells a signed-in carer from anyone else."""
    router = APIRouter(include_in_schema=False, route_class=_ParentsRoute)

    @router.get("/parents", response_class=HTMLResponse)
    async def parents_home(request: Request) -> Response:
        """The carer's children, and the form to link their account with an invitation code."""
        await viewer(request, verifier)
        t = _t(request)
        async with PageApi(request.app, request) as api:
            children = await api.get("/consent/v1/me/children")
        if children.problem_code == "carer_not_linked":
            return _home(request, children=[], notice=t("parents.not_linked"))
        if not children.ok:
            return _trouble(request, children)
        return _home(
            request, children=children.body, done=request.query_params.get("linked") == "1"
        )

    @router.post("/parents/link", response_class=HTMLResponse)
    async def redeem(request: Request) -> Response:
        """Link the account to the carer's record with the school's one-time code."""
        await viewer(request, verifier)
        form = await request.form()
        code = str(form.get("code", ""))[:MAX_CODE]
        async with PageApi(request.app, request) as api:
            linked = await api.post("/consent/v1/me/invitations:redeem", json={"code": code})
        if linked.ok:
            return RedirectResponse("/parents?linked=1", status_code=303)
        return _home(request, children=[], status=linked.status, error=linked.detail)

    @router.get("/parents/children/{pupil_id}", response_class=HTMLResponse)
    async def child_page(request: Request, pupil_id: str) -> Response:
        """One child: each purpose's words, the carer's answer, what applies now, and the
        record of every answer about the child."""
        await viewer(request, verifier)
        return await _child_page(request, pupil_id)

    @router.post("/parents/children/{pupil_id}/answers", response_class=HTMLResponse)
    async def answer(request: Request, pupil_id: str) -> Response:
        """Yes or no for one purpose; the receipt of the new record follows."""
        await viewer(request, verifier)
        pupil = _path_id(request, pupil_id)
        form = await request.form()
        purpose = str(form.get("purpose", ""))[:MAX_CODE]
        decision = str(form.get("decision", ""))[:16]
        body: dict[str, Any] = {"purpose": purpose, "decision": decision}
        version = str(form.get("wording_version", ""))
        if version.isdigit() and len(version) <= 10:
            # The words the carer was shown, in the language they were shown in, are the ones
            # recorded; if the school has published newer words since, the API refuses and the
            # page shows the new words (C10).
            body["wording_version"] = int(version)
        language = str(form.get("wording_language", ""))
        if language in WORDING_LANGUAGES:
            body["wording_language"] = language
        async with PageApi(request.app, request) as api:
            recorded = await api.post(
                f"/consent/v1/me/children/{pupil}/consents",
                json=body,
                headers=_idempotency(form.get(IDEMPOTENCY_FIELD)),
            )
        return await _after_change(request, pupil, purpose, recorded)

    @router.post("/parents/children/{pupil_id}/withdrawals", response_class=HTMLResponse)
    async def withdraw(request: Request, pupil_id: str) -> Response:
        """Withdraw consent for one purpose: it applies to every decision from now (C5)."""
        await viewer(request, verifier)
        pupil = _path_id(request, pupil_id)
        form = await request.form()
        purpose = str(form.get("purpose", ""))[:MAX_CODE]
        async with PageApi(request.app, request) as api:
            recorded = await api.post(
                f"/consent/v1/me/children/{pupil}/consents/{purpose}:withdraw",
                headers=_idempotency(form.get(IDEMPOTENCY_FIELD)),
            )
        return await _after_change(request, pupil, purpose, recorded)

    @router.get("/parents/children/{pupil_id}/receipts/{record_id}", response_class=HTMLResponse)
    async def receipt(request: Request, pupil_id: str, record_id: str) -> Response:
        """The consent receipt of one record about the child, as the API issues it."""
        await viewer(request, verifier)
        t = _t(request)
        pupil, record = _path_id(request, pupil_id), _path_id(request, record_id)
        async with PageApi(request.app, request) as api:
            child = await _child_of(api, request, pupil)
            issued = _answered(request, await api.get(f"/consent/v1/me/consents/{record}/receipt"))
        if str(issued["subject"]["id"]) != str(pupil):
            # A receipt about another of the carer's children belongs on that child's page.
            return _not_found(request)
        return render(
            request,
            "parents/receipt.html",
            title=t("parents.receipt.title"),
            child=child,
            name=pupil_name(child),
            receipt=issued,
            words_language=_language_label(t, issued["purpose"].get("wording_language")),
            answer_label=_answer_label(t, issued["decision"]),
            when=_dates(request),
            changed=request.query_params.get("changed") == "1",
        )

    @router.get("/parents/children/{pupil_id}/photos", response_class=HTMLResponse)
    async def photos(request: Request, pupil_id: str) -> Response:
        """Every stored picture the child is tagged in and where each was published (M8),
        with a download of them all."""
        await viewer(request, verifier)
        t = _t(request)
        pupil = _path_id(request, pupil_id)
        async with PageApi(request.app, request) as api:
            child = await _child_of(api, request, pupil)
            media = _answered(
                request,
                await api.get(f"/media/v1/pupils/{pupil}/media", headers=_school(child)),
            )
        return render(
            request,
            "parents/photos.html",
            title=t("parents.photos.title", name=pupil_name(child)),
            child=child,
            items=media["items"],
            when=_dates(request),
        )

    @router.get("/parents/children/{pupil_id}/messages", response_class=HTMLResponse)
    async def messages(request: Request, pupil_id: str) -> Response:
        """The school's messages to the family about the child, newest first; a sensitive
        one opens in the secure view (E5)."""
        await viewer(request, verifier)
        t = _t(request)
        pupil = _path_id(request, pupil_id)
        params = {"limit": str(MESSAGES_PER_PAGE)}
        cursor = request.query_params.get("cursor")
        if cursor:
            params["cursor"] = cursor[:200]
        async with PageApi(request.app, request) as api:
            child = await _child_of(api, request, pupil)
            history = _answered(
                request,
                await api.get(
                    f"/comms/v1/families/{pupil}/messages", params=params, headers=_school(child)
                ),
            )
        return render(
            request,
            "parents/messages.html",
            title=t("parents.messages.title", name=pupil_name(child)),
            child=child,
            items=history["items"],
            next_cursor=history.get("next_cursor"),
            when=_dates(request),
        )

    @router.get("/parents/children/{pupil_id}/concern", response_class=HTMLResponse)
    async def concern_form(request: Request, pupil_id: str) -> Response:
        """A concern for the school's pastoral team about the child (E7)."""
        await viewer(request, verifier)
        return await _concern_page(request, pupil_id, values={}, error=None)

    @router.post("/parents/children/{pupil_id}/concern", response_class=HTMLResponse)
    async def raise_concern(request: Request, pupil_id: str) -> Response:
        """Send the concern; only the DSL and pastoral staff can read it."""
        await viewer(request, verifier)
        pupil = _path_id(request, pupil_id)
        form = await request.form()
        values = {
            "subject": str(form.get("subject", ""))[:MAX_SUBJECT],
            "body": str(form.get("body", ""))[:MAX_TEXT],
        }
        async with PageApi(request.app, request) as api:
            child = await _child_of(api, request, pupil)
            raised = await api.post(
                "/comms/v1/pastoral/concerns",
                json={**values, "pupil_id": str(pupil)},
                headers=_school(child),
            )
        if raised.ok:
            return RedirectResponse(f"/parents/children/{pupil}?concern=sent", status_code=303)
        return await _concern_page(
            request, pupil_id, values=values, error=_problem(request, raised), status=raised.status
        )

    @router.get("/parents/children/{pupil_id}/report", response_class=HTMLResponse)
    async def report_form(request: Request, pupil_id: str) -> Response:
        """Report an offensive message to the DSL (E10): one from the school's messages, or
        one received from an address."""
        await viewer(request, verifier)
        message = request.query_params.get("message", "")
        return await _report_page(request, pupil_id, values={"message_id": message}, error=None)

    @router.post("/parents/children/{pupil_id}/report", response_class=HTMLResponse)
    async def file_report(request: Request, pupil_id: str) -> Response:
        """File the report; the DSL is told at once and the carer gets its reference."""
        await viewer(request, verifier)
        t = _t(request)
        pupil = _path_id(request, pupil_id)
        form = await request.form()
        values = {
            "message_id": str(form.get("message_id", ""))[:40],
            "received_from": str(form.get("received_from", "")).strip()[:254],
            "description": str(form.get("description", ""))[:MAX_TEXT],
        }
        body: dict[str, Any] = {"description": values["description"]}
        if values["message_id"]:
            body["message_id"] = values["message_id"]
        if values["received_from"]:
            body["received_from"] = values["received_from"]
        if "message_id" not in body and "received_from" not in body:
            return await _report_page(
                request,
                pupil_id,
                values=values,
                error=("received_from", t("parents.report.which")),
                status=422,
            )
        async with PageApi(request.app, request) as api:
            child = await _child_of(api, request, pupil)
            filed = await api.post("/comms/v1/reports", json=body, headers=_school(child))
        if not filed.ok:
            return await _report_page(
                request,
                pupil_id,
                values=values,
                error=_problem(request, filed),
                status=filed.status,
            )
        return render(
            request,
            "parents/reported.html",
            title=t("parents.report.done_title"),
            child=child,
            reference=filed.body["reference"],
        )

    return router


async def _child_page(
    request: Request,
    pupil_id: str,
    *,
    error: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    t = _t(request)
    pupil = _path_id(request, pupil_id)
    async with PageApi(request.app, request) as api:
        child = await _child_of(api, request, pupil)
        history = _answered(request, await api.get(f"/consent/v1/me/children/{pupil}/consents"))
        purposes = await api.get("/consent/v1/purposes", headers=_school(child))
    # The words are the school's current ones, the version the carer's answer will name.
    wordings = {p["code"]: p for p in purposes.body} if purposes.ok else {}
    purposes_of = {c["purpose"]: c for c in child["consents"]}
    return render(
        request,
        "parents/child.html",
        status=status,
        title=pupil_name(child),
        child=child,
        consents=[
            {
                **consent,
                **_shown_words(
                    wordings.get(consent["purpose"]), consent["wording_version"], t.language
                ),
                "answer_label": _answer_label(t, consent["your_decision"]),
                "state_label": _state_label(t, consent["state"], consent["allowed"]),
            }
            for consent in child["consents"]
        ],
        history=[
            {
                **record,
                "title": purposes_of.get(record["purpose"], {}).get("title", record["purpose"]),
                "title_cy": purposes_of.get(record["purpose"], {}).get("title_cy"),
                "answer_label": _answer_label(t, record["decision"]),
                "language_label": _language_label(t, record.get("wording_language")),
            }
            for record in history
        ],
        error=error,
        request_key=str(uuid.uuid4()),
        concern_sent=request.query_params.get("concern") == "sent",
        when=_dates(request),
    )


async def _after_change(
    request: Request, pupil: uuid.UUID, purpose: str, recorded: Answer
) -> Response:
    if recorded.ok:
        return RedirectResponse(
            f"/parents/children/{pupil}/receipts/{recorded.body['id']}?changed=1",
            status_code=303,
        )
    # The refusal is shown next to the purpose's buttons; a child not the carer's is a 404 page.
    return await _child_page(
        request, str(pupil), error=(purpose, _problem(request, recorded)), status=recorded.status
    )


async def _concern_page(
    request: Request,
    pupil_id: str,
    *,
    values: Mapping[str, str],
    error: str | None,
    status: int = 200,
) -> Response:
    t = _t(request)
    pupil = _path_id(request, pupil_id)
    async with PageApi(request.app, request) as api:
        child = await _child_of(api, request, pupil)
    return render(
        request,
        "parents/concern.html",
        status=status,
        title=t("parents.concern.title"),
        child=child,
        name=pupil_name(child),
        values={"subject": "", "body": "", **values},
        error=error,
    )


async def _report_page(
    request: Request,
    pupil_id: str,
    *,
    values: Mapping[str, str],
    error: tuple[str, str] | str | None,
    status: int = 200,
) -> Response:
    t = _t(request)
    pupil = _path_id(request, pupil_id)
    async with PageApi(request.app, request) as api:
        child = await _child_of(api, request, pupil)
    message_id = values.get("message_id", "")
    if isinstance(error, str):
        # The API's refusal names no field: it is about the report as a whole.
        error = ("description", error)
    return render(
        request,
        "parents/report.html",
        status=status,
        title=t("parents.report.title"),
        child=child,
        values={
            "received_from": "",
            "description": "",
            **values,
            "message_id": message_id if _uuid_of(message_id) is not None else "",
        },
        error=error,
    )


def _home(
    request: Request,
    *,
    children: list[Any],
    notice: str | None = None,
    done: bool = False,
    error: str | None = None,
    status: int = 200,
) -> Response:
    t = _t(request)
    return render(
        request,
        "parents/home.html",
        status=status,
        title=t("parents.title"),
        children=children,
        notice=notice,
        done=done,
        error=error,
    )


def _t(request: Request) -> Translator:
    return Translator(language_of(request))


def _uuid_of(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if len(text) <= 40 else None
    except ValueError:
        return None


def _school(child: Mapping[str, Any]) -> dict[str, str]:
    """The child's school named to the API: the one that holds the child's record."""
    return {SCHOOL_HEADER.lower(): str(child["school"])}


def _idempotency(key: object) -> dict[str, str]:
    text = str(key or "")
    return {"idempotency-key": text} if text.isascii() and 0 < len(text) <= 64 else {}


def _path_id(request: Request, text: str) -> uuid.UUID:
    """An id from the path; anything else is the "not found" page."""
    found = _uuid_of(text)
    if found is None:
        raise ShowInstead(_not_found(request))
    return found


def _answered(request: Request, answer: Answer) -> Any:
    """The body of a successful API answer; otherwise the API's refusal is the page shown."""
    if not answer.ok:
        raise ShowInstead(_trouble(request, answer))
    return answer.body


async def _child_of(api: PageApi, request: Request, pupil: uuid.UUID) -> Any:
    """One of the carer's children; for anyone else's child the "not found" page (A2)."""
    return _answered(request, await api.get(f"/consent/v1/me/children/{pupil}"))


def _shown_words(
    purpose: Mapping[str, Any] | None, version: int, page_language: str
) -> dict[str, Any]:
    """The words to show for a purpose and the language they are in: the page's language when
    the version has words in it, else English, with ``no_welsh`` set so the page can say the
    school has not given them in Welsh. What is shown is what the answer names (C10)."""
    if purpose is None or purpose.get("wording_version") != version:
        return {"wording": None, "wording_language": "en", "no_welsh": False}
    welsh = purpose.get("wording_cy")
    if page_language == "cy" and isinstance(welsh, str):
        return {"wording": welsh, "wording_language": "cy", "no_welsh": False}
    english = purpose.get("wording")
    return {
        "wording": english if isinstance(english, str) else None,
        "wording_language": "en",
        "no_welsh": page_language == "cy",
    }


def _language_label(t: Translator, language: object) -> str:
    return t("parents.language.cy" if language == "cy" else "parents.language.en")


def _answer_label(t: Translator, decision: str | None) -> str:
    return t(f"parents.answer.{decision}" if decision else "parents.answer.none")


def _state_label(t: Translator, state: str, allowed: bool) -> str:
    key = f"parents.state.{state}"
    if key in catalogue("en"):
        return t(key)
    return t("parents.state.other_allowed" if allowed else "parents.state.other_not_allowed")


def _dates(request: Request) -> Any:
    """``when(iso)``: a date as ``2 December 2026`` in the page's language."""
    t = _t(request)

    def when(value: str | None) -> str:
        if not value:
            return ""
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            # The day as the school and the family live it, not as UTC counts it.
            moment = moment.astimezone(SCHOOL_TIME)
        return day_words(t, moment)

    return when


def _problem(request: Request, answer: Answer) -> str:
    t = _t(request)
    key = _CARER_PROBLEMS.get(answer.problem_code or "")
    if key is not None:
        return t(key)
    return answer.detail or t("site.try_again")


def _not_found(request: Request) -> Response:
    t = _t(request)
    return render(
        request,
        "message.html",
        status=404,
        title=t("site.error_title"),
        message=t("parents.not_found"),
    )


def _trouble(request: Request, answer: Answer) -> Response:
    if answer.status == 404:
        return _not_found(request)
    return refused(request, answer)
