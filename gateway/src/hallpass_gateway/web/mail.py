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


@dataclass(frozen=True)
class PastoralReply:
    """The reply form as typed: sensitive unless unticked (E5), urgent only when ticked (E8)."""

    subject: str
    body_text: str
    sensitive: bool
    urgent: bool

    @classmethod
    def blank(cls) -> PastoralReply:
        return cls("", "", True, False)

    @classmethod
    def read(cls, form: Mapping[str, Any]) -> PastoralReply:
        return cls(
            subject=" ".join(str(form.get("subject", "")).split())[:200],
            body_text=str(form.get("body_text", ""))[:60_000],
            sensitive=form.get("sensitive") == "yes",
            urgent=form.get("urgent") == "yes",
        )

    def body(self) -> dict[str, Any]:
        return {
            **({"subject": self.subject} if self.subject else {}),
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
            last_leaves=when(t, summary.get("expected_last_at")),
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
            last_leaves=when(t, message.get("expected_last_at")),
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

    async def concern_page(
        request: Request,
        principal: Principal,
        ident: str,
        *,
        status: int = 200,
        reply: PastoralReply | None = None,
        errors: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> Response:
        t = Translator(language_of(request))
        replied = as_uuid(request.query_params.get("replied"))
        async with PageApi(request.app, request) as api:
            answer = await api.get(f"/comms/v1/pastoral/concerns/{ident}")
            if not answer.ok:
                return refused(request, answer)
            # The reply just sent, read back: when it goes (E8) and who is copied (E1).
            receipt = await api.get(f"/comms/v1/messages/{replied}") if replied else None
        return render(
            request,
            "mail/concern.html",
            status=status,
            title=answer.body["subject"],
            concern=answer.body,
            received=when(t, answer.body.get("created_at")),
            can_read_history=principal.has_any(HISTORY_READERS),
            reply=reply or PastoralReply.blank(),
            errors=errors or {},
            error=error,
            receipt=receipt.body if receipt is not None and receipt.ok else None,
            goes=when(t, receipt.body.get("scheduled_for"))
            if receipt is not None and receipt.ok
            else "",
        )

    async def pastoral_reader(
        request: Request, concern_id: str
    ) -> tuple[Principal, str] | Response:
        principal = await viewer(request, verifier)
        if not principal.has_any(PASTORAL_READERS):
            return not_allowed(request)
        ident = as_uuid(concern_id)
        if ident is None:
            t = Translator(language_of(request))
            return refused(request, Answer(404, {"detail": t("mail.pastoral.unknown")}))
        return principal, ident

    @router.get("/app/pastoral/{concern_id}", response_class=HTMLResponse)
    async def concern(request: Request, concern_id: str) -> Response:
        """One concern as the carer wrote it (read audited), and the reply form."""
        found = await pastoral_reader(request, concern_id)
        if isinstance(found, Response):
            return found
        return await concern_page(request, *found)

    @router.post("/app/pastoral/{concern_id}/preview", response_class=HTMLResponse)
    async def preview_reply(request: Request, concern_id: str) -> Response:
        """What the reply would do, from comms' own preview for the same carer: leadership
        copied (E1), a secure link instead of the words (E5), held out of hours (E8)."""
        found = await pastoral_reader(request, concern_id)
        if isinstance(found, Response):
            return found
        principal, ident = found
        t = Translator(language_of(request))
        reply = PastoralReply.read(await request.form())
        async with PageApi(request.app, request) as api:
            concern = await api.get(f"/comms/v1/pastoral/concerns/{ident}")
            if not concern.ok:
                return refused(request, concern)
            if not reply.body_text.strip():
                return await concern_page(
                    request,
                    principal,
                    ident,
                    status=422,
                    reply=reply,
                    errors={"body_text": t("mail.reply.write_something")},
                )
            subject = reply.subject or f"Re: {' '.join(concern.body['subject'].split())}"[:200]
            answer = await api.post(
                "/comms/v1/messages:preview",
                json={
                    "recipients": {"guardian_ids": [concern.body["guardian_id"]]},
                    "subject": subject,
                    "body_text": reply.body_text,
                    "sensitivity": "sensitive" if reply.sensitive else "normal",
                    "urgent": reply.urgent,
                },
            )
        if not answer.ok:
            errors, error = field_errors(answer, FIELD_OF_WHERE)
            return await concern_page(
                request,
                principal,
                ident,
                status=answer.status,
                reply=reply,
                errors=errors,
                error=error,
            )
        return render(
            request,
            "mail/reply_preview.html",
            title=t("mail.reply.preview_title"),
            concern=concern.body,
            reply=reply,
            subject=subject,
            summary=answer.body,
            held_until=when(t, answer.body.get("scheduled_for")),
        )

    @router.post("/app/pastoral/{concern_id}/edit", response_class=HTMLResponse)
    async def edit_reply(request: Request, concern_id: str) -> Response:
        """Back from the preview to the form, with the reply as it was."""
        found = await pastoral_reader(request, concern_id)
        if isinstance(found, Response):
            return found
        return await concern_page(request, *found, reply=PastoralReply.read(await request.form()))

    @router.post("/app/pastoral/{concern_id}/reply", response_class=HTMLResponse)
    async def send_reply(request: Request, concern_id: str) -> Response:
        """Send the reply as previewed (comms audits it and marks the concern answered)."""
        found = await pastoral_reader(request, concern_id)
        if isinstance(found, Response):
            return found
        principal, ident = found
        reply = PastoralReply.read(await request.form())
        async with PageApi(request.app, request) as api:
            answer = await api.post(
                f"/comms/v1/pastoral/concerns/{ident}/replies", json=reply.body()
            )
        if not answer.ok:
            errors, error = field_errors(answer, FIELD_OF_WHERE)
            return await concern_page(
                request,
                principal,
                ident,
                status=answer.status,
                reply=reply,
                errors=errors,
                error=error,
            )
        return RedirectResponse(
            f"/app/pastoral/{ident}?replied={answer.body['id']}", status_code=303
        )

    return router
