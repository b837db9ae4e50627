"""The sign-in pages: plain server-rendered HTML that works without scripts, every value escaped.

Also what a browser is (it prefers HTML to JSON) and where it may be sent back to after signing
in (a path of this site, never another site).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode, urlsplit

from starlette.responses import HTMLResponse

# --- who is a browser ---------------------------------------------------------------------------

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_JSON_TYPES = frozenset({"application/json", "application/problem+json"})


def prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for HTML before JSON (a browser's navigation does;
    an API client's ``*/*`` or ``application/json`` does not)."""
    if not accept:
        return False
    html_q = json_q = 0.0
    for part in accept.split(",")[:50]:
        media_type, _, parameters = part.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.strip().lower()
        if media_type in _HTML_TYPES:
            html_q = max(html_q, quality)
        elif media_type in _JSON_TYPES:
            json_q = max(json_q, quality)
    return html_q > 0 and html_q > json_q


# --- where to go back to ------------------------------------------------------------------------

# C0/C1 controls, DEL, and whitespace a browser strips or folds before following a URL.
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
MAX_NEXT = 2000


def safe_next(value: str | None) -> str:
    """``value`` when it is a path of this site, else ``/``: never a way to another site.

    Refused: absolute URLs (``https://…``), scheme-relative ones (``//evil``), backslashes (which
    browsers read as slashes: ``/\\evil``), whitespace and control characters (stripped by
    browsers, so ``/\\t/evil`` would become ``//evil``), and anything longer than a URL should be.
    """
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or _UNSAFE.search(value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def with_next(path: str, next_path: str, **extra: str) -> str:
    """``path`` with ``next`` (and ``extra``) in its query string."""
    query = {"next": next_path, **extra} if next_path != "/" else dict(extra)
    return f"{path}?{urlencode(query)}" if query else path


# --- pages --------------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1b1b1b}a,button{font-size:1rem}button{padding:.4rem .8rem;"
    "margin:.2rem 0}li{margin:.4rem 0}.note{color:#444}"
)


def page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    """A whole HTML document around ``body`` (already escaped HTML)."""
    document = (
        '<!doctype html>\n<html lang="en-GB">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} - Hallpass</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
    # No caching: pages carry CSRF tokens and who is signed in. Not framed by another site.
    return HTMLResponse(
        document,
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def refusal_page(
    title: str, detail: str, *, status: int, sign_in_again: str | None
) -> HTMLResponse:
    """A sign-in that did not work: what happened and the way back in."""
    again = f'<p><a href="{escape(sign_in_again)}">Sign in again</a></p>' if sign_in_again else ""
    return page(title, f"<p>{escape(detail)}</p>\n{again}", status=status)


@dataclass(frozen=True)
class WayIn:
    """One way to sign in shown on the sign-in page."""

    label: str
    href: str


@dataclass(frozen=True)
class SignedIn:
    """Who the browser is signed in as, for the sign-in page's sign-out button."""

    who: str
    csrf: str


def sign_in_page(ways: Sequence[WayIn], signed_in: SignedIn | None) -> HTMLResponse:
    if ways:
        items = "\n".join(
            f'<li><a href="{escape(way.href)}">{escape(way.label)}</a></li>' for way in ways
        )
        listing = f'<ul aria-label="Ways to sign in">\n{items}\n</ul>'
    else:
        listing = (
            '<p class="note">No way of signing in with a browser is set up here. The school\'s '
            "IT lead adds one in the identity file (a <code>sign_in</code> section).</p>"
        )
    body = "<p>Choose how you sign in.</p>\n" + listing
    if signed_in is not None:
        body += "\n" + sign_out_form(signed_in)
    return page("Sign in", body)


def sign_out_form(signed_in: SignedIn) -> str:
    return (
        f"<p>You are signed in as {escape(signed_in.who)}.</p>\n"
        '<form method="post" action="/auth/sign-out">\n'
        f'<input type="hidden" name="csrf_token" value="{escape(signed_in.csrf)}">\n'
        '<button type="submit">Sign out</button>\n</form>'
    )


@dataclass(frozen=True)
class DevPerson:
    """Someone the dev sign-in page can sign in as."""

    choice: str
    label: str


def dev_page(
    *,
    school: str,
    staff: Iterable[DevPerson],
    carers: Iterable[DevPerson],
    carers_note: str | None,
    csrf: str,
    next_path: str,
) -> HTMLResponse:
    def buttons(people: Iterable[DevPerson]) -> str:
        return "\n".join(
            f'<li><button type="submit" name="person" value="{escape(person.choice)}">'
            f"{escape(person.label)}</button></li>"
            for person in people
        )

    carer_list = buttons(carers)
    carer_section = (f'<ul aria-label="Carers">\n{carer_list}\n</ul>' if carer_list else "") + (
        f'\n<p class="note">{escape(carers_note)}</p>' if carers_note else ""
    )
    body = (
        '<p class="note">Development only: these sign-ins use the built-in dev issuer, which a '
        "production deployment refuses.</p>\n"
        '<form method="post" action="/auth/dev">\n'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">\n'
        f'<input type="hidden" name="next" value="{escape(next_path)}">\n'
        f'<input type="hidden" name="school" value="{escape(school)}">\n'
        f"<h2>Staff of {escape(school)}</h2>\n"
        f'<ul aria-label="Staff">\n{buttons(staff)}\n</ul>\n'
        f"<h2>Carers at {escape(school)}</h2>\n{carer_section}\n"
        "</form>\n"
        f'<form method="get" action="/auth/dev">\n<p><label for="school">Another school</label> '
        f'<input id="school" name="school" value="{escape(school)}">\n'
        f'<input type="hidden" name="next" value="{escape(next_path)}">\n'
        '<button type="submit">Show</button></p>\n</form>'
    )
    return page("Dev sign-in", body)


@dataclass(frozen=True)
class SchoolChoice:
    """One school the signed-in person may act for, on the chooser."""

    school: str
    # The school the browser acts for now.
    chosen: bool


def school_page(
    choices: Sequence[SchoolChoice], *, signed_in: SignedIn, next_path: str, carer: bool
) -> HTMLResponse:
    """The chooser: one button per school, posted with the session's CSRF token."""
    if choices:
        items = "\n".join(
            f'<li><button type="submit" name="school" value="{escape(choice.school)}"'
            + (' aria-current="true">' if choice.chosen else ">")
            + escape(choice.school)
            + ("</button> (chosen now)</li>" if choice.chosen else "</button></li>")
            for choice in choices
        )
        body = (
            "<p>You may act for more than one school. Choose the one to act for now; you can "
            "come back here to change it.</p>\n"
            '<form method="post" action="/auth/school">\n'
            f'<input type="hidden" name="csrf_token" value="{escape(signed_in.csrf)}">\n'
            f'<input type="hidden" name="next" value="{escape(next_path)}">\n'
            f'<ul aria-label="Your schools">\n{items}\n</ul>\n</form>'
        )
    elif carer:
        body = (
            '<p class="note">Your account is not linked to any child\'s record yet. Sign in '
            "with the address the school holds for you, or ask the school for an invitation "
            "code.</p>"
        )
    else:
        body = '<p class="note">Your account does not name any school you may act for.</p>'
    return page("Choose a school", body + "\n" + sign_out_form(signed_in))
