"""The all-in-one gateway: every service mounted under its prefix in one process.

Each service keeps its own app, database and lifespan; the gateway adds what callers see once for
the whole system: health, the dev identity's JWKS, request ids and one merged OpenAPI document.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.ratelimit import RateLimitMiddleware, RateLimits
from hallpass_gateway.settings import GatewaySettings
from hallpass_gateway.signin import add_browser_sign_in, add_sign_in_routes
from hallpass_gateway.web import add_web_pages
from hallpass_kit.app import AllowedOriginsMiddleware, RequestIdMiddleware, ServiceContext
from hallpass_kit.auth import INTERNAL_ISSUER, DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import MAINTENANCE, Database
from hallpass_kit.errors import NotFound, install_error_handlers, problem_responses
from hallpass_kit.limits import AdmissionMiddleware, UnhandledErrorMiddleware, process_admission
from hallpass_kit.logs import RequestLogMiddleware
from hallpass_kit.metrics import metrics_endpoint
from hallpass_kit.readiness import (
    ReadinessCheck,
    check_readiness,
    database_ready,
    refuse_unless_ready,
)
from hallpass_kit.route_index import index_routes
from hallpass_kit.settings import CommonSettings


@dataclass(frozen=True)
class ServiceBuild:
    """What a service needs from the gateway to build its app in-process."""

    common: CommonSettings
    verifier: TokenVerifier
    run_background: bool
    consent: ConsentSettings | None = None
    # Per-service settings objects by service name ("media", "comms"); unset: read from the env.
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Clients for the services built before this one, by name; see ``client`` below.
    built: Mapping[str, FastAPI] = field(default_factory=dict)
    dev_issuer: DevIssuer | None = None
    # Signs the tokens services present to each other, whatever issues people's tokens.
    internal_issuer: DevIssuer | None = None

    def client(self, callee: str, *, caller: str) -> ServiceClient:
        """An in-process client from ``caller`` to the already-built service ``callee``."""
        tokens = DevServiceTokens(self.internal_issuer, caller) if self.internal_issuer else None
        return ServiceClient(
            name=callee, app=self.built[callee], base_url=f"http://{callee}.internal", tokens=tokens
        )


def _build_consent(build: ServiceBuild) -> FastAPI:
    # Imported when built, not when listed: the CLI's offline commands list services without
    # paying for (or depending on) every service's app and its imports.
    from hallpass_consent.app import create_app

    return create_app(
        common=build.common,
        settings=build.consent,
        verifier=build.verifier,
        run_background=build.run_background,
    )


def _upgrade(database: Database, upgrade: Callable[[Database], None]) -> None:
    try:
        upgrade(database)
    finally:
        database.dispose()


def _migrate_consent(common: CommonSettings) -> None:
    from hallpass_consent.migrations import upgrade

    _upgrade(Database(ConsentSettings().resolved_database_url(common), MAINTENANCE), upgrade)


def _build_media(build: ServiceBuild) -> FastAPI:
    from hallpass_media.app import create_app

    return create_app(
        common=build.common,
        settings=build.settings.get("media"),
        verifier=build.verifier,
        consent=build.client("consent", caller="media"),
        run_background=build.run_background,
    )


def _build_comms(build: ServiceBuild) -> FastAPI:
    from hallpass_comms.app import create_app

    return create_app(
        common=build.common,
        settings=build.settings.get("comms"),
        verifier=build.verifier,
        consent=build.client("consent", caller="comms"),
        run_background=build.run_background,
    )


def _migrate_media(common: CommonSettings) -> None:
    from hallpass_media.migrations import upgrade
    from hallpass_media.settings import MediaSettings
    from hallpass_media.storage import S3Storage, build_storage

    settings = MediaSettings()
    _upgrade(Database(settings.resolved_database_url(common), MAINTENANCE), upgrade)
    # The bucket is part of the media service's store, made with its tables.
    storage = build_storage(common, settings)
    if isinstance(storage, S3Storage):
        storage.ensure_bucket()


def _migrate_comms(common: CommonSettings) -> None:
    from hallpass_comms.migrations import upgrade
    from hallpass_comms.settings import CommsSettings

    _upgrade(Database(CommsSettings().resolved_database_url(common), MAINTENANCE), upgrade)


@dataclass(frozen=True)
class Service:
    """How the gateway builds one service in-process and brings its database up to date."""

    build: Callable[[ServiceBuild], FastAPI]
    migrate: Callable[[CommonSettings], None]


# Mount prefix -> service. The prefix is also the service's public name: its operationIds and its
# file under openapi/ are named after it.
SERVICES: dict[str, Service] = {
    "/consent": Service(build=_build_consent, migrate=_migrate_consent),
    "/media": Service(build=_build_media, migrate=_migrate_media),
    "/comms": Service(build=_build_comms, migrate=_migrate_comms),
}


def service_name(prefix: str) -> str:
    return prefix.strip("/").replace("/", "-")


class Gateway(FastAPI):
    """A FastAPI app that knows the service apps mounted in it and the dev issuer, if any."""

    services: dict[str, FastAPI]
    dev_issuer: DevIssuer | None

    def openapi(self) -> dict[str, Any]:
        if not self.openapi_schema:
            self.openapi_schema = merged_openapi(self, self.services)
        return self.openapi_schema


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]


class JsonWebKeySet(BaseModel):
    """RFC 7517 key set: the public keys that verify tokens from the built-in dev issuer."""

    model_config = ConfigDict(extra="forbid")

    keys: list[dict[str, Any]]


def gateway_operation_id(route: APIRoute) -> str:
    return f"gateway-{route.name}"


# What the gateway says of itself, the same in all-in-one and proxy mode: one published document.
GATEWAY_TITLE = "Hallpass"
GATEWAY_VERSION = "1.0.0"
GATEWAY_DESCRIPTION = (
    "One entry point for Hallpass. Each service sits under its prefix "
    "(`/consent/v1/...`); every request needs a bearer JWT except the gateway's own "
    "health and key-set endpoints."
)


def public_router(dev_issuer: DevIssuer | None) -> APIRouter:
    # Deliberately public: load balancers probe health and token verifiers fetch keys before
    # anyone can hold a token.
    router = APIRouter(tags=["gateway"])

    # async: answered on the event loop even while every worker thread is busy.
    @router.get("/healthz", response_model=Health, summary="Health check")
    async def healthz() -> Health:
        """Answers while the process is up; says nothing about the services' databases."""
        return Health(status="ok")

    @router.get(
        "/.well-known/jwks.json",
        response_model=JsonWebKeySet,
        summary="Dev issuer's public keys",
        responses=problem_responses(404),
    )
    def jwks() -> JsonWebKeySet:
        """Public keys of the built-in dev issuer (embedded mode only)."""
        if dev_issuer is None:
            raise NotFound(
                "Tokens come from the school's identity provider; its keys are published there.",
                code="no_dev_issuer",
            )
        return JsonWebKeySet.model_validate(dev_issuer.jwks())

    return router


