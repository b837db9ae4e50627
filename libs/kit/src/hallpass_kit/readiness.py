"""Readiness: may a load balancer send this process requests now?

``/healthz`` says the process is up; ``/readyz`` says what it depends on answers too: its database
always, and whatever a service adds (the media store, the mail relay). Every check is bounded in
time, so a probe is answered within a few seconds whatever hangs behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from hallpass_kit.db import Database
from hallpass_kit.errors import ServiceUnavailable

logger = logging.getLogger("hallpass.readiness")

# Below the usual load-balancer probe timeout (5 s), so the balancer reads our answer rather than
# its own timeout.
READINESS_TIMEOUT_SECONDS = 2.0

# A check blocks (a database round trip, an S3 or SMTP call) and raises when what it checks does
# not answer.
ReadinessCheck = Callable[[], None]

# Probes get threads of their own: a request thread pool that is full (the moment a balancer most
# needs an answer) cannot hold them up, and a hung dependency ties up at most these few threads.
_probe_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hallpass-readiness")


class NotReady(ServiceUnavailable):
    code = "not_ready"
    title = "Not ready"


def database_ready(database: Database) -> ReadinessCheck:
    """A short SELECT 1 on a pooled connection (the same pool requests use)."""

    def check() -> None:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


async def check_readiness(
    checks: Mapping[str, ReadinessCheck], *, within_seconds: float = READINESS_TIMEOUT_SECONDS
) -> dict[str, str]:
    """Run every check at once; each one's outcome: ``ok``, ``unavailable`` or ``timed_out``.

    The outcome is all a caller learns: the probe is public, and the error (host names, ports) is
    in the log instead.
    """
    loop = asyncio.get_running_loop()

    async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
        try:
            await asyncio.wait_for(loop.run_in_executor(_probe_threads, check), within_seconds)
        except TimeoutError:
            logger.warning("readiness: %s gave no answer within %.1f s", name, within_seconds)
            return name, "timed_out"
        except Exception as exc:  # any failure of a dependency means "not ready"
            logger.warning("readiness: %s is unavailable: %s: %s", name, type(exc).__name__, exc)
            return name, "unavailable"
        return name, "ok"

    outcomes = await asyncio.gather(*(run(name, check) for name, check in checks.items()))
    return dict(outcomes)


def refuse_unless_ready(outcomes: Mapping[str, str]) -> None:
    """Raise a 503 naming every check that failed."""
    failed = [
        f"{name} ({outcome.replace('_', ' ')})"
        for name, outcome in outcomes.items()
        if outcome != "ok"
    ]
    if failed:
        raise NotReady(f"Not ready to serve requests: {', '.join(failed)}.")
