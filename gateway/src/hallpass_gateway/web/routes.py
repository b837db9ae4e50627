"""The pages: ``/app`` for staff, ``/parents`` for carers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hallpass_gateway.web.api import PageApi
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

    @router.get("/parents", response_class=HTMLResponse)
    async def parents_home(request: Request) -> Response:
        await viewer(request, verifier)
        t = Translator(language_of(request))
        async with PageApi(request.app, request) as api:
            children = await api.get("/consent/v1/me/children")
        if children.problem_code == "carer_not_linked":
            return render(
                request,
                "parents/home.html",
                title=t("parents.title"),
                children=[],
                notice=t("parents.not_linked"),
                done=False,
            )
        if not children.ok:
            return _trouble(request, children.status, children.detail)
        return render(
            request,
            "parents/home.html",
            title=t("parents.title"),
            children=children.body,
            notice=None,
            done=request.query_params.get("linked") == "1",
        )

    @router.post("/parents/link", response_class=HTMLResponse)
    async def redeem(request: Request) -> Response:
        await viewer(request, verifier)
        t = Translator(language_of(request))
        form = await request.form()
        code = str(form.get("code", ""))[:64]
        async with PageApi(request.app, request) as api:
            linked = await api.post("/consent/v1/me/invitations:redeem", json={"code": code})
        if linked.ok:
            return RedirectResponse("/parents?linked=1", status_code=303)
        return render(
            request,
            "parents/home.html",
            status=linked.status,
            title=t("parents.title"),
            children=[],
            notice=None,
            done=False,
            error=linked.detail,
        )

    return router


def _trouble(request: Request, status: int, detail: str) -> Response:
    t = Translator(language_of(request))
    return render(
        request,
        "message.html",
        status=status if status >= 400 else 502,
        title=t("site.error_title"),
        message=detail or t("site.try_again"),
    )
