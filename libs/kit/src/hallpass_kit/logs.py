"""Logs: one line per request, and every line of a request carrying its request id.

``configure_logging`` is called by whatever starts a process (the CLI, the ASGI modules); the
request lines come from ``RequestLogMiddleware``, which the kit's ``protect()`` installs on every
app. uvicorn's own access log is switched off: it knows neither the request id, the caller nor
the route, and a second line per request would only double the volume.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hallpass_kit.metrics import UNMATCHED_ROUTE, observe_request
from hallpass_kit.settings import CommonSettings

request_logger = logging.getLogger("hallpass.requests")

# The id of the request being served, for every log line written while serving it (an unhandled
# error's traceback included), whichever thread writes it: the thread pool copies context.
current_request_id: ContextVar[str | None] = ContextVar("hallpass_request_id", default=None)

# Probes and scrapes come every few seconds; their lines are DEBUG so they do not bury requests.
_QUIET_PATHS = ("/healthz", "/readyz", "/metrics")

# Attributes every LogRecord has; anything else on a record was given as ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record that does not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


_HANDLER_NAME = "hallpass"


def configure_logging(common: CommonSettings, *, stream: IO[str] | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as JSON lines or text, at ``log_level``.

    Safe to call again (each service's ASGI module and the CLI may both call it): the handler it
    installed before is replaced, never added twice.
    """
    level = logging.getLevelNamesMapping()[common.log_level]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if common.log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    # Libraries (botocore, httpx, alembic) say a lot at INFO; ours is what an operator reads.
    root.setLevel(level if level == logging.DEBUG else max(level, logging.WARNING))
    logging.getLogger("hallpass").setLevel(level)

    # uvicorn installs handlers of its own before it imports the app; its records go through
    # ours instead, and its access log gives way to the request lines.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(level)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


_RECORD_KEY = "hallpass.request_record"


@dataclass
class _RequestRecord:
    """What the request reached, filled in by the innermost app that saw it."""

    service: str
    route: str | None = None

    def reached(self, scope: Scope, service: str) -> None:
        if self.route is not None:
            return
        route = scope.get("route")
        if isinstance(route, BaseRoute):
            path = getattr(route, "path", None)
            if isinstance(path, str):
                self.route = path
                self.service = service


def note_route(scope: Scope, service: str, route: str) -> None:
    """Say which route a request reached, for an app below the request log that is no FastAPI
    route (the proxy's forwarding, mounted per service prefix)."""
    record: _RequestRecord | None = scope.get(_RECORD_KEY)
    if record is not None and record.route is None:
        record.route = route
        record.service = service


class RequestLogMiddleware:
    """One log line and one metrics observation per request.

    The line has the request id, the subject (the authenticated principal's actor, never the
    token), the school, method, route template, status and duration. Under the all-in-one gateway
    a request passes this middleware twice (gateway, then service): the outer one writes the line,
    the inner one only says which service and route the request reached.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outer: _RequestRecord | None = scope.get(_RECORD_KEY)
        if outer is not None:
            try:
                await self.app(scope, receive, send)
            finally:
                outer.reached(scope, self.service)
            return

        record = _RequestRecord(service=self.service)
        scope[_RECORD_KEY] = record
        # Shared by every copy of the scope made further in, so the principal that the
        # authentication dependency keeps on request.state is seen here.
        state: dict[str, Any] = scope.setdefault("state", {})
        request_id = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None
        )
        token = current_request_id.set(request_id)
        status = 500  # what the server answers when the app raises before responding
        started = time.perf_counter()

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            seconds = time.perf_counter() - started
            record.reached(scope, self.service)
            route = record.route or UNMATCHED_ROUTE
            method: str = scope["method"]
            observe_request(
                service=record.service, method=method, route=route, status=status, seconds=seconds
            )
            principal = state.get("principal")
            subject = getattr(principal, "actor", None)
            school = getattr(principal, "school", None) or None
            duration_ms = round(seconds * 1000, 1)
            path: str = scope.get("path", "")
            request_logger.log(
                logging.DEBUG if path.endswith(_QUIET_PATHS) else logging.INFO,
                "%s %s %s %.1f ms",
                method,
                route,
                status,
                duration_ms,
                extra={
                    "request_id": request_id,
                    "service": record.service,
                    "subject": subject,
                    "school": school,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
            current_request_id.reset(token)
