"""Proxy mode: the gateway in front of services that run as their own processes.

Each prefix (``/consent``, ``/media``, ``/comms``) is forwarded to its service's base URL
(``HALLPASS_CONSENT_URL``…) over a pool of keep-alive connections, one pool per service, opened
when the gateway starts and closed when it stops. Bodies stream both ways a chunk at a time: an
upload or a zip download never sits whole in the gateway's memory. An upstream that does not
answer in time is a 504, one that cannot be reached a 503 with Retry-After; both are problem+json
like every other refusal, and nothing an upstream does makes the gateway answer 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from hallpass_gateway.app import (
    GATEWAY_DESCRIPTION,
    GATEWAY_TITLE,
    GATEWAY_VERSION,
    SERVICES,
    gateway_openapi,
    gateway_operation_id,
    merge_openapi,
    public_router,
    service_name,
)
from hallpass_gateway.ratelimit import RateLimitMiddleware, RateLimits, peer_is_trusted
from hallpass_gateway.settings import GatewaySettings
from hallpass_gateway.signin import add_browser_sign_in, add_sign_in_routes
from hallpass_gateway.web import add_web_pages
from hallpass_kit.app import AllowedOriginsMiddleware, RequestIdMiddleware
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient, service_client
from hallpass_kit.errors import ProblemDetail, install_error_handlers, problem_response
from hallpass_kit.limits import UnhandledErrorMiddleware, send_problem
from hallpass_kit.logs import RequestLogMiddleware, note_route
from hallpass_kit.metrics import metrics_endpoint
from hallpass_kit.route_index import index_routes
from hallpass_kit.settings import CommonSettings

logger = logging.getLogger("hallpass.gateway")

# Seconds a caller is asked to wait when a service cannot be reached: a restarting replica is
# usually back within a few seconds.
UPSTREAM_RETRY_AFTER = 2
# ... and when every pooled connection to a service is busy.
POOL_RETRY_AFTER = 1

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded. Host is set afresh for
# the upstream (the caller's is passed on as X-Forwarded-Host); Expect is answered by the
# gateway's own server, which asks for the body only when the proxy reads it.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_FORWARDED_UP = _HOP_BY_HOP | {
    b"host",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
}
# The gateway's own server writes its Date and Server; two of each would confuse caches.
_NOT_FORWARDED_DOWN = _HOP_BY_HOP | {b"date", b"server"}


class _ClientGone(Exception):
    """The caller hung up while its request body was being forwarded."""


@dataclass
class Upstream:
    """One service behind the gateway: where it answers and the pooled client that reaches it."""

    name: str
    prefix: str
    base_url: str
    client: httpx.AsyncClient | None = None

    def connected(self) -> httpx.AsyncClient:
        if self.client is None:
            raise RuntimeError("the gateway's lifespan has not started: no upstream connections")
        return self.client


def _connection_tokens(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    # Headers a Connection header names are hop-by-hop too (RFC 9110 §7.6.1).
    return frozenset(
        token.strip().lower()
        for key, value in headers
        if key == b"connection"
        for token in value.split(b",")
        if token.strip()
    )


def _upstream_path(scope: Scope, prefix: str) -> str:
    """The path the service sees: the request's, less the gateway's prefix, still encoded."""
    raw: bytes | None = scope.get("raw_path")
    encoded_prefix = prefix.encode()
    if raw and raw.startswith(encoded_prefix + b"/"):
        return raw[len(encoded_prefix) :].decode("latin-1")
    # No raw path (some servers), or a prefix spelled with escapes: rebuild from the decoded one.
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    remaining = path[len(root_path) :] if root_path and path.startswith(root_path) else path
    return quote(remaining, safe="/:@!$&'()*+,;=-._~")


def forwarded_headers(scope: Scope, *, trusted: bool) -> list[tuple[bytes, bytes]]:
    """The caller's headers for the upstream: hop-by-hop ones dropped, X-Forwarded-* set.

    X-Forwarded-* from the caller are kept (and extended) only when the caller is a trusted
    proxy; from anyone else they are the caller's own claims and are replaced.
    """
    incoming: list[tuple[bytes, bytes]] = scope["headers"]
    dropped = _NOT_FORWARDED_UP | _connection_tokens(incoming)
    headers = [(key, value) for key, value in incoming if key not in dropped]

    def first(name: bytes) -> bytes | None:
        return next((value for key, value in incoming if key == name), None)

    peer = scope.get("client")
    peer_address = (peer[0] if peer else "unknown").encode("latin-1")
    chain = b", ".join(value for key, value in incoming if key == b"x-forwarded-for")
    forwarded_for = chain + b", " + peer_address if trusted and chain else peer_address
    proto = (first(b"x-forwarded-proto") if trusted else None) or scope["scheme"].encode()
    host = (first(b"x-forwarded-host") if trusted else None) or first(b"host")
    headers.append((b"x-forwarded-for", forwarded_for))
    headers.append((b"x-forwarded-proto", proto))
    if host is not None:
        headers.append((b"x-forwarded-host", host))
    return headers


def _has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"transfer-encoding":
            return True
        if key == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    # Read from the server only as fast as the upstream takes it: the server stops reading the
    # socket while nobody asks, so a slow service slows the uploader instead of filling memory.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


class UpstreamProxy:
    """The ASGI app mounted at one service's prefix: forwards each request to that service."""

    def __init__(self, upstream: Upstream, settings: GatewaySettings) -> None:
        self.upstream = upstream
        self.trusted_proxies = list(settings.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        note_route(scope, "gateway", self.upstream.prefix)
        client = self.upstream.connected()
        trusted = peer_is_trusted(scope, self.trusted_proxies)
        path = _upstream_path(scope, self.upstream.prefix)
        query: bytes = scope.get("query_string", b"")
        url = self.upstream.base_url + path + (("?" + query.decode("latin-1")) if query else "")
        request = client.build_request(
            scope["method"],
            url,
            headers=forwarded_headers(scope, trusted=trusted),
            content=_request_body(receive) if _has_body(scope) else None,
        )
        try:
            response = await client.send(request, stream=True)
        except _ClientGone:
            return
        except httpx.TimeoutException as exc:
            await self._refuse_timeout(scope, receive, send, exc)
            return
        except httpx.TransportError as exc:
            await self._refuse_unreachable(scope, receive, send, exc)
            return
        try:
            await self._relay(response, send)
        finally:
            await response.aclose()

    async def _relay(self, response: httpx.Response, send: Send) -> None:
        raw_headers = response.headers.raw
        dropped = _NOT_FORWARDED_DOWN | _connection_tokens(raw_headers)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                # Redirects (S3 presigned links) pass through as they are: the proxy never
                # follows one, so the caller sees the service's Location.
                "headers": [(k.lower(), v) for k, v in raw_headers if k.lower() not in dropped],
            }
        )
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            # Half the response is out: the status cannot change now. Ending here without the
            # last chunk makes the server close the connection, so the caller sees the body was
            # cut short rather than a complete but truncated file.
            logger.warning(
                "%s stopped sending mid-response (%s); connection to the caller closed",
                self.upstream.name,
                type(exc).__name__,
            )
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _refuse_timeout(
        self, scope: Scope, receive: Receive, send: Send, exc: httpx.TimeoutException
    ) -> None:
        name = self.upstream.name
        if isinstance(exc, httpx.PoolTimeout):
            logger.warning("every connection to %s is busy; request refused", name)
            await send_problem(
                scope,
                receive,
                send,
                status=503,
                code="gateway_busy",
                title="Service unavailable",
                detail=f"Every connection to the {name} service is busy; try again shortly.",
                headers={"Retry-After": str(POOL_RETRY_AFTER)},
            )
            return
        if isinstance(exc, httpx.ConnectTimeout):
            await self._refuse_unreachable(scope, receive, send, exc)
            return
        logger.warning("%s did not answer in time (%s)", name, type(exc).__name__)
        await send_problem(
            scope,
            receive,
            send,
            status=504,
            code="upstream_timeout",
            title="Gateway timeout",
            detail=(
                f"The {name} service did not answer in time. A change may or may not have been "
                "made: retry with the same Idempotency-Key, or check before repeating it."
            ),
        )

    async def _refuse_unreachable(
        self, scope: Scope, receive: Receive, send: Send, exc: httpx.TransportError
    ) -> None:
        name = self.upstream.name
        logger.warning("%s cannot be reached (%s: %s)", name, type(exc).__name__, exc)
        await send_problem(
            scope,
            receive,
            send,
            status=503,
            code="upstream_unavailable",
            title="Service unavailable",
            detail=f"The {name} service cannot be reached right now; try again shortly.",
            headers={"Retry-After": str(UPSTREAM_RETRY_AFTER)},
        )


