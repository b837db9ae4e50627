"""Bounds every request meets before any endpoint runs: how many are served at once, how big a
body may be, and what an error nobody expected looks like.

All three are plain ASGI middleware so they cost nothing per request beyond a counter and a
header read, and so a refusal never reaches (or waits for) the thread pool or the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hallpass_kit.errors import problem_response

logger = logging.getLogger("hallpass.errors")

# Seconds a shed client is told to wait: long enough to let the queue drain, short enough that
# a person retrying by hand does not notice.
SHED_RETRY_AFTER = 1


class Admission:
    """How many requests this process serves at once; the rest are shed, never queued.

    Queued requests would each hold a socket and, once admitted, a thread and a database
    connection while their callers have already given up; a 503 with Retry-After at once keeps
    the admitted ones fast. A thread-safe counter rather than an asyncio semaphore: every service
    app in the process shares it, whatever event loop serves them.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


_admissions: dict[int, Admission] = {}
_admissions_lock = threading.Lock()


def process_admission(limit: int) -> Admission:
    """The one counter of this process for ``limit`` (all services in all-in-one mode share it)."""
    with _admissions_lock:
        admission = _admissions.get(limit)
        if admission is None:
            admission = _admissions[limit] = Admission(limit)
        return admission


async def send_problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with the same problem+json every handler gives, from outside the app's handlers."""
    response = problem_response(
        Request(scope), status=status, code=code, title=title, detail=detail, headers=headers
    )
    await response(scope, receive, send)


# Probes and scrapes are answered even when requests are shed: a balancer must see "ready" or
# not, and the metrics of an overload are most wanted during one.
_ALWAYS_ANSWERED = ("/healthz", "/readyz", "/metrics")


def _is_health(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return path.endswith(_ALWAYS_ANSWERED)


# Set while an admitted request is served: a call one service makes to another in the same
# process (all-in-one mode) is part of that request and is not counted, nor shed, again.
_admitted: ContextVar[bool] = ContextVar("hallpass_admitted", default=False)


class AdmissionMiddleware:
    """Sheds requests beyond the process's limit with 503 + Retry-After; health always answers."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_health(scope) or _admitted.get():
            await self.app(scope, receive, send)
            return
        if not self.admission.try_enter():
            await send_problem(
                scope,
                receive,
                send,
                status=503,
                code="overloaded",
                title="Service unavailable",
                detail="Too many requests are being served right now; try again shortly.",
                headers={"Retry-After": str(SHED_RETRY_AFTER)},
            )
            return
        token = _admitted.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _admitted.reset(token)
            self.admission.leave()


BodyLimits = Callable[[Scope], int]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def api_routes(app: Any) -> list[APIRoute]:
    """Every endpoint of ``app``, including those of included routers (which FastAPI keeps
    behind one included-router entry each in ``app.routes``)."""
    found: list[APIRoute] = []
    for route in app.router.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            found.extend(
                c.original_route for c in contexts() if isinstance(c.original_route, APIRoute)
            )
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def _route_path(scope: Scope) -> str:
    # Under a mount (the gateway), the path still carries the mount's prefix in root_path.
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path.removeprefix(root_path) if root_path and path.startswith(root_path) else path


def route_body_limits(app: Any, default: int, by_route: Mapping[str, int]) -> BodyLimits:
    """The body limit of whichever endpoint of ``app`` a request is for: ``default`` unless the
    endpoint is named in ``by_route``. Only those few endpoints are matched per request."""
    special: list[tuple[APIRoute, int]] | None = None

    def limit_for(scope: Scope) -> int:
        nonlocal special
        if special is None:
            # Built on the first request: routers are all included by then.
            special = [(r, by_route[r.name]) for r in api_routes(app) if r.name in by_route]
        if not special:
            return default
        path = _route_path(scope)
        method = scope["method"]
        for route, limit in special:
            if route.methods and method in route.methods and route.path_regex.match(path):
                return limit
        return default

    return limit_for


class BodyLimitMiddleware:
    """Refuses a body over its endpoint's limit with 413, before it is read into memory.

    A declared Content-Length is refused at once; a chunked body is counted as it streams and the
    read fails (413) as soon as it passes the limit, so no endpoint ever holds more.
    """

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limits(scope)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await send_problem(
                scope,
                receive,
                send,
                status=413,
                code="payload_too_large",
                title="Payload too large",
                detail=f"This endpoint takes at most {limit} bytes per request.",
            )
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, because FastAPI re-raises those from a body read and
                    # turns anything else into a 400.
                    raise HTTPException(
                        413, f"This endpoint takes at most {limit} bytes per request."
                    )
            return message

        await self.app(scope, counted, send)


class UnhandledErrorMiddleware:
    """A bug answers one problem+json 500 and one log line with the request id; nothing more.

    Starlette's own last-resort handler answers and then re-raises, so the server logs the error a
    second time (without the request id) and drops the keep-alive connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request = Request(scope)
            request_id = request.headers.get("x-request-id")
            logger.exception(
                "unhandled error on %s %s (request id %s)",
                scope.get("method"),
                request.url.path,
                request_id,
            )
            if started:
                # Half a response is out; the server closes the connection, as it must.
                return
            await send_problem(
                scope,
                receive,
                send,
                status=500,
                code="internal_error",
                title="Internal error",
                detail=(
                    "Something went wrong on our side; the request id identifies it in the logs."
                ),
            )