def create_gateway(
    common: CommonSettings | None = None,
    consent_settings: ConsentSettings | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    run_background: bool = True,
    gateway_settings: GatewaySettings | None = None,
) -> Gateway:
    """All-in-one mode: every service in this process, mounted under its prefix."""
    common = common if common is not None else CommonSettings()
    gateway_settings = gateway_settings if gateway_settings is not None else GatewaySettings()
    dev_issuer: DevIssuer | None = None
    if common.uses_dev_issuer:
        dev_issuer = DevIssuer.load_or_create(
            common.dev_signing_key_path, common.auth_issuer, common.auth_audience
        )
        verifier = TokenVerifier(common, key_set=dev_issuer.key_set())
    else:
        verifier = TokenVerifier(common)
    # A key of this process only: tokens it signs mean nothing to any other process.
    internal_issuer = DevIssuer.generate(INTERNAL_ISSUER, common.auth_audience)
    verifier.trust_internal(internal_issuer)

    services: dict[str, FastAPI] = {}
    for prefix, service in SERVICES.items():
        # Each service may call the ones listed before it (media and comms ask consent).
        build = ServiceBuild(
            common=common,
            verifier=verifier,
            run_background=run_background,
            consent=consent_settings,
            settings=dict(settings or {}),
            built={service_name(p): app for p, app in services.items()},
            dev_issuer=dev_issuer,
            internal_issuer=internal_issuer,
        )
        services[prefix] = service.build(build)
    _wire_listeners(services)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # Starlette runs only the outer app's lifespan; mounted apps would otherwise never start
        # their dispatchers nor stop them cleanly.
        state: dict[str, Any] = {}
        async with AsyncExitStack() as stack:
            for service_app in services.values():
                service_state = await stack.enter_async_context(
                    service_app.router.lifespan_context(service_app)
                )
                if isinstance(service_state, Mapping):
                    state.update(service_state)
            try:
                yield state
            finally:
                if sign_in is not None:
                    await sign_in.aclose()

    gateway = Gateway(
        title=GATEWAY_TITLE,
        version=GATEWAY_VERSION,
        description=GATEWAY_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=gateway_operation_id,
    )
    index_routes(gateway)
    gateway.services = services
    gateway.dev_issuer = dev_issuer
    install_error_handlers(gateway)
    # The services first: routes are matched one by one in order, and each of the gateway's own
    # (sign-in, every web page) costs a service request about 12 µs to pass over (measured:
    # 132 route tests, 60 % of a no-op's CPU, when the mounts came last). No gateway path lies
    # under a service's prefix, so the order changes nothing but the cost.
    for prefix, service_app in services.items():
        gateway.mount(prefix, service_app, name=service_name(prefix))
    gateway.include_router(public_router(dev_issuer))
    # The dev sign-in page lists the demo school's carers, asked of consent in-process.
    sign_in = add_sign_in_routes(
        gateway,
        common=common,
        gateway_settings=gateway_settings,
        verifier=verifier,
        dev_issuer=dev_issuer,
        consent=ServiceClient(
            name="consent",
            app=services["/consent"],
            base_url="http://consent.internal",
            tokens=DevServiceTokens(internal_issuer, "gateway"),
        )
        if dev_issuer is not None and "/consent" in services
        else None,
        # A carer's schools, asked of consent in-process with the carer's own token.
        carer_links=ServiceClient(
            name="consent", app=services["/consent"], base_url="http://consent.internal"
        )
        if "/consent" in services
        else None,
    )
    if sign_in is not None:
        # Pages need a browser session: without sign-in there is nobody to show them to.
        add_web_pages(gateway, verifier)
    gateway.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    gateway.add_api_route(
        "/readyz", _readiness_of(services), methods=["GET"], include_in_schema=False
    )
    # Requests are counted (and shed) here, before routing, so a refusal costs as little as it
    # can; the mounted service's own counter (the same one) then sees the request as admitted.
    # Body limits stay with each service, which knows its endpoints.
    gateway.add_middleware(UnhandledErrorMiddleware)
    gateway.add_middleware(
        AdmissionMiddleware, admission=process_admission(common.max_concurrent_requests)
    )
    if gateway_settings.rate_limits_on(proxy_mode=False):
        # Outside admission: a caller past its rate takes no place from the others.
        gateway.add_middleware(RateLimitMiddleware, limits=RateLimits(gateway_settings, verifier))
    if common.cors_allow_origins:
        gateway.add_middleware(AllowedOriginsMiddleware, origins=common.cors_allow_origins)
    # A signed-in browser's cookie becomes its bearer token before the limits and services.
    add_browser_sign_in(gateway, sign_in)
    # The one line per request is written here; the mounted service names the route it reached.
    gateway.add_middleware(RequestLogMiddleware, service="gateway")
    gateway.add_middleware(RequestIdMiddleware)
    return gateway


