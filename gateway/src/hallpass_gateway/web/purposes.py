"""The words parents are shown for each purpose, in English and Welsh, and publishing new ones.

The head (or an admin) reads each purpose's current words in both languages and every earlier
version, and publishes a new version: new English words, Welsh words, or both. A version is
never edited in place, because records name the version (and language) their carer was shown
(C10); the consent API decides who may publish and checks the words.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hallpass_gateway.web.api import PageApi
from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.mail import field_errors, not_allowed, when
from hallpass_gateway.web.pages import refused, trouble
from hallpass_gateway.web.people import SECTIONS, Section, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import Role, TokenVerifier

# The consent API's school administrators: who may publish new words (A1); the API still decides.
WORDING_EDITORS = frozenset({Role.head, Role.admin, Role.trust_admin})
# A purpose code as the consent API spells it; anything else never reaches the API's path.
PURPOSE_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
# The API's limit on a version's words, plus one so a longer text is refused in its words.
MAX_WORDS = 5001
# Where the API names each field of a new version.
WORDING_WHERE = {"body.text": "text", "body.text_cy": "text_cy"}

SECTIONS.append(Section("/app/purposes", "purposes.title", WORDING_EDITORS))


def purposes_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def editor(request: Request) -> bool:
        return (await viewer(request, verifier)).has_any(WORDING_EDITORS)

    @router.get("/app/purposes", response_class=HTMLResponse)
    async def purposes(request: Request) -> Response:
        """Every purpose with its current words in English and Welsh."""
        if not await editor(request):
            return not_allowed(request)
        t = Translator(language_of(request))
        async with PageApi(request.app, request) as api:
            listed = await api.get("/consent/v1/purposes")
        if not listed.ok:
            return refused(request, listed)
        return render(
            request,
            "purposes/list.html",
            title=t("purposes.title"),
            purposes=[p for p in listed.body if p["requires_consent"]],
        )

    @router.get("/app/purposes/{code}", response_class=HTMLResponse)
    async def purpose(request: Request, code: str) -> Response:
        """One purpose: its words in both languages, every earlier version, and the form to
        publish a new version."""
        if not await editor(request):
            return not_allowed(request)
        published = request.query_params.get("published", "")
        return await _purpose_page(request, code, published=published.isdigit())

    @router.post("/app/purposes/{code}", response_class=HTMLResponse)
    async def publish(request: Request, code: str) -> Response:
        """Publish the form's words as a new version (the API keeps the earlier ones)."""
        if not await editor(request):
            return not_allowed(request)
        if PURPOSE_CODE.match(code) is None:
            return _unknown(request)
        form = await request.form()
        values = {
            "text": str(form.get("text", ""))[:MAX_WORDS],
            "text_cy": str(form.get("text_cy", ""))[:MAX_WORDS],
        }
        body: dict[str, Any] = {"text": values["text"]}
        if values["text_cy"].strip():
            body["text_cy"] = values["text_cy"]
        async with PageApi(request.app, request) as api:
            made = await api.post(f"/consent/v1/purposes/{code}/wordings", json=body)
        if made.ok:
            return RedirectResponse(
                f"/app/purposes/{code}?published={made.body['wording_version']}", status_code=303
            )
        if made.status in (403, 404):
            return refused(request, made)
        errors, general = field_errors(made, WORDING_WHERE)
        return await _purpose_page(
            request, code, values=values, errors=errors, error=general, status=made.status
        )

    return router


async def _purpose_page(
    request: Request,
    code: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    published: bool = False,
    status: int = 200,
) -> Response:
    t = Translator(language_of(request))
    if PURPOSE_CODE.match(code) is None:
        return _unknown(request)
    async with PageApi(request.app, request) as api:
        found = await api.get(f"/consent/v1/purposes/{code}")
    if found.status == 404:
        return _unknown(request)
    if not found.ok:
        return refused(request, found)
    history = found.body
    return render(
        request,
        "purposes/purpose.html",
        status=status,
        title=history["title"],
        purpose=history,
        versions=sorted(history["versions"], key=lambda v: v["version"], reverse=True),
        values=values or {"text": history["wording"], "text_cy": history["wording_cy"] or ""},
        errors=errors or {},
        error=error,
        published=published,
        when=lambda value: when(t, value, with_time=False),
    )


def _unknown(request: Request) -> Response:
    t = Translator(language_of(request))
    return trouble(request, 404, t("purposes.unknown"))
