"""Routing without testing every route: an app's top-level routes indexed by their first segments.

FastAPI tries an app's routes one by one, in order, and an included router tries each of its own
in turn: a request for the last router of a service (its ``/v1/ping``) tested some 50 routes at
about 10 µs each, more than half the cost of the whole request. Yet a route whose path begins
``/v1/pupils`` can never match ``/v1/decisions``. The index keeps, for the first two segments of a
request's path, the top-level routes (in their order) that could match it; the request is then
matched against those only, exactly as FastAPI would match it against all of them: no route that
is skipped could have matched, so the first full match is the same route. Anything other than a
full match (a 405's partial match, a redirect for a trailing slash, a 404, low-priority routes)
goes the ordinary way, so every answer but the time taken is FastAPI's own
(tests/kit/test_route_index.py compares the two over every route of every app).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import (  # FastAPI's own steps after a match, so nothing else differs.
    APIRouter,
    _apply_router_form_limits,
    _IncludedRouter,
    _update_scope,
)
from fastapi.telemetry._api import _route_selected
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Host, Match, Mount, Route
from starlette.types import Receive, Scope, Send

# A segment of a path template that holds a parameter matches any text, even none ("{path:path}").
ANY = "\x00any"
# The path ends before this segment.
END = "\x00end"
Key = tuple[str, str]


def _heads(path: str) -> Key:
    """The first two segments of ``path``, each up to its first ':' (``pupils:search``, a custom
    method, is in the same place as ``pupils``)."""
    parts = path.split("/", 3)
    first = parts[1].split(":", 1)[0] if len(parts) > 1 else END
    second = parts[2].split(":", 1)[0] if len(parts) > 2 else END
    return first, second


def _template_key(template: str) -> Key:
    parts = template.split("/", 3)
    key: list[str] = []
    for index in (1, 2):
        if index >= len(parts):
            key.append(END)
            continue
        segment = parts[index]
        if "{" in segment:
            # A parameter here may match anything, so may every later segment.
            key.extend([ANY] * (2 - len(key)))
            break
        key.append(segment.split(":", 1)[0])
    return key[0], key[1]


def _templates(route: BaseRoute) -> list[str] | None:
    """Every path ``route`` can match, as templates; None when that cannot be known."""
    if isinstance(route, _IncludedRouter):
        templates: list[str] = []
        for context in route.effective_route_contexts():
            inner = context.starlette_route
            if inner is None:
                if not context.path_format:
                    return None
                templates.append(context.path_format)
            else:
                found = _templates(inner)
                if found is None:
                    return None
                templates.extend(found)
        return templates
    if isinstance(route, Mount):
        return [route.path + "/{path:path}"] if route.path else None
    if isinstance(route, Host):
        return None
    if isinstance(route, Route):
        return [route.path_format]
    path_format = getattr(route, "path_format", None)
    return [path_format] if isinstance(path_format, str) and path_format else None


def _admits(keys: Iterable[Key] | None, wanted: Key) -> bool:
    if keys is None:
        return True
    return any(
        (first == ANY or first == wanted[0]) and (second == ANY or second == wanted[1])
        for first, second in keys
    )


@dataclass(frozen=True)
class RouteIndex:
    """The top-level routes, by the first two segments of the paths they can match."""

    version: int
    routes: tuple[BaseRoute, ...]
    # Both segments static and named by some route, then the first alone: answered from
    # dictionaries built once, never grown by requests (a path is the caller's text).
    pairs: dict[Key, tuple[BaseRoute, ...]]
    firsts: dict[str, tuple[BaseRoute, ...]]
    others: tuple[BaseRoute, ...]

    @classmethod
    def of(cls, routes: Sequence[BaseRoute], version: int) -> RouteIndex:
        keyed: list[tuple[BaseRoute, frozenset[Key] | None]] = []
        for route in routes:
            templates = _templates(route)
            keyed.append(
                (route, None if templates is None else frozenset(map(_template_key, templates)))
            )

        def filtered(key: Key) -> tuple[BaseRoute, ...]:
            # Called with ANY standing for "a segment no route names": only routes taking any
            # text there (or whose paths are unknown) can match it.
            return tuple(route for route, keys in keyed if _admits(keys, key))

        named = {key for _route, found in keyed if found for key in found}
        # A parameter in the first segment makes the second one ANY too (_template_key), so a
        # pair no route names can only be matched by a route that takes any second segment.
        return cls(
            version,
            tuple(routes),
            pairs={key: filtered(key) for key in named if ANY not in key},
            firsts={first: filtered((first, ANY)) for first, _second in named if first != ANY},
            others=filtered((ANY, ANY)),
        )

    def candidates(self, path: str) -> tuple[BaseRoute, ...]:
        key = _heads(path)
        found = self.pairs.get(key)
        if found is None:
            found = self.firsts.get(key[0], self.others)
        return found


class IndexedRouter(APIRouter):
    """An app's router that matches a request against the routes its path could reach only."""

    _hallpass_index: RouteIndex | None = None

    def route_index(self) -> RouteIndex:
        # This router's own count of changes, not FastAPI's walk of every included router's:
        # routes added to an included router after start-up (nothing here does) are still
        # found, by the fall-back over every route, only not first.
        version = self._routes_version + len(self.routes)
        index = self._hallpass_index
        if index is None or index.version != version:
            index = self._hallpass_index = RouteIndex.of(self.routes, version)
        return index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        _apply_router_form_limits(scope, self.form_limits)
        if "router" not in scope:
            scope["router"] = self
        for route in self.route_index().candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                _update_scope(scope, child_scope)
                _route_selected(
                    scope=scope,
                    path=getattr(route, "path_format", None),
                    mount=isinstance(route, Mount),
                )
                await route.handle(scope, receive, send)
                return
        # No full match among the routes that could match: FastAPI decides what to answer (405,
        # a redirect, a low-priority route, 404) over every route, as always.
        await super().app(scope, receive, send)


def index_routes(app: FastAPI) -> FastAPI:
    """Route ``app``'s requests through the index (its router keeps every route and behaviour)."""
    router = app.router
    stack = router.middleware_stack
    # The router calls the ``app`` it bound when it was made; with router-level middleware (none
    # of ours has any) there is no such plain binding to replace, and the router stays as it is.
    if type(router) is APIRouter and getattr(stack, "__func__", None) is APIRouter.app:
        router.__class__ = IndexedRouter
        router.middleware_stack = router.app
    return app


def build_index(app: FastAPI) -> None:
    """Build the index (and so every route FastAPI builds lazily) now, not on the first request:
    called as a server starts, so the first caller does not wait for it."""
    router = app.router
    if isinstance(router, IndexedRouter):
        index = router.route_index()
        for route in index.routes:
            if isinstance(route, Mount) and isinstance(route.app, FastAPI):
                build_index(route.app)
