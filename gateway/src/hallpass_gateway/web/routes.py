"""The staff console's home (``/app``); the carers' pages are in ``parents``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hallpass_gateway.web.i18n import Translator, language_of
from hallpass_gateway.web.people import SECTIONS, viewer
from hallpass_gateway.web.render import render
from hallpass_kit.auth import STAFF_ROLES, TRUST_ROLES, Role, TokenVerifier


def web_router(verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/app", response_class=HTMLResponse)
    async def staff_home(request: Request) -> Response:
        principal = await viewer(request, verifier)
        t = Translator(language_of(request))
        if not principal.has_any(STAFF_ROLES | TRUST_ROLES):
            if Role.parent in principal.roles:
                return RedirectResponse("/parents", status_code=303)
            return render(
                request,
                "message.html",
                status=403,
                title=t("app.title"),
                message=t("site.not_allowed"),
            )
        sections = [section for section in SECTIONS if section.open_to(principal)]
        return render(
            request,
            "app/home.html",
            title=t("app.title"),
            sections=sections,
            who=principal.email or principal.sub,
        )

    return router
