"""What every service app shares: its context, request dependencies and the app factory."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi._compat import field_annotation_is_sequence
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hallpass_kit.audit import AuditChain
from hallpass_kit.auth import AccessRefused, CarerDirectory, Principal, Role, TokenVerifier
from hallpass_kit.clients import SCHOOL_HEADER
from hallpass_kit.db import Database, utcnow
from hallpass_kit.errors import (
    PROBLEM_RESPONSES,
    BadRequest,
    Forbidden,
    Unauthenticated,
    Unprocessable,
    install_error_handlers,
)
from hallpass_kit.limits import (
    AdmissionMiddleware,
    BodyLimitMiddleware,
    BodyLimits,
    UnhandledErrorMiddleware,
    process_admission,
    route_body_limits,
)
from hallpass_kit.logs import RequestLogMiddleware
from hallpass_kit.metrics import metrics_endpoint
from hallpass_kit.outbox import Dispatcher, Listener
from hallpass_kit.readiness import (
    ReadinessCheck,
    check_readiness,
    database_ready,
    refuse_unless_ready,
)
from hallpass_kit.route_index import index_routes
from hallpass_kit.settings import CommonSettings
from hallpass_kit.tables import KitTables

logger = logging.getLogger("hallpass")


@dataclass
class ServiceContext:
    """Everything a service's requests need, built once at start-up."""

    name: str
    database: Database
    tables: KitTables
    verifier: TokenVerifier
    dispatcher: Dispatcher
    audit: AuditChain
    run_background: bool = True
    # The one clock of the service: services and policies are handed the time, never read it.
    clock: Callable[[], dt.datetime] = utcnow
    # What /readyz checks besides the database, by name (the media store, the mail relay).
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    # Handlers for other services' events, wired up by whoever hosts both (the gateway).
    listens: list[Listener] = field(default_factory=list)
    # Where a carer who signed in with their own account finds their records (consent's own
    # table in consent, a call to consent elsewhere); None: carers' tokens name their record.
    carers: CarerDirectory | None = None

    def audit_refusal(self, exc: AccessRefused) -> None:
        # The request's own transaction is rolled back, so the refusal is kept in a fresh one.
        with self.database.session() as session:
            self.audit.append(
                session,
                actor=exc.principal.actor,
                school=exc.principal.school,
                action=exc.action,
                target=exc.target,
                outcome="refused",
                details={"code": exc.code, "status": exc.status},
            )


def context_of(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.hallpass
    return ctx


async def _context(request: Request) -> ServiceContext:
    return context_of(request)


# The cheap dependencies are async on purpose: a sync one costs a thread-pool hop per request.
ContextDep = Annotated[ServiceContext, Depends(_context)]


_READING_METHODS = frozenset({"GET", "HEAD"})


def get_session(request: Request) -> Iterator[Session]:
    # A GET only reads: its transaction never queues behind writers (SQLite) and may not write.
    read_only = request.method in _READING_METHODS
    with context_of(request).database.session(read_only=read_only) as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    with context_of(request).database.session() as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    with context_of(request).database.session(read_only=True) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a failed commit can never
# be reported to the client as success.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
# For a POST that only reads (a batch of decisions): no write lock, no waiting for writers.
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
# For a GET that records something: a download or a read of a family's mail is audited (E3, M8).
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]

bearer_scheme = HTTPBearer(
    auto_error=False, description="A JWT from the school's identity provider."
)


