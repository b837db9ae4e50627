"""Prometheus metrics of this process, served at ``/metrics`` in the text format.

Every metric object is made once, here, at import: prometheus_client refuses a second metric of
the same name, and one process may run several service apps (all-in-one mode, tests). So every
metric carries a ``service`` label instead of living on an app. Anything else registered on the
default registry (job queues, webhook deliveries) is served alongside.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter(
    "hallpass_http_requests",
    "Requests answered, by service, method, route template and status.",
    ["service", "method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "hallpass_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template.",
    ["service", "method", "route"],
    # From a cached decision to a zip of a class's photos.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DECISIONS = Counter(
    "hallpass_consent_decisions",
    "Per-pupil consent verdicts given, by the reason behind each (C2, C5, C11, C12).",
    ["service", "reason"],
)
PUBLICATION_CHECKS = Counter(
    "hallpass_media_publication_checks",
    "Publication checks answered, by verdict (allowed or refused).",
    ["service", "verdict"],
)

# A path that matched no route is counted under this name, never under its raw path: every
# scanner probing random URLs would otherwise make a new time series.
UNMATCHED_ROUTE = "unmatched"


def observe_request(*, service: str, method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(service, method, route, str(status)).inc()
    REQUEST_SECONDS.labels(service, method, route).observe(seconds)


def count_decisions(reasons: Iterable[str], *, service: str = "consent") -> None:
    """Count one batch of verdicts: one increment per reason, not per pupil."""
    for reason, count in Tally(str(reason) for reason in reasons).items():
        DECISIONS.labels(service, reason).inc(count)


def count_publication_check(*, allowed: bool, service: str = "media") -> None:
    PUBLICATION_CHECKS.labels(service, "allowed" if allowed else "refused").inc()


async def metrics_endpoint(_request: Request) -> Response:
    """Everything on the default registry, in the Prometheus text format."""
    # Off the event loop: some collectors ask the database at scrape time (job queue depths).
    text = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