def _readiness_of(services: Mapping[str, FastAPI]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """``/readyz`` of the whole process: every mounted service's checks, named by service."""

    def checks() -> dict[str, ReadinessCheck]:
        named: dict[str, ReadinessCheck] = {}
        for prefix, service_app in services.items():
            context: ServiceContext = service_app.state.hallpass
            name = service_name(prefix)
            named[f"{name}.database"] = database_ready(context.database)
            # One verifier serves every mounted service: its issuers are checked once.
            named.update(context.verifier.readiness())
            named.update({f"{name}.{check}": probe for check, probe in context.readiness.items()})
        return named

    async def readyz() -> dict[str, Any]:
        outcomes = await check_readiness(checks())
        refuse_unless_ready(outcomes)
        return {"status": "ready", "checks": outcomes}

    return readyz


def _wire_listeners(services: Mapping[str, FastAPI]) -> None:
    """Subscribe each service's handlers for other services' events to the source's dispatcher."""
    contexts: dict[str, ServiceContext] = {
        context.name: context
        for context in (getattr(app.state, "hallpass", None) for app in services.values())
        if isinstance(context, ServiceContext)
    }
    for context in contexts.values():
        for listener in context.listens:
            source = contexts.get(listener.source)
            if source is None:
                raise ValueError(
                    f"{context.name} listens to {listener.source}, which is not mounted"
                )
            source.dispatcher.subscribe(listener.event_type, listener.name, listener.handler)


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_SCHEMA_REF = "#/components/schemas/"


def merged_openapi(gateway_app: FastAPI, mounts: Mapping[str, FastAPI]) -> dict[str, Any]:
    """One OpenAPI document: the gateway's own paths plus each mounted app's, under its prefix."""
    return merge_openapi(
        gateway_openapi(gateway_app),
        {prefix: service_app.openapi() for prefix, service_app in mounts.items()},
    )


def gateway_openapi(gateway_app: FastAPI) -> dict[str, Any]:
    """The gateway's own endpoints alone, as an OpenAPI document."""
    # Built from the routes, not gateway_app.openapi(), which is the merge.
    return get_openapi(
        title=gateway_app.title,
        version=gateway_app.version,
        openapi_version=gateway_app.openapi_version,
        description=gateway_app.description,
        routes=gateway_app.routes,
        tags=gateway_app.openapi_tags,
        servers=gateway_app.servers,
    )


def merge_openapi(gateway_document: Mapping[str, Any], specs: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway's document plus each service's spec (by mount prefix), paths under the prefix.

    Works on documents, so all-in-one mode (specs from the mounted apps) and proxy mode (specs
    fetched from the upstreams) publish the same merge. Schemas shared by several services
    (``Problem``) appear once; a name two services define differently is prefixed with the later
    service's name. operationIds are prefixed with the service's name so code generators see
    each operation once.
    """
    document = copy.deepcopy(dict(gateway_document))
    paths: dict[str, Any] = document.setdefault("paths", {})
    components: dict[str, dict[str, Any]] = document.setdefault("components", {})
    tags: list[dict[str, Any]] = document.get("tags", [])
    webhooks: dict[str, Any] = document.get("webhooks", {})

    for prefix, service_spec in specs.items():
        service = service_name(prefix)
        spec = copy.deepcopy(dict(service_spec))
        spec_components: dict[str, dict[str, Any]] = spec.get("components", {})
        renames = _schema_renames(
            components.get("schemas", {}), spec_components.get("schemas", {}), service
        )
        spec = _rewrite_schema_refs(spec, renames)
        spec_components = spec.get("components", {})

        for section, entries in spec_components.items():
            target = components.setdefault(section, {})
            for name, value in entries.items():
                merged_name = renames.get(name, name) if section == "schemas" else name
                existing = target.get(merged_name)
                if existing is None:
                    target[merged_name] = value
                elif existing != value:
                    raise ValueError(
                        f"{service} defines components.{section}.{name} differently from "
                        "another service; give it a distinct name"
                    )

        for path, item in spec.get("paths", {}).items():
            merged_path = prefix.rstrip("/") + path
            if merged_path in paths:
                raise ValueError(f"{merged_path} is defined twice")
            _prefix_operation_ids(item, service)
            paths[merged_path] = item

        for name, item in spec.get("webhooks", {}).items():
            _prefix_operation_ids(item, service)
            webhooks[f"{service}-{name}"] = item

        known_tags = {tag["name"] for tag in tags}
        tags.extend(tag for tag in spec.get("tags", []) if tag["name"] not in known_tags)

    if tags:
        document["tags"] = tags
    if webhooks:
        document["webhooks"] = webhooks
    _require_unique_operation_ids(document)
    return document


def _schema_renames(
    existing: Mapping[str, Any], incoming: Mapping[str, Any], service: str
) -> dict[str, str]:
    # Renaming one schema rewrites the $refs inside the schemas that use it, which can make those
    # differ from a same-named schema too; repeat until nothing new clashes.
    renames: dict[str, str] = {}
    while True:
        rewritten = _rewrite_schema_refs(dict(incoming), renames)
        clashes = {
            name
            for name, value in rewritten.items()
            if name not in renames and name in existing and existing[name] != value
        }
        if not clashes:
            break
        for name in clashes:
            renamed = f"{service}_{name}"
            if renamed in existing or renamed in incoming:
                raise ValueError(f"cannot rename {service}'s schema {name}: {renamed} is taken")
            renames[name] = renamed
    return renames


def _rewrite_schema_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if not renames:
        return node
    if isinstance(node, dict):
        rewritten: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_SCHEMA_REF):
                name = value.removeprefix(_SCHEMA_REF)
                rewritten[key] = _SCHEMA_REF + renames.get(name, name)
            else:
                rewritten[key] = _rewrite_schema_refs(value, renames)
        return rewritten
    if isinstance(node, list):
        return [_rewrite_schema_refs(value, renames) for value in node]
    return node


def _prefix_operation_ids(path_item: dict[str, Any], service: str) -> None:
    for method, operation in path_item.items():
        if method in _HTTP_METHODS and isinstance(operation, dict) and "operationId" in operation:
            operation["operationId"] = f"{service}-{operation['operationId']}"


def _require_unique_operation_ids(document: Mapping[str, Any]) -> None:
    seen: dict[str, str] = {}
    for section in ("paths", "webhooks"):
        for path, item in document.get(section, {}).items():
            for method, operation in item.items():
                if method not in _HTTP_METHODS or not isinstance(operation, dict):
                    continue
                operation_id = operation.get("operationId")
                if operation_id is None:
                    continue
                where = f"{method.upper()} {path}"
                if operation_id in seen:
                    raise ValueError(
                        f"operationId {operation_id} is used by {seen[operation_id]} and {where}"
                    )
                seen[operation_id] = where