# --- the merged OpenAPI document -----------------------------------------------------------------


@dataclass
class _FetchedSpec:
    document: dict[str, Any] | None = None
    fetched_at: float = 0.0
    failed_at: float | None = None


@dataclass
class UpstreamSpecs:
    """Each upstream's /openapi.json, fetched when first asked for and kept.

    A spec that could not be fetched is asked for again after ``retry_seconds``; one that was is
    refreshed after ``refresh_seconds``, and kept if the refresh fails. Meanwhile the gateway
    answers with what it has.
    """

    upstreams: Mapping[str, Upstream]
    retry_seconds: float
    refresh_seconds: float
    specs: dict[str, _FetchedSpec] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _due(self, prefix: str, now: float) -> bool:
        fetched = self.specs.get(prefix)
        if fetched is None:
            return True
        if fetched.failed_at is not None and now - fetched.failed_at < self.retry_seconds:
            return False
        if fetched.document is None:
            return True
        return now - fetched.fetched_at >= self.refresh_seconds

    async def refresh(self) -> None:
        now = time.monotonic()
        due = [prefix for prefix in self.upstreams if self._due(prefix, now)]
        if not due:
            return
        # One fetch at a time per gateway: a burst of /openapi.json requests asks each
        # upstream once, not once per request.
        async with self._lock:
            now = time.monotonic()
            due = [prefix for prefix in self.upstreams if self._due(prefix, now)]
            await asyncio.gather(*(self._fetch(prefix) for prefix in due))

    async def _fetch(self, prefix: str) -> None:
        upstream = self.upstreams[prefix]
        fetched = self.specs.setdefault(prefix, _FetchedSpec())
        try:
            # The pool's own bounds: a service builds its document on first request, which
            # can take longer than a health probe is given.
            response = await upstream.connected().get(upstream.base_url + "/openapi.json")
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict) or "paths" not in document:
                raise ValueError("not an OpenAPI document")
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning(
                "the %s service's OpenAPI could not be fetched (%s: %s)",
                upstream.name,
                type(exc).__name__,
                exc,
            )
            fetched.failed_at = time.monotonic()
            return
        fetched.document = document
        fetched.fetched_at = time.monotonic()
        fetched.failed_at = None

    def known(self) -> dict[str, dict[str, Any]]:
        return {
            prefix: fetched.document
            for prefix in self.upstreams
            if (fetched := self.specs.get(prefix)) is not None and fetched.document is not None
        }


