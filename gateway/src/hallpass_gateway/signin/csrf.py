"""The session cookie at work: a signed-in browser's requests reach the services as a bearer
token's would, and only the site's own pages can make them change anything.

A cookie is sent by the browser whoever made the page that asks, so a request the cookie
authenticates and that changes something (POST, PUT, PATCH, DELETE) must also carry the session's
CSRF token (``X-CSRF-Token``, or ``csrf_token`` in a form) and, when the browser says where it
comes from (``Origin``, ``Sec-Fetch-Site``), come from this site. A request with its own
``Authorization`` is a bearer-token client and is left exactly as it is.

A browser cannot name the school it acts for (``X-Hallpass-School``), so the session remembers
the one chosen at ``/auth/school`` and says it for the browser; a page a person of several
schools opens before choosing one sends the browser to choose, and back.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Collection, Sequence
from urllib.parse import parse_qs, quote, urlsplit

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hallpass_gateway.ratelimit import peer_is_trusted
from hallpass_gateway.settings import TrustedNetwork
from hallpass_gateway.signin.pages import prefers_html
from hallpass_gateway.signin.session import SESSION_COOKIE, BrowserSession, CookieSealer
from hallpass_kit.auth import Principal, TokenVerifier
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.errors import Unauthenticated
from hallpass_kit.limits import send_problem

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A form carrying its CSRF token is read here before being passed on; a sign-in form is tiny.
# A larger body sends the token in the header instead.
MAX_FORM_BYTES = 64 * 1024
SIGN_IN_PATH = "/auth/sign-in"
SCHOOL_PATH = "/auth/school"
# The kit's refusal of a request by a person of several schools that names none.
SCHOOL_NOT_CHOSEN = "school_not_chosen"
# A refusal is a short problem+json; a longer 400 is passed on unread.
MAX_REFUSAL_BYTES = 16 * 1024
# The gateway's own sign-in routes read the cookies themselves.
AUTH_PREFIX = "/auth/"
_FORM = "application/x-www-form-urlencoded"
# "none": the person typed the address or used a bookmark; nothing else may act for them.
_SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def request_origin(scope: Scope, trusted_proxies: Sequence[TrustedNetwork]) -> str:
    """This site's origin as the browser sees it (through a trusted proxy's X-Forwarded-*)."""
    headers = Headers(scope=scope)
    trusted = peer_is_trusted(scope, trusted_proxies)
    scheme = (trusted and headers.get("x-forwarded-proto")) or scope.get("scheme", "http")
    host = (trusted and headers.get("x-forwarded-host")) or headers.get("host", "")
    return f"{scheme.split(',')[0].strip()}://{host.split(',')[0].strip()}".lower()


def same_site(
    scope: Scope, public_origin: str | None, trusted_proxies: Sequence[TrustedNetwork]
) -> bool:
    """Whether what the browser says of the request's source (when it says) is this site."""
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in _SAME_SITE_FETCHES:
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    allowed = {request_origin(scope, trusted_proxies)}
    if public_origin is not None:
        allowed.add(public_origin)
    return origin.strip().lower() in allowed


def tokens_match(offered: str | None, expected: str) -> bool:
    return offered is not None and hmac.compare_digest(offered.encode(), expected.encode())


def is_form(headers: Headers) -> bool:
    return headers.get("content-type", "").split(";")[0].strip().lower() == _FORM


def form_field(body: bytes, name: str) -> str | None:
    try:
        values = parse_qs(body.decode("utf-8"), keep_blank_values=True).get(name)
    except (UnicodeDecodeError, ValueError):
        return None
    return values[0] if values else None


