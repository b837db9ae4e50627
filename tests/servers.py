"""Real HTTP servers on loopback for tests: an ASGI app served by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import httpx
import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# One path under each prefix the gateway routes: a request that matches nothing walks every route
# of the routers on its way, and FastAPI builds those routes' parameters then, once.
_WARM_PATHS = ("/", "/consent/v1/", "/media/v1/", "/comms/v1/", "/app/", "/parents/", "/auth/")


def _warm(base_url: str) -> None:
    """Ask for paths that match nothing before the first test does, so a module's first request
    does not also pay for FastAPI building every route lazily (seconds on a busy machine)."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for path in _WARM_PATHS:
            client.get(path + "__warm_up__")


@contextmanager
def serving(
    app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "on", warm: bool = False
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields its base URL. ``warm``: the whole
    gateway, whose routes are built before the first test's request (see ``_warm``)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"test-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    if warm:
        _warm(base_url)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=20)
