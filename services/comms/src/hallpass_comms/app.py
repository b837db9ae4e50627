"""The comms service as an ASGI app (standalone, or mounted by the gateway)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from fastapi import FastAPI

from hallpass_comms import migrations
from hallpass_comms.bounces import BounceMailbox, BounceMailboxError
from hallpass_comms.common import AUDITORS, audit
from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.consent_requests.service import mail_due_handler
from hallpass_comms.context import CommsContext
from hallpass_comms.delivery import DeliveryWorker, MailTransport, transport_from_settings
from hallpass_comms.delivery.limits import SendingLimits
from hallpass_comms.delivery.transports import SmtpTransport
from hallpass_comms.history.endpoints import router as history_router
from hallpass_comms.mail_settings.endpoints import router as settings_router
from hallpass_comms.messages.endpoints import router as messages_router
from hallpass_comms.models import kit_tables
from hallpass_comms.pastoral.endpoints import router as pastoral_router
from hallpass_comms.reminders.service import remind_every_school
from hallpass_comms.reports.endpoints import router as reports_router
from hallpass_comms.settings import CommsSettings
from hallpass_kit.app import create_service_app
from hallpass_kit.audit import keep_checkpoints
from hallpass_kit.audit_endpoints import audit_router
from hallpass_kit.auth import RememberedCarerLinks, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database, utcnow
from hallpass_kit.idempotency import purge_expired
from hallpass_kit.outbox import Dispatcher, Listener
from hallpass_kit.readiness import ReadinessCheck
from hallpass_kit.settings import CommonSettings

logger = logging.getLogger("hallpass.comms")

DESCRIPTION = """Official email from the school to parents and carers (E1 to E10): sent only from
school accounts, with the head and/or deputy copied, one envelope per family, outside mail
approved first, sensitive mail as a secure link, chain messages refused, out-of-hours mail held
for the next school-day morning, a history per family, a pastoral inbox and reports of offensive
mail. Every error is RFC 9457 problem+json with a stable `code` and, where a policy rule is the
reason, its `rule`."""


def build_context(
    common: CommonSettings,
    settings: CommsSettings,
    *,
    verifier: TokenVerifier,
    consent: ServiceClient,
    database: Database | None = None,
    run_background: bool = True,
    clock: Callable[[], dt.datetime] = utcnow,
) -> CommsContext:
    database = database or Database(settings.resolved_database_url(common), common.database_options)
    dispatcher = Dispatcher(database, kit_tables, service="comms")
    keep_checkpoints(audit, database, dispatcher, common, "comms")

    def purge() -> None:
        with database.session() as session:
            purged = purge_expired(session, kit_tables)
        if purged:
            logger.info("idempotency sweep: %s old keys purged", purged)

    consent_client = ConsentClient(consent)

    def remind() -> None:
        sent = remind_every_school(
            database, consent_client, within_days=settings.reminder_within_days, now=clock()
        )
        if sent:
            logger.info("renewal reminders: %s messages", sent)

    dispatcher.every(dt.timedelta(hours=6), "idempotency-sweep", purge)
    if settings.bounce_imap_host:
        # Delivery status notifications: each pass reads the unseen ones and flags them read.
        mailbox = BounceMailbox(settings, database, clock=clock)

        def read_bounces() -> None:
            try:
                found = mailbox.read_once()
            except BounceMailboxError as exc:
                logger.warning("bounces: %s; trying again on the next pass", exc)
                return
            if found.reports or found.left:
                logger.info("bounces: %s", found)

        dispatcher.every(
            dt.timedelta(minutes=settings.bounce_interval_minutes), "bounce-mailbox", read_bounces
        )
    if settings.reminder_within_days > 0:
        dispatcher.every(
            dt.timedelta(minutes=settings.reminder_interval_minutes), "renewal-reminders", remind
        )
    context = CommsContext(
        name="comms",
        database=database,
        tables=kit_tables,
        verifier=verifier,
        dispatcher=dispatcher,
        audit=audit,
        run_background=run_background,
        clock=clock,
        settings=settings,
        consent=consent_client,
    )
    # Carers who sign in with their own accounts: their records are consent's to know.
    context.carers = RememberedCarerLinks(consent_client.carer_links)
    # A consent request's mail round, announced by consent: each carer due gets their link.
    context.listens.append(
        Listener(
            source="consent",
            event_type="consent_request.mail_due",
            name="comms-consent-requests",
            handler=mail_due_handler(
                database, consent_client, settings.resolved_public_base_url(common), clock
            ),
        )
    )
    return context


def create_app(
    *,
    common: CommonSettings,
    settings: CommsSettings | None = None,
    verifier: TokenVerifier,
    consent: ServiceClient,
    database: Database | None = None,
    run_background: bool = True,
    migrate: bool = True,
    transport: MailTransport | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> FastAPI:
    settings = settings or CommsSettings()
    clock = clock or utcnow
    context = build_context(
        common,
        settings,
        verifier=verifier,
        consent=consent,
        database=database,
        run_background=run_background,
        clock=clock,
    )
    if migrate:
        migrations.upgrade(context.database)
    worker = DeliveryWorker(
        context.database,
        _ready_to_send(context.readiness, transport or transport_from_settings(settings, common)),
        public_base_url=settings.resolved_public_base_url(common),
        clock=clock,
        limits=SendingLimits.from_settings(settings),
    )
    context.delivery_worker = worker
    return create_service_app(
        context=context,
        settings=common,
        title="Hallpass comms",
        version="1.0.0",
        description=DESCRIPTION,
        routers=[
            settings_router,
            messages_router,
            history_router,
            pastoral_router,
            reports_router,
            audit_router(audit, AUDITORS),
        ],
        workers=[worker],
    )


def _ready_to_send(readiness: dict[str, ReadinessCheck], transport: MailTransport) -> MailTransport:
    """``/readyz`` checks whatever sends the mail when it can be checked: the SMTP server or relay
    answers (and offers TLS where required), Microsoft's token endpoint gives Graph a token. The
    .eml folder needs none; Gmail's tokens are per mailbox, so only sending tries them."""
    ready = getattr(transport, "ready", None)
    if callable(ready):
        # "smtp" for the password relay, as it always was; "mail" for the others.
        readiness["smtp" if isinstance(transport, SmtpTransport) else "mail"] = ready
    return transport
