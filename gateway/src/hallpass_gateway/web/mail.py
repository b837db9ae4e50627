"""Staff mail pages: write to a class or a family with a preview of who receives it, read a
family's messages, and the pastoral inbox.

Every page is built from the comms and consent APIs' own answers, as the signed-in person: the
preview is comms' own ``POST /v1/messages:preview``, which runs the same rules as a send (the
head and deputy copied, E1; held for approval, E4; held for the next school morning, E8) and
writes nothing, so what the page shows is what the send does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hallpass_gateway.web.api import Answer, PageApi
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.pages import as_uuid, day_words, pupil_name, refused
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import Principal, Role, TokenVerifier

# The comms API's role groups (A1), as its documentation states them; the API still decides.
SENDERS = frozenset({Role.staff, Role.head, Role.deputy, Role.dsl, Role.office, Role.pastoral})
HISTORY_READERS = frozenset({Role.head, Role.deputy, Role.dsl, Role.pastoral, Role.office})
PASTORAL_READERS = frozenset({Role.dsl, Role.pastoral})
# Dates are shown on the school's clock; the demo and every school so far are in the UK.
SCHOOL_ZONE = ZoneInfo("Europe/London")
# A class list page shows at most this many pupils (the consent API's largest page).
CLASS_PAGE = "500"
# The fields of the compose form the API names in a refusal (``where``), by form field.
FIELD_OF_WHERE = {"body.subject": "subject", "body.body_text": "body_text"}

# Both pages start from the class list, which the consent API gives staff but not pastoral
# staff (who reach a family's messages from a concern instead), so neither is listed for them.
CLASS_READERS = frozenset(
    {Role.staff, Role.head, Role.deputy, Role.dsl, Role.office, Role.social_media, Role.admin}
)

SECTIONS.extend(
    [
        Section("/app/mail", "mail.compose.title", SENDERS & CLASS_READERS),
        Section("/app/families", "mail.families.title", HISTORY_READERS & CLASS_READERS),
        Section("/app/pastoral", "mail.pastoral.title", PASTORAL_READERS),
    ]
)


def when(t: Translator, value: object, *, with_time: bool = True) -> str:
    """An API date-time on the school's clock: ``18 November 2026, 10:00`` (or Welsh)."""
    if not isinstance(value, str):
        return ""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(SCHOOL_ZONE)
    day = day_words(t, moment)
    return t("mail.date_time", date=day, time=f"{moment:%H:%M}") if with_time else day


def not_allowed(request: Request) -> Response:
    t = Translator(language_of(request))
    return render(
        request, "message.html", status=403, title=t("app.title"), message=t("site.not_allowed")
    )


