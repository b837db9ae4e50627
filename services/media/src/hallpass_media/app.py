"""The media service as an ASGI app (standalone, or mounted by the gateway)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from hallpass_kit.app import create_service_app
from hallpass_kit.audit import keep_checkpoints
from hallpass_kit.audit_endpoints import audit_router
from hallpass_kit.auth import RememberedCarerLinks, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database, utcnow
from hallpass_kit.idempotency import purge_expired
from hallpass_kit.outbox import Dispatcher, Listener
from hallpass_kit.settings import CommonSettings
from hallpass_media import migrations
from hallpass_media.common import AUDITORS, audit
from hallpass_media.consent_link import ConsentLink
from hallpass_media.context import MediaContext
from hallpass_media.devices.endpoints import router as devices_router
from hallpass_media.events import EVENTS
from hallpass_media.livestreams.endpoints import router as livestreams_router
from hallpass_media.media.endpoints import router as media_router
from hallpass_media.media.scan import scan_jobs, scan_pending
from hallpass_media.models import kit_tables
from hallpass_media.publications.endpoints import router as publications_router
from hallpass_media.publications.takedown import takedown_handler
from hallpass_media.scanning import Scanner
from hallpass_media.school_settings.endpoints import router as settings_router
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import S3Storage, build_storage
from hallpass_media.subject_access.endpoints import router as subject_access_router

logger = logging.getLogger("hallpass.media")

DESCRIPTION = """School photos from upload to publication (M1 to M9): uploads only from registered
school devices, a scan of every picture (metadata, file name, text in the picture, faces), checks
before anything is published, clean copies without metadata, and takedown when consent is
withdrawn. Every error is RFC 9457 problem+json with a stable `code` and, where a policy rule is
the reason, its `rule`."""


def build_context(
    common: CommonSettings,
    settings: MediaSettings,
    *,
    verifier: TokenVerifier,
    consent: ServiceClient,
    database: Database | None = None,
    run_background: bool = True,
    scanner: Scanner | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> MediaContext:
    database = database or Database(settings.resolved_database_url(common), common.database_options)
    dispatcher = Dispatcher(database, kit_tables, service="media")
    keep_checkpoints(audit, database, dispatcher, common, "media")
    storage = build_storage(common, settings)
    context = MediaContext(
        name="media",
        database=database,
        tables=kit_tables,
        verifier=verifier,
        dispatcher=dispatcher,
        audit=audit,
        run_background=run_background,
        clock=clock or utcnow,
        storage=storage,
        consent=ConsentLink(consent),
        settings=settings,
        scanner=scanner,
    )
    # Carers who sign in with their own accounts: their records are consent's to know.
    context.carers = RememberedCarerLinks(context.consent.carer_links)

    context.readiness["storage"] = storage.ready

    # The scan runs in the dispatcher's thread, between deliveries. One scan queue for the
    # service's life, so /metrics reports its depth and oldest upload.
    scans = scan_jobs(database)

    def scan() -> None:
        scanned = scan_pending(database, storage, jobs=scans, scanner=context.get_scanner)
        if scanned:
            logger.info("scanned %s uploads", scanned)
            dispatcher.wake()

    def housekeeping() -> None:
        with database.session() as session:
            purge_expired(session, kit_tables)

    dispatcher.every(dt.timedelta(seconds=settings.scan_interval_seconds), "media-scan", scan)
    dispatcher.every(dt.timedelta(hours=1), "media-housekeeping", housekeeping)
    # consent.changed from the consent service flags publications for takedown (M7).
    context.listens.append(
        Listener(
            source="consent",
            event_type="consent.changed",
            name="media-takedown",
            handler=takedown_handler(database, context.clock),
        )
    )
    return context


def create_app(
    *,
    common: CommonSettings,
    settings: MediaSettings | None = None,
    verifier: TokenVerifier,
    consent: ServiceClient,
    database: Database | None = None,
    run_background: bool = True,
    migrate: bool = True,
    scanner: Scanner | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> FastAPI:
    settings = settings or MediaSettings()
    context = build_context(
        common,
        settings,
        verifier=verifier,
        consent=consent,
        database=database,
        run_background=run_background,
        scanner=scanner,
        clock=clock,
    )
    if migrate:
        migrations.upgrade(context.database)
        if isinstance(context.storage, S3Storage):
            context.storage.ensure_bucket()
    # Multipart bodies: the picture plus its form fields and boundaries.
    upload_limit = settings.max_upload_bytes + 256 * 1024
    app = create_service_app(
        context=context,
        settings=common,
        events=EVENTS,
        body_limits={"upload_media": upload_limit, "check_publication_file": upload_limit},
        title="Hallpass media",
        version="1.0.0",
        description=DESCRIPTION,
        routers=[
            devices_router,
            media_router,
            publications_router,
            livestreams_router,
            subject_access_router,
            settings_router,
            audit_router(audit, AUDITORS),
        ],
    )
    _omit_rather_than_null_in_forms(app)
    _stop_scan_workers_at_shutdown(app, context)
    return app


def _stop_scan_workers_at_shutdown(app: FastAPI, media: MediaContext) -> None:
    """Scan workers run whether or not the app runs background work (uploads and check-file
    use them too), so they are stopped with the app itself, after everything else."""
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        try:
            async with serve(app) as state:
                yield state
        finally:
            await run_in_threadpool(media.close)

    app.router.lifespan_context = lifespan


def _omit_rather_than_null_in_forms(app: FastAPI) -> None:
    """A multipart form has no null: an optional field is left out. Say so in the schema.

    FastAPI documents an optional form field as "X or null", which a client could only send as
    the text "null" (refused as not an X).
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.get("components", {}).get("schemas", {})
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                content = operation.get("requestBody", {}).get("content", {})
                ref = content.get("multipart/form-data", {}).get("schema", {}).get("$ref")
                if not ref:
                    continue
                for field in schemas[ref.rsplit("/", 1)[-1]].get("properties", {}).values():
                    alternatives = field.get("anyOf")
                    if not alternatives or {"type": "null"} not in alternatives:
                        continue
                    rest = [a for a in alternatives if a != {"type": "null"}]
                    del field["anyOf"]
                    if len(rest) == 1:
                        field.update(rest[0])
                    else:
                        field["anyOf"] = rest
                    if "default" in field and field["default"] is None:
                        del field["default"]
        return document

    app.openapi = openapi  # type: ignore[method-assign]
