"""Service-to-service calls: how media and comms ask the consent service.

A service never reads another's tables; it calls the other's public API. In all-in-one mode the
call goes in-process over ASGI (no socket, same code path as over the network); with services
apart it goes over HTTP to the service's base URL(s). Either way the callee authenticates the
caller like any other client, so its role checks and audit apply unchanged.

Over HTTP the connections are pooled and kept alive (one pool per client, shared by every thread
and one per event loop for coroutines). Several base URLs may be given (replicas): a replica that
refuses the connection is skipped for the next, as nothing was sent to it.

Any failure to get an answer (refused connection, timeout, a 5xx) becomes ``ServiceUnavailable``:
callers that decide about publishing must fail closed, never treat silence as "allowed".
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Mapping, MutableMapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import httpx
from joserfc.jwk import RSAKey
from starlette.types import ASGIApp

from hallpass_kit.auth import INTERNAL_ISSUER, DevIssuer, Role
from hallpass_kit.errors import ServiceUnavailable
from hallpass_kit.settings import CommonSettings, Environment

logger = logging.getLogger("hallpass.clients")

# The school a service token speaks for when the token itself names none (OAuth2 client
# credentials tokens are issued to the service, not per school).
SCHOOL_HEADER = "X-Hallpass-School"


class ServiceTokens(Protocol):
    """Bearer tokens that identify the calling service to another service, per school."""

    def token_for(self, school: str) -> str: ...


@dataclass
class DevServiceTokens:
    """Short-lived ``service`` tokens per school, signed by an issuer the callee trusts.

    In all-in-one mode that is the gateway's internal issuer, whose key exists only in memory;
    with services apart, the deployment's service key (``load_service_key``).
    """

    issuer: DevIssuer
    service: str
    ttl_seconds: int = 900
    _cache: dict[str, tuple[str, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def token_for(self, school: str) -> str:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(school)
            # Renewed with a minute to spare so a token never expires in flight.
            if cached is not None and cached[1] - 60 > now:
                return cached[0]
            token = self.issuer.issue(
                sub=f"service:{self.service}",
                school=school,
                roles=[Role.service],
                ttl_seconds=self.ttl_seconds,
            )
            self._cache[school] = (token, now + self.ttl_seconds)
            return token


class ClientCredentialsTokens:
    """An access token from the identity provider by OAuth2 client credentials (RFC 6749 4.4).

    One token serves every school (the school travels in ``X-Hallpass-School``); it is renewed a
    minute before it expires. A provider that cannot be reached fails the call closed.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._http = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def token_for(self, school: str) -> str:
        with self._lock:
            now = time.monotonic()
            if self._token is not None and self._token[1] - 60 > now:
                return self._token[0]
            token, lifetime = self._fetch()
            self._token = (token, now + lifetime)
            return token

    def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        try:
            response = self._http.post(
                self.token_url, data=form, auth=(self.client_id, self._client_secret)
            )
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, OSError, ValueError) as exc:
            raise ServiceUnavailable(
                "The identity provider did not issue this service a token.",
                code="service_token_unavailable",
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ServiceUnavailable(
                f"The identity provider refused this service a token ({response.status_code}).",
                code="service_token_unavailable",
            )
        expires_in = body.get("expires_in", 300)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
        return body["access_token"], max(lifetime, 61.0)

    def close(self) -> None:
        self._http.close()


def generate_service_key() -> dict[str, Any]:
    """A new private JWK for a deployment's services to sign their tokens to each other."""
    key = RSAKey.generate_key(
        2048, parameters={"kid": f"service-{int(time.time())}", "use": "sig", "alg": "RS256"}
    )
    return key.as_dict(private=True)


def load_service_key(common: CommonSettings) -> DevIssuer | None:
    """The deployment's service key (file or inline JWK), as the internal issuer; None if unset."""
    if common.service_key is not None:
        text = common.service_key.get_secret_value()
    elif common.service_key_file is not None:
        text = Path(common.service_key_file).read_text()
    else:
        return None
    try:
        key = RSAKey.import_key(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ValueError("the service key is not a private RSA JWK") from exc
    if not key.is_private:
        raise ValueError("the service key must be the private JWK (it signs service tokens)")
    return DevIssuer(key, INTERNAL_ISSUER, common.auth_audience)


def service_key(common: CommonSettings) -> DevIssuer | None:
    """The key services sign their tokens to each other with, when they run apart.

    The configured one (file or inline); else, outside production, one made once under the data
    dir, so services started apart on one machine trust each other with no set-up. Production
    without one has none: service calls then need client credentials, or fail closed.
    """
    configured = load_service_key(common)
    if configured is not None or common.env is Environment.production:
        return configured
    return DevIssuer.load_or_create(
        common.data_dir / "service-key.json", INTERNAL_ISSUER, common.auth_audience
    )


def service_tokens(common: CommonSettings, caller: str) -> ServiceTokens | None:
    """How ``caller`` proves who it is to other services, from the settings."""
    # Client credentials when they are set and no service key is: a configured key wins.
    if (
        common.service_token_url
        and common.service_client_id
        and common.service_client_secret
        and load_service_key(common) is None
    ):
        return ClientCredentialsTokens(
            token_url=common.service_token_url,
            client_id=common.service_client_id,
            client_secret=common.service_client_secret.get_secret_value(),
            scope=common.service_token_scope,
            timeout=common.service_timeout_seconds,
        )
    issuer = service_key(common)
    if issuer is not None:
        return DevServiceTokens(issuer, caller)
    return None


def service_client(callee: str, *, caller: str, common: CommonSettings) -> ServiceClient:
    """A client from ``caller`` to ``callee`` over HTTP, as the settings describe it."""
    urls = getattr(common, f"{callee}_url", None)
    if not urls:
        raise ValueError(f"HALLPASS_{callee.upper()}_URL is not set: where does {callee} answer?")
    return ServiceClient(
        name=callee,
        base_url=[url.strip() for url in str(urls).split(",") if url.strip()],
        tokens=service_tokens(common, caller),
        timeout=common.service_timeout_seconds,
    )


class _LoopThread:
    """An event loop of its own in a daemon thread, for in-process calls made from threads.

    The callee app runs on it, with its own thread pool: a caller blocking a worker thread of
    the main loop can never starve the callee of threads. Stopped when its client is collected.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="hallpass-service-client", daemon=True
        )
        self._thread.start()

    @staticmethod
    def stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        if loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


class ServiceClient:
    """Calls one other Hallpass service, in-process (``app``) or over HTTP (``base_url``)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str | Sequence[str] = "http://service.internal",
        app: ASGIApp | None = None,
        tokens: ServiceTokens | None = None,
        timeout: float = 5.0,
        max_connections: int = 50,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("a service client needs at least one base URL")
        self.name = name
        self.base_urls = [url.rstrip("/") for url in urls]
        self.base_url = self.base_urls[0]
        self.app = app
        self.tokens = tokens
        self.timeout = timeout
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_thread: _LoopThread | None = None
        # Round robin over replicas, so one replica is not the only one doing the work.
        self._next = 0

    # --- connections ------------------------------------------------------------------------

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.get(loop)
            if client is None:
                # Over HTTP only: an in-process callee is called directly (_call_in_process).
                client = httpx.AsyncClient(timeout=self.timeout, limits=self._limits)
                self._async[loop] = client
            return client

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(timeout=self.timeout, limits=self._limits)
            return self._sync

    def _in_process_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
                weakref.finalize(
                    self, _LoopThread.stop, self._loop_thread.loop, self._loop_thread._thread
                )
            return self._loop_thread.loop

    def _order(self) -> list[str]:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.base_urls)
        return self.base_urls[start:] + self.base_urls[:start]

    def close(self) -> None:
        """Close the pooled connections (the owner's shutdown); the client may be used again."""
        with self._lock:
            sync, self._sync = self._sync, None
            clients = list(self._async.items())
            self._async = weakref.WeakKeyDictionary()
            loop_thread, self._loop_thread = self._loop_thread, None
        if sync is not None:
            sync.close()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, client in clients:
            if loop.is_closed() or not loop.is_running():
                continue  # its loop is gone, and its connections with it
            if loop is current:
                # Closed by a coroutine on this very loop: blocking here would wait for itself.
                loop.create_task(client.aclose())
            else:
                asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
        if loop_thread is not None:
            _LoopThread.stop(loop_thread.loop, loop_thread._thread)
        if isinstance(self.tokens, ClientCredentialsTokens):
            self.tokens.close()

    async def aclose(self) -> None:
        """Close this event loop's pooled connections, then the rest (``close``)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()
        await asyncio.to_thread(self.close)

    # --- calls ------------------------------------------------------------------------------

    def _headers(
        self, school: str, caller_token: str | None, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        sent = {"Authorization": self._authorization(school, caller_token), SCHOOL_HEADER: school}
        if headers:
            sent.update(headers)
        return sent

    def _authorization(self, school: str, caller_token: str | None) -> str:
        # The service's own identity when it has one; otherwise the caller's token is passed on,
        # so the callee still checks who is really asking.
        if self.tokens is not None:
            return f"Bearer {self.tokens.token_for(school)}"
        if caller_token:
            return f"Bearer {caller_token}"
        raise ServiceUnavailable(
            f"No credentials to call the {self.name} service.",
            code=f"{self.name}_unavailable",
        )

    def _unavailable(self, detail: str) -> ServiceUnavailable:
        return ServiceUnavailable(detail, code=f"{self.name}_unavailable")

    def _judge(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 500 or response.status_code in (401, 403):
            # 401/403 mean this service's own credentials are wrong: a deployment fault that the
            # end user cannot fix, and never a reason to go ahead.
            raise self._unavailable(
                f"The {self.name} service answered {response.status_code}; nothing was decided."
            )
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        school: str,
        caller_token: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One call; a 4xx is returned for the caller to interpret, anything worse raises."""
        sent = self._headers(school, caller_token, headers)
        if self.app is not None:
            return self._judge(
                await _call_in_process(
                    self.app,
                    method,
                    self.base_url + path,
                    payload=json,
                    params=params,
                    headers=sent,
                )
            )
        client = self._async_client()
        failure: Exception | None = None
        for base in self._order():
            try:
                response = await client.request(
                    method, base + path, json=json, params=params, headers=sent
                )
            except httpx.ConnectError as exc:
                failure = exc  # nothing reached this replica: the next one may answer
                continue
            except (httpx.HTTPError, OSError) as exc:
                raise self._unavailable(
                    f"The {self.name} service did not answer; nothing was decided."
                ) from exc
            return self._judge(response)
        raise self._unavailable(
            f"The {self.name} service did not answer; nothing was decided."
        ) from failure

    def request_sync(
        self,
        method: str,
        path: str,
        *,
        school: str,
        caller_token: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The same call from a worker thread (jobs, event handlers, sync endpoints).

        Never call it from a coroutine: it blocks until the answer comes.
        """
        if self.app is not None:
            future = asyncio.run_coroutine_threadsafe(
                self.request(
                    method,
                    path,
                    school=school,
                    caller_token=caller_token,
                    json=json,
                    params=params,
                    headers=headers,
                ),
                self._in_process_loop(),
            )
            try:
                return future.result(timeout=self.timeout + 1)
            except FutureTimeout as exc:
                future.cancel()
                raise self._unavailable(
                    f"The {self.name} service did not answer in time; nothing was decided."
                ) from exc
        sent = self._headers(school, caller_token, headers)
        client = self._sync_client()
        failure: Exception | None = None
        for base in self._order():
            try:
                response = client.request(
                    method, base + path, json=json, params=params, headers=sent
                )
            except httpx.ConnectError as exc:
                failure = exc
                continue
            except (httpx.HTTPError, OSError) as exc:
                raise self._unavailable(
                    f"The {self.name} service did not answer; nothing was decided."
                ) from exc
            return self._judge(response)
        raise self._unavailable(
            f"The {self.name} service did not answer; nothing was decided."
        ) from failure


async def _call_in_process(
    app: ASGIApp,
    method: str,
    url: str,
    *,
    payload: Any,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str],
) -> httpx.Response:
    """One request to an ASGI app in this process, as httpx's ``ASGITransport`` makes it, but
    without the client's machinery around it (cookies, redirects, auth flows, URL merging) and
    without its per-call probe for trio, a failed import that walks ``sys.path`` every time.

    The callee sees an ordinary HTTP request. A crash in it is a 500 here, exactly as over the
    network; nothing it raises reaches the caller.
    """
    target = httpx.URL(url, params=params) if params else httpx.URL(url)
    body = b""
    wire: list[tuple[bytes, bytes]] = [
        (b"host", target.netloc),
        (b"accept", b"*/*"),
    ]
    if payload is not None:
        body = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        wire += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    wire += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.upper(),
        "headers": wire,
        "scheme": target.scheme,
        "path": unquote(target.path),
        "raw_path": target.raw_path.split(b"?")[0],
        "query_string": target.query,
        "server": (target.host, target.port),
        "client": ("127.0.0.1", 123),
        "root_path": "",
    }
    sent_body = False
    done = asyncio.Event()
    status: int | None = None
    response_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if sent_body:
            await done.wait()  # the callee listens for a disconnect: it comes after the answer
            return {"type": "http.disconnect"}
        sent_body = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start" and status is None:
            status = int(message["status"])
            response_headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body" and status is not None and not done.is_set():
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    except Exception:
        logger.exception("the in-process %s call failed", url)
        if status is None:
            return httpx.Response(500, request=httpx.Request(method, target))
    done.set()
    return httpx.Response(
        status if status is not None else 500,
        headers=response_headers,
        content=b"".join(chunks),
        request=httpx.Request(method, target),
    )


def caller_token(authorization: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, to pass on to another service."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
