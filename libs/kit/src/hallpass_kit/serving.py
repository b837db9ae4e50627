"""What a server process does once its app has started and before it takes requests."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI

from hallpass_kit.route_index import build_index


def as_served(app: FastAPI) -> FastAPI:
    """``app`` as a server process runs it: once its lifespan has started, every route is built
    (FastAPI builds them lazily, on the first request that passes them) and the objects made so
    far are moved out of the garbage collector's sight with ``gc.freeze()``.

    Why freeze: the app's tens of thousands of start-up objects live as long as the process, yet
    each full collection walked them all, and a request that allocates a lot (a 1,000-pupil
    decision) paid for it: measured in-process, 38-48 % of such a request and 15 % of a
    30-pupil one (docs/benchmarks.md). Only for server processes: a test process builds
    hundreds of apps, and frozen objects are never collected.
    """
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[Mapping[str, Any] | None]:
        async with started(served) as state:
            build_index(served)
            gc.collect()
            gc.freeze()
            yield state

    # Either shape FastAPI accepts (a state mapping or None) passes through unchanged.
    app.router.lifespan_context = cast(Any, lifespan)
    return app
