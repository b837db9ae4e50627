"""The consent service as an ASGI app (standalone, or mounted by the gateway)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from fastapi import Depends, FastAPI

from hallpass_consent import migrations
from hallpass_consent.carers.directory import LocalCarerDirectory
from hallpass_consent.carers.endpoints import me_router as carers_me_router
from hallpass_consent.carers.endpoints import router as carers_router
from hallpass_consent.common import AUDITORS, audit
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.endpoints import router as consents_router
from hallpass_consent.consents.scans import MAX_SCANS_PER_REQUEST
from hallpass_consent.context import ConsentContext
from hallpass_consent.decisions.endpoints import router as decisions_router
from hallpass_consent.events import EVENTS
from hallpass_consent.families.endpoints import router as families_router
from hallpass_consent.imports.endpoints import router as imports_router
from hallpass_consent.imports.service import IMPORT_QUEUED, ImportRunner
from hallpass_consent.imports.worker import ImportWorker
from hallpass_consent.me.endpoints import router as me_router
from hallpass_consent.models import kit_tables
from hallpass_consent.pupils.endpoints import router as pupils_router
from hallpass_consent.requests.endpoints import link_router as request_link_router
from hallpass_consent.requests.endpoints import router as requests_router
from hallpass_consent.roster.endpoints import router as roster_router
from hallpass_consent.schools.endpoints import router as schools_router
from hallpass_consent.settings import ConsentSettings
from hallpass_consent.sheets.endpoints import router as sheets_router
from hallpass_kit.app import create_service_app, identified, single_valued_query
from hallpass_kit.audit import keep_checkpoints
from hallpass_kit.audit_endpoints import audit_router
from hallpass_kit.auth import TokenVerifier
from hallpass_kit.db import Database, utcnow
from hallpass_kit.idempotency import purge_expired
from hallpass_kit.outbox import Dispatcher
from hallpass_kit.settings import CommonSettings

logger = logging.getLogger("hallpass.consent")

DESCRIPTION = """Parents' consent per pupil and per purpose (C1 to C12): evidence, history, instant
withdrawal, and fast decisions for many pupils at once. Every error is RFC 9457 problem+json with a
stable `code` and, where a policy rule is the reason, its `rule`."""


def build_context(
    common: CommonSettings,
    settings: ConsentSettings,
    *,
    verifier: TokenVerifier,
    database: Database | None = None,
    run_background: bool = True,
    clock: Callable[[], dt.datetime] = utcnow,
) -> ConsentContext:
    database = database or Database(settings.resolved_database_url(common), common.database_options)
    dispatcher = Dispatcher(database, kit_tables, service="consent")
    keep_checkpoints(audit, database, dispatcher, common, "consent")

    def sweep() -> None:
        with database.session() as session:
            announced = consents.sweep_expired(session, now=clock())
            purged = purge_expired(session, kit_tables)
        if announced or purged:
            logger.info(
                "expiry sweep: %s lapsed grants announced, %s old keys purged", announced, purged
            )

    dispatcher.every(dt.timedelta(minutes=settings.expiry_sweep_minutes), "expiry-sweep", sweep)
    # Background imports ride the outbox's job engine (claims, leases): imports/service.py.
    imports = ImportRunner(database, max_rows=settings.max_import_rows, clock=clock)
    dispatcher.subscribe(IMPORT_QUEUED, "pupil-imports", imports.handle)
    context = ConsentContext(
        name="consent",
        database=database,
        tables=kit_tables,
        verifier=verifier,
        dispatcher=dispatcher,
        audit=audit,
        run_background=run_background,
        clock=clock,
        settings=settings,
    )
    # Consent owns carers' records, so it finds a signed-in carer's in its own tables.
    context.carers = LocalCarerDirectory(database, clock=clock)
    return context


def create_app(
    *,
    common: CommonSettings,
    settings: ConsentSettings | None = None,
    verifier: TokenVerifier,
    database: Database | None = None,
    run_background: bool = True,
    migrate: bool = True,
    clock: Callable[[], dt.datetime] = utcnow,
) -> FastAPI:
    settings = settings or ConsentSettings()
    context = build_context(
        common,
        settings,
        verifier=verifier,
        database=database,
        run_background=run_background,
        clock=clock,
    )
    if migrate:
        migrations.upgrade(context.database)
    scans_limit = MAX_SCANS_PER_REQUEST * settings.max_scan_bytes + 256 * 1024
    # Imports get a lane of their own, so they never wait behind the outbox's events.
    imports = ImportWorker(
        context.database,
        ImportRunner(context.database, max_rows=settings.max_import_rows, clock=clock),
        clock=clock,
    )
    app = create_service_app(
        context=context,
        settings=common,
        events=EVENTS,
        workers=[imports],
        # The CSV is read whole; a little room over the import limit for the request's framing.
        body_limits={
            "import_pupils": settings.max_import_bytes + 64 * 1024,
            # Scans of a signed form: a few pages, each within the scan limit, plus framing.
            "record_consent_with_evidence": scans_limit,
            "add_evidence": scans_limit,
            "create_import": settings.max_import_bytes + 64 * 1024,
        },
        title="Hallpass consent",
        version="1.0.0",
        description=DESCRIPTION,
        routers=[
            schools_router,
            pupils_router,
            imports_router,
            consents_router,
            decisions_router,
            sheets_router,
            roster_router,
            families_router,
            carers_router,
            requests_router,
            audit_router(audit, AUDITORS),
        ],
    )
    # A carer's own routes need no school chosen up front: a carer with children in two schools
    # sees both, and one not linked yet may redeem a code. Each route checks the carer itself.
    for router in (me_router, carers_me_router):
        app.include_router(router, dependencies=[Depends(identified), Depends(single_valued_query)])
    # Deliberately public: a consent request's personal link is its own credential (see
    # requests/endpoints.py); no bearer token is asked for, and none is looked at.
    app.include_router(request_link_router, dependencies=[Depends(single_valued_query)])
    return app
