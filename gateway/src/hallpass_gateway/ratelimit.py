"""Per-IP and per-client rate limits at the gateway: token buckets, 429 with Retry-After.

Plain ASGI middleware, like the kit's admission and body limits, so a refused request costs a
dictionary lookup and never reaches routing, a service or the database. The buckets live in this
process: with several gateway replicas each enforces its own share (the limits are per replica).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from hallpass_gateway.settings import GatewaySettings, TrustedNetwork
from hallpass_kit.auth import TokenVerifier
from hallpass_kit.errors import HallpassError
from hallpass_kit.limits import send_problem

# Paths never limited: load balancers and orchestrators probe them, and refusing a probe would
# take a healthy gateway out of service.
_PROBES = ("/healthz", "/readyz")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per key: ``burst`` requests at once, refilled at ``per_second``.

    Only the ``max_tracked`` most recently seen keys are kept; a forgotten key starts full again,
    which errs towards serving rather than refusing.
    """

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        max_tracked: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._max_tracked = max_tracked
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        # Several event loops may share one gateway (tests, embedded servers); a lock is cheap.
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0 when allowed, else seconds until one is due."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
                if len(self._buckets) > self._max_tracked:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.per_second


def client_address(scope: Scope, trusted_proxies: Sequence[TrustedNetwork]) -> str:
    """The caller's IP address: the peer's, or, when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not one of ours (addresses further left are the
    caller's own claims and could be anything)."""
    peer = scope.get("client")
    address = str(peer[0]) if peer else "unknown"
    if not trusted_proxies or not trusted_address(address, trusted_proxies):
        return address
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    forwarded = [
        part.strip()
        for key, value in headers
        if key == b"x-forwarded-for"
        for part in value.decode("latin-1").split(",")
        if part.strip()
    ]
    for hop in reversed(forwarded):
        if not _valid_address(hop):
            # Garbage from a hop we trust cannot name anyone; the last good one is the caller.
            return address
        address = hop
        if not trusted_address(hop, trusted_proxies):
            return hop
    return address


def _valid_address(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def trusted_address(address: str, trusted_proxies: Sequence[TrustedNetwork]) -> bool:
    """Whether ``address`` is one of the proxies in front of the gateway."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted_proxies)


def peer_is_trusted(scope: Scope, trusted_proxies: Sequence[TrustedNetwork]) -> bool:
    """Whether the connection itself comes from a trusted proxy (its X-Forwarded-* count)."""
    peer = scope.get("client")
    return peer is not None and trusted_address(peer[0], trusted_proxies)


def _bearer_token(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class RateLimits:
    """The per-IP and per-client buckets of one gateway and how a request is charged."""

    def __init__(
        self,
        settings: GatewaySettings,
        verifier: TokenVerifier | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trusted_proxies = list(settings.trusted_proxies)
        self.verifier = verifier
        self.by_ip = TokenBuckets(
            per_second=settings.rate_limit_ip_per_second,
            burst=settings.rate_limit_ip_burst,
            max_tracked=settings.rate_limit_max_tracked,
            clock=clock,
        )
        self.by_client = TokenBuckets(
            per_second=settings.rate_limit_client_per_second,
            burst=settings.rate_limit_client_burst,
            max_tracked=settings.rate_limit_max_tracked,
            clock=clock,
        )

    async def subject(self, scope: Scope) -> str | None:
        """Who the bearer token says the caller is, if the gateway can verify it; else None.

        The services verify the token again for access: here it only decides whose bucket pays,
        so an invalid or expired token is not refused, it just counts as the address alone.
        """
        token = _bearer_token(scope)
        if token is None or self.verifier is None:
            return None
        principal = self.verifier.cached(token)
        if principal is None:
            try:
                # Off the event loop: a token from a provider may need its keys fetched.
                principal = await run_in_threadpool(self.verifier.verify, token)
            except HallpassError:
                return None
        return principal.sub

    async def wait_for(self, scope: Scope) -> tuple[float, str]:
        """(seconds the caller must wait, which limit) — 0 when the request may go on."""
        wait = self.by_ip.take(client_address(scope, self.trusted_proxies))
        if wait:
            return wait, "address"
        subject = await self.subject(scope)
        if subject is not None:
            wait = self.by_client.take(subject)
            if wait:
                return wait, "client"
        return 0.0, ""


class RateLimitMiddleware:
    """Answers 429 problem+json with Retry-After to a caller past its rate; probes always pass."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").endswith(_PROBES):
            await self.app(scope, receive, send)
            return
        wait, limit = await self.limits.wait_for(scope)
        if not wait:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        await send_problem(
            scope,
            receive,
            send,
            status=429,
            code="rate_limited",
            title="Too many requests",
            detail=(
                f"Too many requests from this {limit}; "
                f"try again in {retry_after} second{'s' if retry_after != 1 else ''}."
            ),
            headers={"Retry-After": str(retry_after)},
        )
