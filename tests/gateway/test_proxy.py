"""Proxy mode against real servers on 127.0.0.1: small upstream apps and the real services."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import create_gateway
from hallpass_gateway.proxy import ProxyGateway, create_proxy_gateway
from hallpass_gateway.settings import GatewaySettings
from hallpass_kit.auth import DevIssuer
from hallpass_kit.db import Database
from hallpass_kit.settings import DEV_ISSUER, CommonSettings
from tests.conftest import TokenFactory, build_consent_app

OPENAPI_DIR = Path(__file__).resolve().parents[2] / "openapi"
MIB = 1024 * 1024
CHUNK = 64 * 1024
# A failing flow check waits this long for bytes that a buffering proxy would never pass on,
# then reports the failure; a passing one never waits for it.
FLOW_PATIENCE_SECONDS = 30


# --- servers on loopback -------------------------------------------------------------------------


@contextmanager
def served(
    app: Any, *, lifespan: Literal["on", "off"] = "on", sock: socket.socket | None = None
) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 in a thread (on ``sock`` if given, bound but not
    listening); yields its base URL."""
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        # No proxy headers read by uvicorn itself: the gateway decides whom to trust
        # (GatewaySettings.trusted_proxies), and uvicorn would trust 127.0.0.1 by default.
        uvicorn.Config(
            app, lifespan=lifespan, log_level="warning", access_log=False, proxy_headers=False
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "the test server did not start"
        yield f"http://127.0.0.1:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nobody listens on: connecting to it is refused.

    The port stays bound (never listening) while the block runs, so no server the test starts
    meanwhile can be handed it.
    """
    with reserved_socket() as sock:
        port: int = sock.getsockname()[1]
        yield port


@contextmanager
def reserved_socket() -> Iterator[socket.socket]:
    """A loopback socket bound to a port of its own and not listening (connections refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@dataclass
class Upstream:
    """A small service that reports what reached it and lets a test pace its answers."""

    app: FastAPI
    upload_started: threading.Event = field(default_factory=threading.Event)
    download_half_received: threading.Event = field(default_factory=threading.Event)
    download_flowed: list[bool] = field(default_factory=list)
    release_slow: threading.Event = field(default_factory=threading.Event)


def upstream_app(download_bytes: int = 8 * MIB) -> Upstream:
    app = FastAPI()
    upstream = Upstream(app=app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/v1/echo/{rest:path}", methods=["GET", "POST", "DELETE"])
    async def echo(request: Request, rest: str) -> dict[str, Any]:
        return {
            "method": request.method,
            "path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
            "body": (await request.body()).decode(),
        }

    @app.post("/v1/upload")
    async def upload(request: Request) -> dict[str, Any]:
        digest, total, chunks = hashlib.sha256(), 0, 0
        async for chunk in request.stream():
            if chunk:
                upstream.upload_started.set()
                digest.update(chunk)
                total += len(chunk)
                chunks += 1
        return {"bytes": total, "sha256": digest.hexdigest(), "chunks": chunks}

    @app.get("/v1/download")
    async def download() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            sent = 0
            while sent < download_bytes:
                yield _pattern(sent)
                sent += CHUNK
                if sent == download_bytes // 2:
                    # Hold the second half back until the caller has the first: only a proxy
                    # that passes chunks on as they come lets that happen.
                    flowed = await asyncio.to_thread(
                        upstream.download_half_received.wait, FLOW_PATIENCE_SECONDS
                    )
                    upstream.download_flowed.append(flowed)

        return StreamingResponse(body(), media_type="application/zip")

    @app.get("/v1/slow")
    async def slow() -> dict[str, str]:
        await asyncio.to_thread(upstream.release_slow.wait, FLOW_PATIENCE_SECONDS)
        return {"status": "late"}

    @app.get("/v1/presigned")
    async def presigned() -> RedirectResponse:
        return RedirectResponse(
            "https://s3.example.org/school-media/photo.jpg?X-Amz-Signature=abc123",
            status_code=307,
        )

    @app.get("/v1/overloaded")
    async def overloaded() -> JSONResponse:
        return JSONResponse(
            {"code": "overloaded"},
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": "1"},
        )

    return upstream


def _pattern(offset: int) -> bytes:
    return (offset // CHUNK).to_bytes(4, "big") * (CHUNK // 4)


def gateway_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {"rate_limits": False, **overrides}
    return GatewaySettings(**values)


def proxy_common(tmp_path: Path, consent: str, media: str, comms: str) -> CommonSettings:
    return CommonSettings(
        data_dir=tmp_path,
        auth_issuer=DEV_ISSUER,
        auth_jwks_url=None,
        consent_url=consent,
        media_url=media,
        comms_url=comms,
    )


@contextmanager
def proxy_in_front(
    tmp_path: Path,
    *,
    consent: str,
    media: str | None = None,
    comms: str | None = None,
    settings: GatewaySettings | None = None,
) -> Iterator[tuple[str, ProxyGateway]]:
    common = proxy_common(tmp_path, consent, media or consent, comms or consent)
    gateway = create_proxy_gateway(common, settings or gateway_settings())
    with served(gateway) as url:
        yield url, gateway


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    service = upstream_app()
    try:
        yield service
    finally:
        service.release_slow.set()
        service.download_half_received.set()


@pytest.fixture
def upstream_url(upstream: Upstream) -> Iterator[str]:
    with served(upstream.app) as url:
        yield url


@pytest.fixture
def gateway_url(tmp_path: Path, upstream_url: str) -> Iterator[str]:
    with proxy_in_front(tmp_path, consent=upstream_url) as (url, _gateway):
        yield url


def echoed_headers(response: httpx.Response) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


# --- forwarding ----------------------------------------------------------------------------------


def test_each_prefix_reaches_its_service_with_the_path_and_query_as_sent(
    tmp_path: Path,
) -> None:
    consent, media = upstream_app(), upstream_app()
    with (
        served(consent.app) as consent_url,
        served(media.app) as media_url,
        proxy_in_front(tmp_path, consent=consent_url, media=media_url) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        to_consent = client.get("/consent/v1/echo/pupils%2Fwith%20space?school=oak&x=1&x=2")
        to_media = client.post("/media/v1/echo/publications:check", json={"channel": "web"})

    assert to_consent.status_code == 200
    assert to_consent.json()["path"] == "/v1/echo/pupils%2Fwith%20space"
    assert to_consent.json()["query"] == "school=oak&x=1&x=2"
    assert to_media.json()["method"] == "POST"
    assert to_media.json()["path"] == "/v1/echo/publications:check"
    assert json.loads(to_media.json()["body"]) == {"channel": "web"}


def test_hop_by_hop_headers_stay_at_the_gateway_and_forwarded_ones_are_set(
    gateway_url: str,
) -> None:
    with httpx.Client(base_url=gateway_url) as client:
        response = client.get(
            "/consent/v1/echo/x",
            headers={
                "Connection": "keep-alive, X-Private-Hop",
                "X-Private-Hop": "only for the next hop",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "X-School-Note": "passes through",
                # From a caller that is not a trusted proxy: its own claim, replaced.
                "X-Forwarded-For": "198.51.100.7",
                "X-Forwarded-Host": "evil.example",
            },
        )

    headers = echoed_headers(response)
    for hop in ("x-private-hop", "keep-alive", "te"):
        assert hop not in headers
    assert headers["x-school-note"] == ["passes through"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == [gateway_url.removeprefix("http://")]
    assert headers["host"] != [gateway_url.removeprefix("http://")]


def test_forwarded_for_is_extended_when_the_caller_is_a_trusted_proxy(
    tmp_path: Path, upstream_url: str
) -> None:
    settings = gateway_settings(trusted_proxies=["127.0.0.0/8"])
    with (
        proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        response = client.get(
            "/consent/v1/echo/x",
            headers={
                "X-Forwarded-For": "203.0.113.9",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "hallpass.oakfield.sch.uk",
            },
        )

    headers = echoed_headers(response)
    assert headers["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["https"]
    assert headers["x-forwarded-host"] == ["hallpass.oakfield.sch.uk"]


def test_request_id_is_forwarded_and_echoed(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url) as client:
        given = client.get("/consent/v1/echo/x", headers={"X-Request-Id": "req-abc.123"})
        assigned = client.get("/consent/v1/echo/x")

    assert echoed_headers(given)["x-request-id"] == ["req-abc.123"]
    assert given.headers["x-request-id"] == "req-abc.123"
    # Without one from the caller the gateway makes one, and the service sees that same id.
    assert echoed_headers(assigned)["x-request-id"] == [assigned.headers["x-request-id"]]


def test_presigned_redirect_passes_through_unfollowed(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, follow_redirects=False) as client:
        response = client.get("/media/v1/presigned")

    assert response.status_code == 307
    assert response.headers["location"] == (
        "https://s3.example.org/school-media/photo.jpg?X-Amz-Signature=abc123"
    )


def test_a_service_shedding_load_is_passed_on_with_its_retry_after(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url) as client:
        response = client.get("/comms/v1/overloaded")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"code": "overloaded"}


# --- streaming -----------------------------------------------------------------------------------


def test_upload_streams_to_the_service_before_the_caller_has_sent_it_all(
    gateway_url: str, upstream: Upstream
) -> None:
    size = 8 * MIB
    sent = hashlib.sha256()
    reached_service_mid_upload: list[bool] = []

    def body() -> Iterator[bytes]:
        for offset in range(0, size, CHUNK):
            chunk = _pattern(offset)
            sent.update(chunk)
            yield chunk
            if offset == CHUNK:
                # Only a proxy that passes chunks on as they come lets the service see the
                # upload start while most of it is still with the caller.
                reached_service_mid_upload.append(
                    upstream.upload_started.wait(FLOW_PATIENCE_SECONDS)
                )

    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        response = client.post(
            "/media/v1/upload", content=body(), headers={"Content-Type": "image/jpeg"}
        )

    assert response.status_code == 200
    assert reached_service_mid_upload == [True]
    assert response.json()["bytes"] == size
    assert response.json()["sha256"] == sent.hexdigest()


def test_upload_with_a_declared_length_arrives_whole(gateway_url: str) -> None:
    payload = bytes(range(256)) * (3 * MIB // 256)

    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        response = client.post("/media/v1/upload", content=payload)

    assert response.status_code == 200
    assert response.json()["bytes"] == len(payload)
    assert response.json()["sha256"] == hashlib.sha256(payload).hexdigest()


def test_download_streams_to_the_caller_before_the_service_has_sent_it_all(
    gateway_url: str, upstream: Upstream
) -> None:
    size = 8 * MIB
    received = hashlib.sha256()
    total = 0

    with (
        httpx.Client(base_url=gateway_url, timeout=60) as client,
        client.stream("GET", "/media/v1/download") as response,
    ):
        for chunk in response.iter_raw():
            received.update(chunk)
            total += len(chunk)
            if total >= size // 2:
                upstream.download_half_received.set()

    expected = hashlib.sha256(b"".join(_pattern(o) for o in range(0, size, CHUNK)))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert upstream.download_flowed == [True]
    assert total == size
    assert received.hexdigest() == expected.hexdigest()


# --- failures ------------------------------------------------------------------------------------


def test_a_service_too_slow_to_answer_is_a_504_problem(tmp_path: Path, upstream_url: str) -> None:
    settings = gateway_settings(upstream_read_timeout_seconds=0.5)
    with (
        proxy_in_front(tmp_path, consent=upstream_url, settings=settings) as (url, _),
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        response = client.get("/consent/v1/slow", headers={"X-Request-Id": "slow-1"})

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "upstream_timeout"
    assert problem["request_id"] == "slow-1"
    assert problem["instance"] == "/consent/v1/slow"


def test_a_service_that_refuses_connections_is_a_503_problem_with_retry_after(
    tmp_path: Path, upstream_url: str
) -> None:
    with (
        closed_port() as port,
        proxy_in_front(tmp_path, consent=upstream_url, media=f"http://127.0.0.1:{port}") as (
            url,
            _,
        ),
        httpx.Client(base_url=url) as client,
    ):
        refused = client.post("/media/v1/upload", content=b"photo bytes")
        still_served = client.get("/consent/v1/echo/x")

    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["code"] == "upstream_unavailable"
    assert "media" in refused.json()["detail"]
    assert still_served.status_code == 200


@contextmanager
def hanging_up_server() -> Iterator[str]:
    """A loopback server that accepts each connection and closes it without a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.recv(65536)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def test_a_service_that_hangs_up_without_answering_is_a_503_not_a_500(
    tmp_path: Path, upstream_url: str
) -> None:
    with (
        hanging_up_server() as broken,
        proxy_in_front(tmp_path, consent=upstream_url, comms=broken) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        response = client.post("/comms/v1/messages", json={"subject": "Trip"})

    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unavailable"
    assert response.headers["retry-after"] == "2"


def test_readiness_names_the_service_that_does_not_answer(
    tmp_path: Path, upstream_url: str
) -> None:
    with (
        closed_port() as port,
        proxy_in_front(tmp_path, consent=upstream_url) as (all_up, _),
        proxy_in_front(tmp_path, consent=upstream_url, comms=f"http://127.0.0.1:{port}") as (
            one_down,
            _,
        ),
        httpx.Client() as client,
    ):
        ready = client.get(all_up + "/readyz")
        not_ready = client.get(one_down + "/readyz")
        alive = client.get(one_down + "/healthz")

    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "upstreams": {"consent": "ok", "media": "ok", "comms": "ok"},
    }
    assert not_ready.status_code == 503
    assert [p["where"] for p in not_ready.json()["problems"]] == ["comms"]
    assert alive.status_code == 200


def test_proxy_mode_refuses_to_start_without_every_service_address(tmp_path: Path) -> None:
    common = CommonSettings(data_dir=tmp_path, consent_url="http://127.0.0.1:1")

    with pytest.raises(ValueError, match="HALLPASS_MEDIA_URL, HALLPASS_COMMS_URL"):
        create_proxy_gateway(common, gateway_settings())


# --- the real services ---------------------------------------------------------------------------


def test_real_consent_service_sees_the_callers_request_id_and_token(
    tmp_path: Path,
    consent_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    auth: TokenFactory,
) -> None:
    consent_app = build_consent_app(consent_db, issuer, common_settings)
    with (
        served(consent_app) as consent_url,
        proxy_in_front(tmp_path, consent=consent_url) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        ping = client.get(
            "/consent/v1/ping", headers={**auth("office"), "X-Request-Id": "consent-ping-1"}
        )
        refused = client.get("/consent/v1/purposes", headers={"X-Request-Id": "no-token-1"})

    assert ping.status_code == 200
    assert ping.headers["x-request-id"] == "consent-ping-1"
    assert refused.status_code == 401
    # Written by the consent service itself: the id reached it.
    assert refused.json()["request_id"] == "no-token-1"
    assert refused.json()["instance"] == "/v1/purposes"


@pytest.fixture
def real_services(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Each real service app on a port of its own (spec and routes only; no background work)."""
    common = CommonSettings(data_dir=tmp_path / "services", auth_issuer=DEV_ISSUER)
    all_in_one = create_gateway(common, ConsentSettings(database_url=None), run_background=False)
    for service in all_in_one.services.values():
        # Built here, one at a time: FastAPI silences a pydantic warning while it builds a spec
        # with warnings.catch_warnings(), which is not thread-safe before Python 3.14. Three
        # servers building theirs at once can let the warning through, and the test run turns
        # every warning into an error.
        service.openapi()
    with (
        served(all_in_one.services["/consent"], lifespan="off") as consent,
        served(all_in_one.services["/media"], lifespan="off") as media,
        served(all_in_one.services["/comms"], lifespan="off") as comms,
    ):
        yield {"consent": consent, "media": media, "comms": comms}


def test_merged_openapi_from_the_services_is_the_committed_gateway_spec(
    tmp_path: Path, real_services: dict[str, str]
) -> None:
    committed = json.loads((OPENAPI_DIR / "gateway.json").read_text())
    with (
        proxy_in_front(
            tmp_path,
            consent=real_services["consent"],
            media=real_services["media"],
            comms=real_services["comms"],
        ) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        document = client.get("/openapi.json").json()

    assert sorted(document["paths"]) == sorted(committed["paths"])
    assert document == committed


def test_merged_openapi_answers_with_what_is_known_and_fetches_the_rest_later(
    tmp_path: Path, real_services: dict[str, str]
) -> None:
    settings = gateway_settings(openapi_retry_seconds=0.001)
    with (
        reserved_socket() as comms_socket,
        proxy_in_front(
            tmp_path,
            consent=real_services["consent"],
            media=real_services["media"],
            comms=f"http://127.0.0.1:{comms_socket.getsockname()[1]}",
            settings=settings,
        ) as (url, _),
        httpx.Client(base_url=url) as client,
    ):
        partial = client.get("/openapi.json").json()
        all_in_one = create_gateway(
            CommonSettings(data_dir=tmp_path / "comms", auth_issuer=DEV_ISSUER),
            ConsentSettings(database_url=None),
            run_background=False,
        )
        all_in_one.services["/comms"].openapi()  # as in real_services: one spec at a time
        with served(all_in_one.services["/comms"], lifespan="off", sock=comms_socket):
            whole = client.get("/openapi.json").json()

    assert any(path.startswith("/consent/") for path in partial["paths"])
    assert not any(path.startswith("/comms/") for path in partial["paths"])
    assert "comms" in partial["info"]["description"]
    assert any(path.startswith("/comms/") for path in whole["paths"])
    assert "Not shown" not in whole["info"]["description"]


# --- operations ----------------------------------------------------------------------------------


def test_the_proxy_logs_each_request_once_and_counts_it_under_the_service_prefix(
    gateway_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="hallpass.requests"),
        httpx.Client(base_url=gateway_url) as client,
    ):
        answered = client.get("/consent/v1/echo/once", headers={"X-Request-Id": "proxy-log-1"})
        metrics = client.get("/metrics")

    assert answered.status_code == 200
    lines = [r for r in caplog.records if getattr(r, "request_id", None) == "proxy-log-1"]
    assert len(lines) == 1
    assert getattr(lines[0], "route", None) == "/consent"
    assert getattr(lines[0], "status", None) == 200
    assert metrics.status_code == 200
    assert 'hallpass_http_requests_total{method="GET",route="/consent",service="gateway"' in (
        metrics.text
    )