# --- the app -------------------------------------------------------------------------------------


class Readiness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ready"]
    upstreams: dict[str, Literal["ok"]]


class ProxyGateway(FastAPI):
    """The gateway in proxy mode: its own endpoints, and each service's prefix forwarded."""

    upstreams: dict[str, Upstream]
    upstream_specs: UpstreamSpecs
    dev_issuer: DevIssuer | None

    def openapi(self) -> dict[str, Any]:
        # Not cached on the app: the upstreams' documents arrive (and change) after start-up.
        specs = self.upstream_specs.known()
        document = merge_openapi(gateway_openapi(self), specs)
        missing = [self.upstreams[p].name for p in self.upstreams if p not in specs]
        if missing:
            document["info"]["description"] += (
                "\n\nNot shown for now (their services could not be asked): "
                + ", ".join(missing)
                + "."
            )
        return document


def _upstreams(common: CommonSettings) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = {}
    missing: list[str] = []
    for prefix in SERVICES:
        name = service_name(prefix)
        base_url: str | None = getattr(common, f"{name}_url", None)
        if not base_url:
            missing.append(f"HALLPASS_{name.upper()}_URL")
            continue
        upstreams[prefix] = Upstream(name=name, prefix=prefix, base_url=base_url.rstrip("/"))
    if missing:
        raise ValueError("proxy mode needs every service's address: set " + ", ".join(missing))
    return upstreams


def _verifier(common: CommonSettings) -> tuple[TokenVerifier, DevIssuer | None]:
    if common.uses_dev_issuer:
        # The same key file as the services' (a shared data dir): tokens the dev issuer signed
        # count against their subject here too, and the gateway publishes the key set.
        dev_issuer = DevIssuer.load_or_create(
            common.dev_signing_key_path, common.auth_issuer, common.auth_audience
        )
        return TokenVerifier(common, key_set=dev_issuer.key_set()), dev_issuer
    return TokenVerifier(common), None