def field_errors(answer: Answer, fields: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """A refusal's words by form field (from each problem's ``where``; a problem inside a list,
    ``body.domains.0``, belongs to the list's field), and the refusal's own words when no field
    is named."""
    errors: dict[str, str] = {}
    if isinstance(answer.body, dict):
        for problem in answer.body.get("problems") or []:
            if not isinstance(problem, dict):
                continue
            where = str(problem.get("where"))
            field = next(
                (f for w, f in fields.items() if where == w or where.startswith(w + ".")), None
            )
            if field is not None and field not in errors:
                errors[field] = str(problem.get("detail") or "")
    return errors, None if errors else (answer.detail or None)


@dataclass(frozen=True)
class Draft:
    """The compose form as typed: who (``class:<id>`` or ``pupil:<id>``) and the words."""

    class_id: str
    to: str
    subject: str
    body_text: str
    urgent: bool
    sensitive: bool

    @classmethod
    def read(cls, form: Mapping[str, Any]) -> Draft:
        def text(name: str, limit: int) -> str:
            return str(form.get(name, ""))[:limit]

        return cls(
            class_id=as_uuid(form.get("class_id")) or "",
            to=text("to", 100),
            subject=text("subject", 400),
            body_text=text("body_text", 60_000),
            urgent=form.get("urgent") == "yes",
            sensitive=form.get("sensitive") == "yes",
        )

    def recipients(self) -> dict[str, list[str]] | None:
        kind, _, target = self.to.partition(":")
        ident = as_uuid(target)
        if ident is None or kind not in ("class", "pupil"):
            return None
        return {"class_ids": [ident]} if kind == "class" else {"pupil_ids": [ident]}

    def message(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients(),
            "subject": self.subject,
            "body_text": self.body_text,
            "sensitivity": "sensitive" if self.sensitive else "normal",
            "urgent": self.urgent,
        }


async def _class_and_pupils(
    api: PageApi, class_id: str
) -> tuple[list[Any], dict[str, Any] | None, list[Any], Answer | None]:
    """The school's classes, the chosen one and its pupils (or the API's refusal)."""
    classes = await api.get("/consent/v1/classes")
    if not classes.ok:
        return [], None, [], classes
    chosen = next((c for c in classes.body if c.get("id") == class_id), None)
    pupils: list[Any] = []
    if chosen is not None:
        listed = await api.get(
            "/consent/v1/pupils", params={"class_id": class_id, "limit": CLASS_PAGE}
        )
        if not listed.ok:
            return classes.body, chosen, [], listed
        pupils = listed.body.get("items", [])
    return classes.body, chosen, pupils, None


def _who(
    t: Translator, draft: Draft, chosen: Mapping[str, Any] | None, pupils: Sequence[Any]
) -> str:
    kind, _, target = draft.to.partition(":")
    if kind == "class" and chosen is not None:
        return t("mail.to.class", name=chosen.get("name", ""))
    pupil = next((p for p in pupils if p.get("id") == target), None)
    return t("mail.to.family", name=pupil_name(pupil)) if pupil is not None else ""


def mail_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def sender(request: Request) -> Principal | Response:
        principal = await viewer(request, verifier)
        return principal if principal.has_any(SENDERS) else not_allowed(request)

    async def compose(
        request: Request,
        draft: Draft,
        *,
        status: int = 200,
        errors: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> Response:
        t = Translator(language_of(request))
        async with PageApi(request.app, request) as api:
            classes, chosen, pupils, refusal = await _class_and_pupils(api, draft.class_id)
        if refusal is not None:
            return refused(request, refusal)
        return render(
            request,
            "mail/compose.html",
            status=status,
            title=t("mail.compose.title"),
            classes=classes,
            chosen=chosen,
            pupils=pupils,
            pupil_name=pupil_name,
            draft=draft,
            errors=errors or {},
            error=error,
        )

    @router.get("/app/mail", response_class=HTMLResponse)
    async def compose_page(request: Request) -> Response:
        """Choose a class, then write to it or to one of its families."""
        principal = await sender(request)
        if isinstance(principal, Response):
            return principal
        class_id = as_uuid(request.query_params.get("class_id")) or ""
        return await compose(request, Draft(class_id, f"class:{class_id}", "", "", False, False))

    @router.post("/app/mail/edit", response_class=HTMLResponse)
    async def edit(request: Request) -> Response:
        """Back from the preview to the form, with the words as they were."""
        principal = await sender(request)
        if isinstance(principal, Response):
            return principal
        return await compose(request, Draft.read(await request.form()))

    @router.post("/app/mail/preview", response_class=HTMLResponse)
    async def preview(request: Request) -> Response:
        """Who would receive it and how, from comms' own preview; nothing is sent yet."""
        principal = await sender(request)
        if isinstance(principal, Response):
            return principal
        t = Translator(language_of(request))
        draft = Draft.read(await request.form())
        if draft.recipients() is None:
            return await compose(
                request, draft, status=422, errors={"to": t("mail.compose.choose_who")}
            )
        async with PageApi(request.app, request) as api:
            answer = await api.post("/comms/v1/messages:preview", json=draft.message())
            _, chosen, pupils, _ = await _class_and_pupils(api, draft.class_id)
        if not answer.ok:
            errors, error = field_errors(answer, FIELD_OF_WHERE)
            return await compose(request, draft, status=answer.status, errors=errors, error=error)
        summary = answer.body
        return render(
            request,
            "mail/preview.html",
            title=t("mail.preview.title"),
            draft=draft,
            who=_who(t, draft, chosen, pupils),
            summary=summary,
            held_until=when(t, summary.get("scheduled_for")),
            idempotency_key=str(uuid.uuid4()),
        )

    @router.post("/app/mail/send", response_class=HTMLResponse)
    async def send(request: Request) -> Response:
        """Send as previewed. The form's key makes a second press of the button one send."""
        principal = await sender(request)
        if isinstance(principal, Response):
            return principal
        t = Translator(language_of(request))
        form = await request.form()
        draft = Draft.read(form)
        key = as_uuid(form.get("idempotency_key")) or str(uuid.uuid4())
        if draft.recipients() is None:
            return await compose(
                request, draft, status=422, errors={"to": t("mail.compose.choose_who")}
            )
        async with PageApi(request.app, request) as api:
            answer = await api.post(
                "/comms/v1/messages", json=draft.message(), headers={"Idempotency-Key": key}
            )
        if not answer.ok:
            errors, error = field_errors(answer, FIELD_OF_WHERE)
            return await compose(request, draft, status=answer.status, errors=errors, error=error)
        return RedirectResponse(f"/app/mail/messages/{answer.body['id']}?sent=1", status_code=303)

    @router.get("/app/mail/messages/{message_id}", response_class=HTMLResponse)
    async def message_page(request: Request, message_id: str) -> Response:
        """A message and how far each envelope has gone (for its sender and leadership)."""
        await viewer(request, verifier)
        t = Translator(language_of(request))
        ident = as_uuid(message_id)
        if ident is None:
            return refused(request, Answer(404, {"detail": t("mail.message.unknown")}))
        async with PageApi(request.app, request) as api:
            answer = await api.get(f"/comms/v1/messages/{ident}")
        if not answer.ok:
            return refused(request, answer)
        message = answer.body
        statuses: dict[str, int] = {}
        for delivery in message.get("deliveries", []):
            statuses[delivery["status"]] = statuses.get(delivery["status"], 0) + 1
        return render(
            request,
            "mail/message.html",
            title=message["subject"],
            message=message,
            statuses=statuses,
            sent=request.query_params.get("sent") == "1",
            created=when(t, message.get("created_at")),
            held_until=when(t, message.get("scheduled_for")),
        )

    @router.get("/app/families", response_class=HTMLResponse)
    async def families(request: Request) -> Response:
        """Choose a class, then a pupil, to read the messages to that pupil's family."""
        principal = await viewer(request, verifier)
        if not principal.has_any(HISTORY_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        class_id = as_uuid(request.query_params.get("class_id")) or ""
        async with PageApi(request.app, request) as api:
            classes, chosen, pupils, refusal = await _class_and_pupils(api, class_id)
        if refusal is not None:
            return refused(request, refusal)
        return render(
            request,
            "mail/families.html",
            title=t("mail.families.title"),
            classes=classes,
            chosen=chosen,
            pupils=pupils,
            pupil_name=pupil_name,
        )

    @router.get("/app/families/{pupil_id}", response_class=HTMLResponse)
    async def family_history(request: Request, pupil_id: str) -> Response:
        """The messages between the school and a pupil's family, newest first (read audited)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(HISTORY_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        ident = as_uuid(pupil_id)
        if ident is None:
            return refused(request, Answer(404, {"detail": t("mail.families.unknown")}))
        params = {"limit": "50"}
        cursor = request.query_params.get("cursor")
        if cursor:
            params["cursor"] = cursor[:200]
        async with PageApi(request.app, request) as api:
            pupil = await api.get(f"/consent/v1/pupils/{ident}")
            history = await api.get(f"/comms/v1/families/{ident}/messages", params=params)
        if not history.ok:
            return refused(request, history)
        name = pupil_name(pupil.body) if pupil.ok else ""
        return render(
            request,
            "mail/history.html",
            title=t("mail.history.title", name=name) if name else t("mail.history.title_plain"),
            entries=history.body.get("items", []),
            next_cursor=history.body.get("next_cursor"),
            pupil_id=ident,
            when=lambda value: when(t, value),
        )

    @router.get("/app/pastoral", response_class=HTMLResponse)
    async def pastoral(request: Request) -> Response:
        """The pastoral inbox, newest first (DSL and pastoral staff; every read audited)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(PASTORAL_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        status = request.query_params.get("status", "")
        params = {"limit": "50"}
        if status in ("open", "answered", "closed"):
            params["status"] = status
        else:
            status = ""
        cursor = request.query_params.get("cursor")
        if cursor:
            params["cursor"] = cursor[:200]
        async with PageApi(request.app, request) as api:
            inbox = await api.get("/comms/v1/pastoral/concerns", params=params)
        if not inbox.ok:
            return refused(request, inbox)
        return render(
            request,
            "mail/pastoral.html",
            title=t("mail.pastoral.title"),
            concerns=inbox.body.get("items", []),
            next_cursor=inbox.body.get("next_cursor"),
            shown=status,
            when=lambda value: when(t, value),
        )

    @router.get("/app/pastoral/{concern_id}", response_class=HTMLResponse)
    async def concern(request: Request, concern_id: str) -> Response:
        """One concern as the carer wrote it (read audited)."""
        principal = await viewer(request, verifier)
        if not principal.has_any(PASTORAL_READERS):
            return not_allowed(request)
        t = Translator(language_of(request))
        ident = as_uuid(concern_id)
        if ident is None:
            return refused(request, Answer(404, {"detail": t("mail.pastoral.unknown")}))
        async with PageApi(request.app, request) as api:
            answer = await api.get(f"/comms/v1/pastoral/concerns/{ident}")
        if not answer.ok:
            return refused(request, answer)
        return render(
            request,
            "mail/concern.html",
            title=answer.body["subject"],
            concern=answer.body,
            received=when(t, answer.body.get("created_at")),
            can_read_history=principal.has_any(HISTORY_READERS),
        )

    return router
