"""Typed domain errors and the one place that turns them into RFC 9457 problem+json."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hallpass_kit.fields import unstorable_text_error

logger = logging.getLogger("hallpass.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemDetail(BaseModel):
    """One thing wrong with a request: what, where and which policy rule."""

    model_config = ConfigDict(extra="forbid")

    code: str
    detail: str
    where: str | None = None
    rule: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem document, extended with a stable ``code`` and the rule that applies."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    code: str
    rule: str | None = None
    problems: list[ProblemDetail] = []
    instance: str | None = None
    request_id: str | None = None


class HallpassError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        rule: str | None = None,
        problems: Sequence[ProblemDetail] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.rule = rule
        self.problems = list(problems)
        # Seconds a client should wait before trying again (sent as Retry-After).
        self.retry_after = retry_after


class BadRequest(HallpassError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthenticated(HallpassError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(HallpassError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(HallpassError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(HallpassError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(HallpassError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(HallpassError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class Unprocessable(HallpassError):
    """The request is well formed but a rule or a reference in it cannot be honoured."""

    status, code, title = 422, "unprocessable", "Cannot be processed"


class ServiceUnavailable(HallpassError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    rule: str | None = None,
    problems: Sequence[ProblemDetail] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=f"https://hallpass.school/problems/{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        rule=rule,
        problems=list(problems),
        instance=request.url.path,
        request_id=request.headers.get("x-request-id"),
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        head, rest = parts[0], parts[1:]
        return f"{head}." + ".".join(rest) if rest else head
    return ".".join(parts)


RefusalHook = Callable[[Any], None]


def _hallpass_error_handler(
    on_refusal: RefusalHook | None,
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HallpassError)
        if on_refusal is not None and getattr(exc, "principal", None) is not None:
            await run_in_threadpool(on_refusal, exc)
        return await _hallpass_error(request, exc)

    return handle


async def _hallpass_error(request: Request, exc: HallpassError) -> JSONResponse:
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        rule=exc.rule,
        problems=exc.problems,
        headers=headers or None,
    )


# A body with thousands of mistakes gets the first few and a count: the answer stays small
# whatever the request was.
MAX_LISTED_PROBLEMS = 10


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = [_problem_detail(err) for err in errors[:MAX_LISTED_PROBLEMS]]
    detail = "The request does not match the API's schema."
    if len(errors) > MAX_LISTED_PROBLEMS:
        detail += (
            f" {len(errors)} problems were found; the first {MAX_LISTED_PROBLEMS} are listed"
            f" and {len(errors) - MAX_LISTED_PROBLEMS} more were left out."
        )
    return problem_response(
        request,
        status=422,
        code="invalid_request",
        title="Invalid request",
        detail=detail,
        problems=problems,
    )


def _problem_detail(err: Mapping[str, Any]) -> ProblemDetail:
    code, detail = str(err.get("type", "invalid")), str(err.get("msg", ""))
    value = err.get("input")
    if code == "string_pattern_mismatch" and isinstance(value, str):
        # Text patterns also exclude U+0000; say that rather than quote the regular expression.
        unstorable = unstorable_text_error(value)
        if unstorable is not None:
            code, detail = unstorable.type, unstorable.message()
    return ProblemDetail(code=code, detail=detail[:500], where=_where(err.get("loc", ()))[:500])


# Seconds a client is asked to wait when the database cannot answer right now.
DATABASE_RETRY_AFTER = 2
# What SQLite says when its write lock stayed taken past the busy timeout, or its file vanished.
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open",
    "disk i/o",
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot answer now (down, locked, timed out), as
    opposed to a bug in a statement, which stays a 500."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection came free
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    original = getattr(exc, "orig", exc)
    if isinstance(original, sqlite3.OperationalError):
        message = str(original).lower()
        return any(sign in message for sign in _SQLITE_UNAVAILABLE)
    # PostgreSQL: OperationalError is the connection, a lock or statement timeout, a
    # serialisation failure or a deadlock; InterfaceError a connection already closed.
    return isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        raise exc
    logger.warning(
        "database unavailable on %s %s (request id %s): %s",
        request.method,
        request.url.path,
        request.headers.get("x-request-id"),
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
    )
    return problem_response(
        request,
        status=503,
        code="database_unavailable",
        title="Service unavailable",
        detail="The database cannot answer right now; nothing was changed. Try again shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110: Allow lists them all).

    The router's 405 names only the methods of the first route whose path matched, so a path
    served by two endpoints (GET and PUT /v1/school) would advertise just one of them. Asking the
    router itself, method by method, keeps its own matching rules (converters, mounts).
    """
    base = {k: v for k, v in request.scope.items() if k in ("type", "path", "root_path", "app")}
    allowed = []
    for method in _METHODS:
        scope = {**base, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        401: "unauthenticated",
        403: "forbidden",
        413: "payload_too_large",
    }
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        request,
        status=exc.status_code,
        code=codes.get(exc.status_code, "http_error"),
        title=str(exc.detail) if isinstance(exc.detail, str) else "HTTP error",
        detail=str(exc.detail),
        headers=headers or None,
    )


def install_error_handlers(app: FastAPI, *, on_refusal: RefusalHook | None = None) -> None:
    """One handler for every error; ``on_refusal`` records refused accesses (audit).

    Errors nobody expected are answered by ``limits.UnhandledErrorMiddleware``, not here: an
    ``Exception`` handler would run inside Starlette's last-resort middleware, which re-raises.
    """
    app.add_exception_handler(HallpassError, _hallpass_error_handler(on_refusal))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,
        sqlalchemy.exc.DBAPIError,
        sqlite3.OperationalError,
    ):
        app.add_exception_handler(database_error, _database_error)


_DESCRIPTIONS = {
    400: "Bad request",
    401: "No valid bearer token",
    403: "Your role does not allow this",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    413: "Too large",
    415: "Send the body in the documented media type",
    422: "Invalid request or a rule forbids it",
    503: "Overloaded, or a service or database this depends on cannot answer; see Retry-After",
}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": Problem,
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in _DESCRIPTIONS.items()
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses an endpoint can give."""
    return {status: PROBLEM_RESPONSES[status] for status in statuses}
