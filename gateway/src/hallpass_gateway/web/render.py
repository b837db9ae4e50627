"""Server-rendered pages: one Jinja2 environment, autoescaped, with the page's words and session."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from hallpass_gateway.signin.session import BrowserSession
from hallpass_gateway.web.i18n import LANGUAGE_COOKIE, Translator, language_of

_TEMPLATES = Path(__file__).parent / "templates"

environment = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def title_in(item: Any, language: str) -> str:
    """A purpose's title in the page's language: Welsh where the school gave one, else English."""
    if not isinstance(item, Mapping):
        return ""
    welsh = item.get("title_cy")
    if language == "cy" and isinstance(welsh, str) and welsh:
        return welsh
    title = item.get("title")
    return title if isinstance(title, str) else ""


environment.filters["title_in"] = title_in


def browser_session(request: Request) -> BrowserSession | None:
    """The signed-in browser's session (the session middleware put it there), if any."""
    session = request.scope.get("state", {}).get("browser_session")
    return session if isinstance(session, BrowserSession) else None


def render(request: Request, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` in the person's language, with their session's CSRF token for its forms."""
    language = language_of(request)
    session = browser_session(request)
    html = environment.get_template(template).render(
        t=Translator(language),
        language=language,
        csrf_token=session.csrf if session is not None else "",
        school=session.school if session is not None else None,
        path=request.url.path,
        **values,
    )
    response = HTMLResponse(html, status_code=status)
    # Pages hold people's data: never kept by a shared computer's cache, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    if request.query_params.get("lang") == language:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, samesite="lax", secure=True
        )
    return response