async def read_form(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole body of a form, or None when it is longer than ``limit``; and whether the
    caller went away meanwhile."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, True
        body += message.get("body", b"")
        if len(body) > limit:
            return None, False
        if not message.get("more_body", False):
            return bytes(body), False


def multipart_boundary(headers: Headers) -> bytes | None:
    """The boundary of a ``multipart/form-data`` body (a form with a file), if it is one."""
    kind, _, parameters = headers.get("content-type", "").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "boundary" and 0 < len(value.strip().strip('"')) <= 70:
            return value.strip().strip('"').encode("latin-1", "replace")
    return None


async def first_part_field(
    receive: Receive, boundary: bytes, name: str
) -> tuple[str | None, Receive]:
    """The value of ``name`` when it is the first field of a multipart form, and a ``receive``
    that hands the app the whole body still.

    A form with a file cannot be read whole before the app sees it (it may be large), and a
    browser sends a form's fields in the page's order: the console's forms put the CSRF token
    first, so only the body's beginning is read here.
    """
    head = bytearray()
    done = False
    opening = b"--" + boundary + b"\r\n"
    closing = b"\r\n--" + boundary
    while not done and closing not in head[len(opening) :] and len(head) <= MAX_FORM_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, receive
        head += message.get("body", b"")
        done = not message.get("more_body", False)
    value: str | None = None
    if head.startswith(opening) and (end := head.find(closing, len(opening))) != -1:
        headers, _, content = bytes(head[len(opening) : end]).partition(b"\r\n\r\n")
        if f'name="{name}"'.encode() in headers.lower() and b"filename=" not in headers.lower():
            value = content.decode("utf-8", "replace")
    return value, _replaying_start(bytes(head), done, receive)


def _replaying_start(start: bytes, whole: bool, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body's first bytes already read, then the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": start, "more_body": not whole}
        return await receive()

    return replay


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the caller's own events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def verified(verifier: TokenVerifier, token: str) -> Principal:
    """The token's principal by the verifier bearer tokens go through (cached; I/O off the loop)."""
    principal = verifier.cached(token)
    if principal is None:
        principal = await run_in_threadpool(verifier.verify, token)
    return principal


def _here(scope: Scope) -> str:
    """The path and query the browser asked for, as it sent them."""
    raw: bytes | None = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"], safe="/:@!$&'()*+,;=-._~%")
    query: bytes = scope.get("query_string", b"")
    if query:
        path += "?" + query.decode("latin-1")
    return path


def sign_in_location(scope: Scope) -> str:
    """Where a browser that must sign in is sent: the sign-in page, and back here after."""
    return f"{SIGN_IN_PATH}?next={quote(_here(scope), safe='')}"


def school_location(scope: Scope) -> str:
    """Where a browser that must choose a school is sent: the chooser, and back here after."""
    return f"{SCHOOL_PATH}?next={quote(_here(scope), safe='')}"


class BrowserSessionMiddleware:
    """Turns a valid session cookie into the bearer token it holds, checks CSRF on changes, and
    sends a browser that is not signed in to the sign-in page instead of a 401."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sealer: CookieSealer,
        verifier: TokenVerifier,
        public_origin: str | None,
        trusted_proxies: Collection[TrustedNetwork],
    ) -> None:
        self.app = app
        self.sealer = sealer
        self.verifier = verifier
        self.public_origin = public_origin
        self.trusted_proxies = list(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(AUTH_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method: str = scope["method"]
        if method in ("GET", "HEAD") and prefers_html(headers.get("accept")):
            send = _signing_in_instead_of_401(scope, send)
        if "authorization" in headers:
            await self.app(scope, receive, send)  # a bearer-token client: untouched
            return
        cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        if cookie is None:
            await self.app(scope, receive, send)
            return
        session = await self._session(cookie)
        if session is None:
            # Ended (the token expired) or not ours: the browser forgets it, the request goes on
            # as anyone's without a token would.
            await self.app(scope, receive, _forgetting_session(send))
            return
        if method in UNSAFE_METHODS:
            allowed, receive = await self._csrf_checked(scope, receive, headers, session)
            if not allowed:
                await send_problem(
                    scope,
                    receive,
                    send,
                    status=403,
                    code="csrf_failed",
                    title="Not allowed",
                    detail=(
                        "A change made with the session cookie must come from Hallpass's own "
                        f"pages and carry the session's CSRF token (header X-CSRF-Token, or the "
                        f"form field {CSRF_FIELD}; GET /auth/session gives it). Nothing was "
                        "changed."
                    ),
                )
                return
        added = [(b"authorization", b"Bearer " + session.token.encode("latin-1"))]
        if session.school is not None and SCHOOL_HEADER.lower() not in headers:
            # What the browser cannot say itself; a request naming its school keeps its own.
            added.append((SCHOOL_HEADER.lower().encode(), session.school.encode("utf-8")))
        if method in ("GET", "HEAD") and prefers_html(headers.get("accept")):
            send = _choosing_school_instead_of_400(scope, send)
        # The console's pages put the session's CSRF token in their forms.
        state = {**scope.get("state", {}), "browser_session": session}
        scope = {**scope, "headers": [*scope["headers"], *added], "state": state}
        await self.app(scope, receive, send)

    async def _session(self, cookie: str) -> BrowserSession | None:
        session = self.sealer.open_session(cookie)
        if session is None:
            return None
        try:
            await verified(self.verifier, session.token)
        except Unauthenticated:
            return None
        # An identity provider that cannot be asked for its keys right now (503) is not the
        # end of the session: the service says so to the browser, and the session stays.
        return session

    async def _csrf_checked(
        self, scope: Scope, receive: Receive, headers: Headers, session: BrowserSession
    ) -> tuple[bool, Receive]:
        if not same_site(scope, self.public_origin, self.trusted_proxies):
            return False, receive
        offered = headers.get(CSRF_HEADER)
        if offered is None and is_form(headers):
            body, gone = await read_form(receive, MAX_FORM_BYTES)
            if body is None:
                return False, receive
            receive = replaying(body, receive)
            if not gone:
                offered = form_field(body, CSRF_FIELD)
        elif offered is None and (boundary := multipart_boundary(headers)) is not None:
            offered, receive = await first_part_field(receive, boundary, CSRF_FIELD)
        return tokens_match(offered, session.csrf), receive


def _signing_in_instead_of_401(scope: Scope, send: Send) -> Send:
    """A browser's page would answer 401: send it to sign in (303), and back here after."""
    replaced = False

    async def sending(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and message["status"] == 401:
            replaced = True
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() == b"set-cookie"]
            await send(_redirect(sign_in_location(scope), kept))
            return
        if replaced and message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(message)

    return sending


def _redirect(location: str, kept: list[tuple[bytes, bytes]]) -> Message:
    """A 303 to ``location``, keeping the cookies the answer it replaces was setting."""
    return {
        "type": "http.response.start",
        "status": 303,
        "headers": [
            *kept,
            (b"location", location.encode("latin-1")),
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
        ],
    }


def _is_school_not_chosen(body: bytes) -> bool:
    try:
        problem = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(problem, dict) and problem.get("code") == SCHOOL_NOT_CHOSEN


def _choosing_school_instead_of_400(scope: Scope, send: Send) -> Send:
    """A browser's page would answer 400 ``school_not_chosen``: send it to choose the school
    (303), and back here after. Any other 400 reaches the browser as it was."""
    held: Message | None = None
    body = bytearray()

    async def sending(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if message["status"] == 400 and content_type.startswith(b"application/problem+json"):
                held = message  # read the refusal before deciding what the browser sees
                return
            await send(message)
            return
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        body.extend(message.get("body", b""))
        more = message.get("more_body", False)
        if more and len(body) <= MAX_REFUSAL_BYTES:
            return
        start, held = held, None
        if not more and _is_school_not_chosen(bytes(body)):
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() == b"set-cookie"]
            await send(_redirect(school_location(scope), kept))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(start)
        await send({"type": "http.response.body", "body": bytes(body), "more_body": more})

    return sending


def _forgetting_session(send: Send) -> Send:
    expired = (
        f"{SESSION_COOKIE}=; expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Max-Age=0; "
        "Path=/; SameSite=lax; Secure"
    ).encode("latin-1")

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"set-cookie", expired)],
            }
        await send(message)

    return sending