async def identified(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller as their token says, before a school is chosen or a carer's records are
    looked up: for the few routes a person reaches before that (a carer redeeming an
    invitation code, a person asking which schools they may act for)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("A bearer token is required.", rule="A1")
    verifier = context_of(request).verifier
    token = credentials.credentials
    # A token seen before is answered from memory; a new one is checked off the event loop, as
    # fetching the identity provider's keys may block.
    principal = verifier.cached(token)
    if principal is None:
        principal = await run_in_threadpool(verifier.verify, token)
    if principal.needs_carer_links:
        carers = context_of(request).carers
        if carers is not None:
            links = await run_in_threadpool(carers.links, principal, token)
            principal = principal.with_carers(links)
    request.state.principal = principal
    return principal


IdentifiedPrincipal = Annotated[Principal, Depends(identified)]


def carer_not_linked() -> Forbidden:
    """A carer signed in with an account no record is linked to yet: how to link it."""
    return Forbidden(
        "Your account is not linked to a carer's record yet: sign in with the email address the "
        "school holds for you, or redeem the invitation code the school sent "
        "(POST /consent/v1/me/invitations:redeem).",
        code="carer_not_linked",
        rule="A2",
    )


def named_school(principal: Principal, named: str | None) -> Principal:
    """``principal`` acting for the school ``named`` (``X-Hallpass-School``) when it names one:
    it must be among the principal's schools. Unchanged when it names none or the same one."""
    if named is None or named == principal.school:
        return principal
    if named not in principal.schools:
        raise Forbidden(
            f"You may not act for the school named in {SCHOOL_HEADER}.",
            code="school_not_allowed",
            rule="A1",
        )
    return principal.acting_for(named)


async def authenticated(request: Request, principal: IdentifiedPrincipal) -> Principal:
    """The caller acting for one school: the token's only school, or the one named in
    ``X-Hallpass-School`` among those the token grants (a service names any)."""
    named = request.headers.get(SCHOOL_HEADER)
    if principal.needs_school:
        principal = principal.for_school(_named_school(named))
    elif principal.needs_carer_links or (Role.parent in principal.roles and not principal.grants):
        # Before the school named: an unlinked carer is told how to link, whichever school
        # their app names.
        raise carer_not_linked()
    else:
        principal = named_school(principal, named)
        if not principal.school:
            raise BadRequest(
                f"You may act for more than one school: name one in {SCHOOL_HEADER} "
                f"({', '.join(sorted(principal.schools))}).",
                code="school_not_chosen",
                rule="A1",
            )
    request.state.principal = principal
    return principal


_SCHOOL_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def _named_school(school: str | None) -> str:
    # A service holding a token from client credentials names, per call, the school it acts for;
    # people's tokens carry their school and never get here.
    if school is None or not _SCHOOL_ID.match(school):
        raise Unauthenticated(
            f"A service token without a school must name one in {SCHOOL_HEADER}.",
            code="invalid_token",
            rule="A1",
        )
    return school


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]


def require_roles(*roles: Role) -> Any:
    """Dependency: the caller must hold at least one of ``roles``; refusals are audited."""
    allowed = frozenset(roles)

    async def check(request: Request, principal: CurrentPrincipal) -> Principal:
        if principal.has_any(allowed):
            return principal
        route = request.scope.get("route")
        raise AccessRefused(
            "Your role does not allow this.",
            principal=principal,
            action=f"refused:{getattr(route, 'name', request.url.path)}",
            target=request.url.path,
        )

    return Depends(check)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,100}$")


class RequestIdMiddleware:
    """Gives every request an id (kept from the caller when sane) and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope["headers"])
        incoming = next((v.decode("latin-1") for k, v in headers if k == b"x-request-id"), None)
        if incoming is None or not _REQUEST_ID.match(incoming):
            request_id = uuid.uuid4().hex
            headers = [(k, v) for k, v in headers if k != b"x-request-id"]
            headers.append((b"x-request-id", request_id.encode()))
            scope = {**scope, "headers": headers}
        else:
            request_id = incoming

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                out.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_id)


class BackgroundWorker(Protocol):
    """Something a service runs beside its dispatcher while the app is up (a mail sender)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


# Worked out on a route's first request and kept on the route itself, so it lives and dies with
# its app (routes compare by value, so they cannot key a dictionary, and an id() can be reused).
_SINGLE_VALUED = "_hallpass_single_valued_query"


def _single_valued_query_names(route: APIRoute) -> frozenset[str]:
    names: frozenset[str] | None = getattr(route, _SINGLE_VALUED, None)
    if names is None:
        names = frozenset(
            field.alias
            for field in _query_fields(route)
            if not field_annotation_is_sequence(field.field_info.annotation)
        )
        setattr(route, _SINGLE_VALUED, names)
    return names


def _query_fields(route: APIRoute) -> list[Any]:
    fields: list[Any] = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        fields.extend(dependant.query_params)
        pending.extend(dependant.dependencies)
    return fields


