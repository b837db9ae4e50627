"""Service-to-service calls: how media and comms ask the consent service.

A service never reads another's tables; it calls the other's public API. In all-in-one mode the
call goes in-process over ASGI (no socket, same code path as over the network); in a real
deployment it goes over HTTP to the service's base URL. Either way the callee authenticates the
caller like any other client, so its role checks and audit apply unchanged.

Any failure to get an answer (refused connection, timeout, a 5xx) becomes ``ServiceUnavailable``:
callers that decide about publishing must fail closed, never treat silence as "allowed".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from starlette.types import ASGIApp

from hallpass_kit.auth import DevIssuer, Role
from hallpass_kit.errors import ServiceUnavailable


class ServiceTokens(Protocol):
    """Bearer tokens that identify the calling service to another service, per school."""

    def token_for(self, school: str) -> str: ...


@dataclass
class DevServiceTokens:
    """Short-lived ``service`` tokens per school, signed by an issuer the callee trusts.

    In all-in-one mode that is the gateway's internal issuer, whose key exists only in memory.
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


class ServiceClient:
    """Calls one other Hallpass service, in-process (``app``) or over HTTP (``base_url``)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str = "http://service.internal",
        app: ASGIApp | None = None,
        tokens: ServiceTokens | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.tokens = tokens
        self.timeout = timeout

    def _client(self) -> httpx.AsyncClient:
        transport: httpx.AsyncBaseTransport | None = (
            # A crash in the callee is a 500 here, exactly as it would be over the network.
            httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            if self.app is not None
            else None
        )
        return httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=self.timeout)

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
        sent_headers = {"Authorization": self._authorization(school, caller_token)}
        if headers:
            sent_headers.update(headers)
        try:
            async with self._client() as client:
                response = await client.request(
                    method, path, json=json, params=params, headers=sent_headers
                )
        except (httpx.HTTPError, OSError) as exc:
            raise ServiceUnavailable(
                f"The {self.name} service did not answer; nothing was decided.",
                code=f"{self.name}_unavailable",
            ) from exc
        if response.status_code >= 500 or response.status_code in (401, 403):
            # 401/403 mean this service's own credentials are wrong: a deployment fault that the
            # end user cannot fix, and never a reason to go ahead.
            raise ServiceUnavailable(
                f"The {self.name} service answered {response.status_code}; nothing was decided.",
                code=f"{self.name}_unavailable",
            )
        return response

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

        Runs its own short event loop; never call it from a coroutine.
        """
        return asyncio.run(
            self.request(
                method,
                path,
                school=school,
                caller_token=caller_token,
                json=json,
                params=params,
                headers=headers,
            )
        )


def caller_token(authorization: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, to pass on to another service."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
