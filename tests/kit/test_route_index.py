"""The route index picks the route FastAPI would pick, for every path of every app.

The index only skips routes that cannot match a request's path; these tests hold it to that over
the whole all-in-one gateway (its own routes and every service mounted in it) and the proxy
gateway: each route's path filled in, with each of its methods and a method it does not take,
with a trailing slash, and paths no route names.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Match, Mount

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import create_gateway
from hallpass_gateway.proxy import create_proxy_gateway
from hallpass_kit.route_index import IndexedRouter, RouteIndex, build_index
from hallpass_kit.settings import CommonSettings

_PARAMETER = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


def _filled(template: str) -> str:
    def value(found: re.Match[str]) -> str:
        return "a/b" if found.group(2) == "path" else f"{found.group(1)}-1"

    return _PARAMETER.sub(value, template)


def _scope(path: str, method: str, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }


def _first_full(routes: Any, scope: dict[str, Any]) -> BaseRoute | None:
    for route in routes:
        match, _child = route.matches(dict(scope))
        if match == Match.FULL:
            return route  # type: ignore[no-any-return]
    return None


def _apps(app: FastAPI, root_path: str = "") -> Iterator[tuple[FastAPI, str]]:
    yield app, root_path
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, FastAPI):
            yield from _apps(route.app, root_path + route.path)


def _paths(app: FastAPI) -> Iterator[tuple[str, str]]:
    router = app.router
    assert isinstance(router, IndexedRouter)
    templates: set[tuple[str, frozenset[str]]] = set()
    for route in router.routes:
        for context in getattr(route, "effective_route_contexts", lambda: [])():
            inner = context.starlette_route or context
            methods = frozenset(getattr(inner, "methods", None) or context.methods or {"GET"})
            templates.add((getattr(inner, "path_format", "") or context.path_format, methods))
        if hasattr(route, "path_format") and not hasattr(route, "effective_route_contexts"):
            templates.add(
                (route.path_format, frozenset(getattr(route, "methods", None) or {"GET"}))
            )
    for template, methods in sorted(templates, key=lambda item: item[0]):
        path = _filled(template)
        for method in [*methods, "PATCH", "DELETE"]:
            yield path, method
            yield path + "/", method
            yield path + ":frobnicate", method
    rng = random.Random(13)
    alphabet = string.ascii_letters + string.digits + "-_.:~%"
    for _ in range(300):
        segments = [
            "".join(rng.choices(alphabet, k=rng.randint(0, 9))) for _ in range(rng.randint(1, 4))
        ]
        yield "/" + "/".join(segments), rng.choice(["GET", "POST"])
    for odd in ["/", "//", "/v1", "/v1/", "/v1//ping", "/consent", "/consent/", "/app", "/app/"]:
        yield odd, "GET"


def _assert_same_choice(app: FastAPI) -> int:
    compared = 0
    for served, root_path in _apps(app):
        router = served.router
        assert isinstance(router, IndexedRouter), served.title
        index: RouteIndex = router.route_index()
        for path, method in _paths(served):
            scope = _scope(path, method, root_path)
            expected = _first_full(router.routes, scope)
            chosen = _first_full(index.candidates(path), scope)
            assert chosen is expected, (served.title, method, path)
            compared += 1
    return compared


@pytest.fixture
def all_in_one(tmp_path: Path) -> FastAPI:
    common = CommonSettings(data_dir=tmp_path / "data")
    return create_gateway(common, ConsentSettings(database_url=None), run_background=False)


def test_the_index_chooses_fastapis_route_in_every_app_of_the_all_in_one_gateway(
    all_in_one: FastAPI,
) -> None:
    assert _assert_same_choice(all_in_one) > 1000


def test_the_index_chooses_fastapis_route_in_the_proxy_gateway(tmp_path: Path) -> None:
    common = CommonSettings(
        data_dir=tmp_path / "data",
        consent_url="http://127.0.0.1:9",
        media_url="http://127.0.0.1:9",
        comms_url="http://127.0.0.1:9",
    )
    assert _assert_same_choice(create_proxy_gateway(common)) > 100


def test_answers_that_are_not_a_full_match_stay_fastapis(all_in_one: FastAPI) -> None:
    build_index(all_in_one)
    with TestClient(all_in_one, follow_redirects=False) as client:
        # A path that names a route with a method it does not take: 405 with what it does take.
        refused = client.delete("/consent/v1/decisions")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"
        # No such path: a 404, in problem+json like every error.
        missing = client.get("/consent/v1/no-such-thing")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get("/nowhere/at/all").status_code == 404
        # The gateway's own routes and a service's still answer, through the index.
        assert client.get("/healthz").status_code == 200
        assert client.get("/consent/healthz").status_code == 200
        assert client.get("/consent/v1/ping").status_code == 401


def test_a_route_added_after_the_first_request_is_found(all_in_one: FastAPI) -> None:
    with TestClient(all_in_one) as client:
        assert client.get("/late").status_code == 404

        @all_in_one.get("/late")
        async def late() -> dict[str, bool]:
            return {"late": True}

        assert client.get("/late").json() == {"late": True}