def create_proxy_gateway(
    common: CommonSettings | None = None, gateway_settings: GatewaySettings | None = None
) -> ProxyGateway:
    """Proxy mode: forward each service's prefix to its own process (HALLPASS_CONSENT_URL…)."""
    common = common if common is not None else CommonSettings()
    settings = gateway_settings if gateway_settings is not None else GatewaySettings()
    upstreams = _upstreams(common)
    verifier, dev_issuer = _verifier(common)
    timeout = httpx.Timeout(
        connect=settings.upstream_connect_timeout_seconds,
        read=settings.upstream_read_timeout_seconds,
        write=settings.upstream_write_timeout_seconds,
        pool=settings.upstream_pool_timeout_seconds,
    )
    pool = httpx.Limits(
        max_connections=settings.upstream_max_connections,
        max_keepalive_connections=settings.upstream_max_keepalive_connections,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for upstream in upstreams.values():
                # No redirects followed, no environment proxies or .netrc: the gateway talks to
                # its own services directly and passes their answers on as they are.
                upstream.client = await stack.enter_async_context(
                    httpx.AsyncClient(
                        timeout=timeout, limits=pool, follow_redirects=False, trust_env=False
                    )
                )
            try:
                yield
            finally:
                for upstream in upstreams.values():
                    upstream.client = None
                if sign_in is not None:
                    await sign_in.aclose()

    gateway = ProxyGateway(
        title=GATEWAY_TITLE,
        version=GATEWAY_VERSION,
        description=GATEWAY_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=gateway_operation_id,
        # Served below from the upstreams' documents, which FastAPI's own route cannot await.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    index_routes(gateway)
    gateway.upstreams = upstreams
    gateway.dev_issuer = dev_issuer
    gateway.upstream_specs = UpstreamSpecs(
        upstreams=upstreams,
        retry_seconds=settings.openapi_retry_seconds,
        refresh_seconds=settings.openapi_refresh_seconds,
    )
    install_error_handlers(gateway)
    gateway.include_router(public_router(dev_issuer))
    sign_in = add_sign_in_routes(
        gateway,
        common=common,
        gateway_settings=settings,
        verifier=verifier,
        dev_issuer=dev_issuer,
        # The dev sign-in page lists the demo school's carers, asked of consent.
        consent=service_client("consent", caller="gateway", common=common)
        if dev_issuer is not None
        else None,
        # A carer's schools, asked of consent with the carer's own token.
        carer_links=ServiceClient(
            name="consent",
            base_url=upstreams["/consent"].base_url,
            timeout=common.service_timeout_seconds,
        ),
    )
    if sign_in is not None:
        add_web_pages(gateway, verifier)
    _add_operations_routes(gateway, settings)
    gateway.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for prefix, upstream in upstreams.items():
        gateway.mount(prefix, UpstreamProxy(upstream, settings), name=upstream.name)
    # No admission limit here, unlike all-in-one: a forwarded request holds no thread and no
    # database connection in the gateway, the pool bounds the calls to each service, and each
    # service sheds its own excess with 503 + Retry-After, which passes through.
    gateway.add_middleware(UnhandledErrorMiddleware)
    if settings.rate_limits_on(proxy_mode=True):
        gateway.add_middleware(RateLimitMiddleware, limits=RateLimits(settings, verifier))
    if common.cors_allow_origins:
        gateway.add_middleware(AllowedOriginsMiddleware, origins=common.cors_allow_origins)
    # A signed-in browser's cookie becomes its bearer token before the limits and services.
    add_browser_sign_in(gateway, sign_in)
    # One line per request here too (the service it went to, as its prefix); each service
    # writes its own with the route it reached.
    gateway.add_middleware(RequestLogMiddleware, service="gateway")
    gateway.add_middleware(RequestIdMiddleware)
    return gateway


def _add_operations_routes(gateway: ProxyGateway, settings: GatewaySettings) -> None:
    # Out of the schema: the merged document is the same in both modes, and what it describes is
    # the API; probes and the document itself are how it is run.
    @gateway.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        await gateway.upstream_specs.refresh()
        return JSONResponse(gateway.openapi())

    @gateway.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{gateway.title} API")

    @gateway.get("/readyz", include_in_schema=False, response_model=Readiness)
    async def readyz(request: Request) -> Readiness | JSONResponse:
        """Ready when every service answers its own /healthz."""
        answers = await asyncio.gather(
            *(
                _healthy(upstream, settings.readiness_timeout_seconds)
                for upstream in gateway.upstreams.values()
            )
        )
        problems = [
            ProblemDetail(code="upstream_unavailable", detail=reason, where=upstream.name)
            for upstream, reason in zip(gateway.upstreams.values(), answers, strict=True)
            if reason is not None
        ]
        if problems:
            return problem_response(
                request,
                status=503,
                code="upstream_unavailable",
                title="Service unavailable",
                detail="Not every service behind the gateway is answering.",
                problems=problems,
                headers={"Retry-After": str(UPSTREAM_RETRY_AFTER)},
            )
        return Readiness(
            status="ready",
            upstreams={upstream.name: "ok" for upstream in gateway.upstreams.values()},
        )


async def _healthy(upstream: Upstream, wait_seconds: float) -> str | None:
    """None when ``upstream`` answers /healthz with 200; else why not, in words."""
    try:
        response = await upstream.connected().get(
            upstream.base_url + "/healthz", timeout=wait_seconds
        )
    except httpx.TimeoutException:
        return f"{upstream.name} did not answer /healthz within {wait_seconds:g} s"
    except httpx.TransportError as exc:
        return f"{upstream.name} cannot be reached ({type(exc).__name__})"
    if response.status_code != 200:
        return f"{upstream.name} answered /healthz with {response.status_code}"
    return None