async def single_valued_query(request: Request) -> None:
    """Refuse a query parameter given twice where the API takes one value.

    Without this the last value silently wins (``?within_days=7&within_days=365``), and a caller
    cannot tell which one was used.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    seen: set[str] = set()
    repeated: set[str] = set()
    for name, _value in request.query_params.multi_items():
        (repeated if name in seen else seen).add(name)
    refused = repeated & _single_valued_query_names(route)
    if refused:
        names = ", ".join(sorted(refused))
        raise Unprocessable(
            f"Give each of these query parameters once: {names}.",
            code="repeated_query_parameter",
        )


def _operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def _health_router() -> APIRouter:
    # Deliberately public: load balancers probe it before anyone holds a token.
    health = APIRouter(tags=["health"])

    # async: answered on the event loop, so a thread pool busy with requests cannot delay it.
    @health.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "checked_at": utcnow().isoformat()}

    @health.get("/readyz", include_in_schema=False)
    async def readyz(context: ContextDep) -> dict[str, Any]:
        # Checks run on threads of their own and are bounded in time: never a hung probe.
        outcomes = await check_readiness(
            {
                "database": database_ready(context.database),
                **context.verifier.readiness(),
                **context.readiness,
            }
        )
        refuse_unless_ready(outcomes)
        return {"status": "ready", "checks": outcomes}

    # Public like the probes (docs/operations.md, "Metrics"): counts and timings, no personal data.
    health.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    return health


def _ping_router() -> APIRouter:
    ping = APIRouter(prefix="/v1", tags=["health"])

    @ping.get("/ping")
    def ping_authenticated(principal: CurrentPrincipal) -> dict[str, bool]:
        """Answers once the bearer token is verified; touches no data (a latency baseline)."""
        return {"pong": True}

    return ping


def create_service_app(
    *,
    context: ServiceContext,
    title: str,
    version: str,
    description: str,
    routers: Sequence[APIRouter],
    workers: Sequence[BackgroundWorker] = (),
    settings: CommonSettings | None = None,
    body_limits: Mapping[str, int] | None = None,
    events: Mapping[str, type[BaseModel]] | None = None,
) -> FastAPI:
    """A service app: authenticated routers, problem+json errors, background dispatcher.

    ``events`` (type -> payload model) are the events the service announces: documented in
    its OpenAPI ``webhooks`` section and delivered to subscribers as signed webhooks.

    ``workers`` start after the dispatcher and stop before it, only when the context runs
    background work. ``body_limits`` gives endpoints (by name) that take more than the default
    request body, such as uploads and imports.
    """
    settings = settings if settings is not None else CommonSettings()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started: list[BackgroundWorker] = []
        try:
            if context.run_background:
                context.dispatcher.start()
                for worker in workers:
                    worker.start()
                    started.append(worker)
            yield
        finally:
            for worker in reversed(started):
                await run_in_threadpool(worker.stop)
            await run_in_threadpool(context.dispatcher.stop)

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        responses={status: PROBLEM_RESPONSES[status] for status in (401, 413, 503)},
    )
    index_routes(app)
    app.state.hallpass = context
    install_error_handlers(app, on_refusal=context.audit_refusal)
    app.include_router(_health_router())
    for router in [*routers, _ping_router()]:
        app.include_router(
            router, dependencies=[Depends(authenticated), Depends(single_valued_query)]
        )
    # Imported here: the webhooks module builds on this one's dependencies.
    from hallpass_kit.webhooks import install_webhooks

    sender = install_webhooks(
        app,
        context,
        settings,
        events or {},
        dependencies=[Depends(authenticated), Depends(single_valued_query)],
    )
    workers = [*workers, sender]
    _document_problem_responses(app)
    protect(
        app,
        settings,
        route_body_limits(app, settings.max_request_bytes, body_limits or {}),
        service=context.name,
    )
    return app


def protect(
    app: FastAPI,
    settings: CommonSettings,
    body_limits: BodyLimits | None,
    *,
    service: str = "gateway",
) -> None:
    """The middleware every app runs, outermost first: request id, one log line and metrics per
    request, CORS, last-resort 500, load shedding, body limits."""
    if body_limits is not None:
        app.add_middleware(BodyLimitMiddleware, limits=body_limits)
    app.add_middleware(
        AdmissionMiddleware, admission=process_admission(settings.max_concurrent_requests)
    )
    app.add_middleware(UnhandledErrorMiddleware)
    if settings.cors_allow_origins:
        app.add_middleware(AllowedOriginsMiddleware, origins=settings.cors_allow_origins)
    app.add_middleware(RequestLogMiddleware, service=service)
    app.add_middleware(RequestIdMiddleware)


_CORS_ANSWERED = "hallpass.cors_answered"


class AllowedOriginsMiddleware(CORSMiddleware):
    """CORS for the browser origins in HALLPASS_CORS_ALLOW_ORIGINS (a school website's scripts).

    Credentials (the browser's cookies) are never allowed with "*": any site could then act as
    the signed-in person. Answered once per request, by the outermost app that has it (the
    all-in-one gateway, then not again by the service mounted in it).
    """

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_credentials="*" not in origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After", "Location", "Content-Disposition"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(_CORS_ANSWERED):
            await self.app(scope, receive, send)
            return
        scope[_CORS_ANSWERED] = True
        await super().__call__(scope, receive, send)


def _document_problem_responses(app: FastAPI) -> None:
    """Document the errors FastAPI itself answers as what they are on the wire: problem+json.

    FastAPI documents its own 422 as ``application/json`` HTTPValidationError while the handler
    answers problem+json, and leaves out the 400 it gives for a body it cannot decode at all.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                content = responses.get("422", {}).get("content", {})
                if content.get("application/json", {}).get("schema") == {
                    "$ref": "#/components/schemas/HTTPValidationError"
                }:
                    responses["422"] = _problem_response(422)
                if "application/json" in operation.get("requestBody", {}).get("content", {}):
                    responses.setdefault("400", _problem_response(400))
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in json.dumps(document.get("paths", {})):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_response(status: int) -> dict[str, Any]:
    entry = PROBLEM_RESPONSES[status]
    return {"description": entry["description"], "content": entry["content"]}
