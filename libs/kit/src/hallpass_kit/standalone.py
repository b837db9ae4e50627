"""What a service process needs when it runs on its own (``hallpass serve consent``, a worker).

In all-in-one mode the gateway builds these for every service at once; apart, each process
builds them from its settings: who signs people's tokens, which service key it trusts, and how it
calls the services it depends on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from fastapi import FastAPI

from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient, service_client, service_key
from hallpass_kit.settings import CommonSettings


def process_verifier(common: CommonSettings) -> TokenVerifier:
    """Verifies people's tokens (dev issuer or the identity provider) and other services'."""
    if common.uses_dev_issuer:
        issuer = DevIssuer.load_or_create(
            common.dev_signing_key_path, common.auth_issuer, common.auth_audience
        )
        verifier = TokenVerifier(common, key_set=issuer.key_set())
    else:
        verifier = TokenVerifier(common)
    key = service_key(common)
    if key is not None:
        verifier.trust_internal(key)
    return verifier


def consent_client(common: CommonSettings, *, caller: str) -> ServiceClient:
    """The caller's client for the consent service, which must be given when apart."""
    return service_client("consent", caller=caller, common=common)


def run_background_only(app: FastAPI) -> int:
    """Run an app's background work (its lifespan: outbox, webhooks, scans, mail) without
    serving HTTP, until SIGTERM or SIGINT; the work stops cleanly, leases lapse for others."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())

    async def run() -> None:
        lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] = (
            app.router.lifespan_context
        )
        async with lifespan(app):
            await anyio.to_thread.run_sync(stop.wait)

    try:
        anyio.run(run)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
