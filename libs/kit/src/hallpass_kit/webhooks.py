"""Events leave a service as Standard Webhooks: subscriptions, fan-out, signed delivery, receiver.

When the outbox dispatcher handles an event, one delivery row per matching subscriber is written
in the dispatcher's own transaction (``fan_out``). Deliveries are sent after that commit, signed
with the subscriber's secret (headers ``webhook-id`` = the event id, ``webhook-timestamp``,
``webhook-signature``), retried with backoff, and dead-lettered after the last attempt; a dead
letter can be replayed. Delivered rows and dispatched outbox events are purged after a retention
period. Subscribers come from settings (the deployment's own services, every school) or from the
admin API (a school's CMS, that school only).

A service that listens to another's events (``ServiceContext.listens``) gets a public receiver,
``POST /v1/webhooks/{source}``: the signature is its authentication, the listener's handler its
body, and the handler's record of consumed event ids makes a redelivery change nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import inspect
import ipaddress
import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hallpass_kit.app import ServiceContext, SessionDep, context_of, require_roles
from hallpass_kit.auth import Principal, Role
from hallpass_kit.db import Database
from hallpass_kit.errors import (
    Conflict,
    NotFound,
    ProblemDetail,
    ServiceUnavailable,
    Unauthenticated,
    Unprocessable,
    problem_responses,
)
from hallpass_kit.fields import STORABLE
from hallpass_kit.jobs import (
    Backoff,
    Job,
    JobColumns,
    JobQueue,
    Outcome,
    Queue,
    Runner,
    Settled,
    Settlement,
)
from hallpass_kit.outbox import Event, Listener
from hallpass_kit.pagination import Page, decode_position, encode_position
from hallpass_kit.settings import CommonSettings, Environment
from hallpass_kit.tables import KitTables

logger = logging.getLogger("hallpass.webhooks")

# Module level: a prometheus collector may be registered once per process, whatever the number
# of apps built in it (the gateway builds three, tests many).
WEBHOOK_FAILURES = Counter(
    "hallpass_webhook_failures_total",
    "Webhook delivery attempts that failed (refused, timed out or unreachable).",
    ["service", "subscriber"],
)

SUBSCRIBER_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MANAGERS = (Role.admin, Role.head)
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


class SubscriberSetting(BaseModel):
    """A deployment-wide subscriber, for every school (media hearing consent.changed)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SUBSCRIBER_NAME)
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1)
    # Without one, the secret is derived from HALLPASS_WEBHOOK_SECRET and the sending service's
    # name, which a receiver in the same deployment derives alike.
    secret: SecretStr | None = None


class WebhookSettings(BaseSettings):
    """``HALLPASS_WEBHOOK_*``. The shared secret itself is ``HALLPASS_WEBHOOK_SECRET``
    (CommonSettings.webhook_secret), so no field here may be called ``secret``."""

    model_config = SettingsConfigDict(env_prefix="HALLPASS_WEBHOOK_", extra="ignore")

    # JSON list of {name, url, events, secret?}.
    subscribers: list[SubscriberSetting] = Field(default_factory=list)
    # A receiver's secret per sending service, where it is not derived from the shared secret.
    sources: dict[str, SecretStr] = Field(default_factory=dict)
    # Hosts a deployment reaches over plain http inside its own network (compose's ``media``).
    # Anywhere else production requires https; development and test also allow loopback http.
    http_hosts: list[str] = Field(default_factory=list)
    max_attempts: int = Field(default=10, ge=1, le=100)
    first_retry_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_retry_seconds: float = Field(default=6 * 3600.0, gt=0, le=7 * 24 * 3600)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # A claimed delivery nobody finished (a worker died mid-send) is due again after this.
    lease_seconds: float = Field(default=120.0, gt=0, le=3600)
    batch_size: int = Field(default=50, ge=1, le=1000)
    delivery_interval_seconds: float = Field(default=2.0, gt=0, le=3600)
    # Delivered webhooks, dispatched outbox events and consumed event ids are kept this long;
    # dead letters are kept until replayed.
    retention_days: float = Field(default=14.0, gt=0, le=3650)
    purge_interval_minutes: float = Field(default=60.0, gt=0, le=24 * 60)


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def url_refusal(url: str, *, env: Environment, http_hosts: Sequence[str] = ()) -> str | None:
    """Why a subscriber URL is refused, or None when it may be used."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "The URL cannot be read."
    if not host:
        return "The URL has no host."
    if parts.username or parts.password:
        return "The URL may not carry credentials; the signature authenticates the sender."
    if parts.scheme == "https":
        return None
    if parts.scheme != "http":
        return "Only https URLs are accepted (http for loopback outside production)."
    if host in http_hosts:
        return None
    if env is not Environment.production and _is_loopback(host):
        return None
    if env is Environment.production:
        return "Production delivers webhooks over https only."
    return "Plain http is accepted for loopback addresses only; use https."


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    """A subscriber's signing secret in the Standard Webhooks form (``whsec_`` + base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def derived_secret(webhook_secret: str, source: str) -> str:
    """The secret a service's settings subscribers share with it, from HALLPASS_WEBHOOK_SECRET:
    the sender and a receiver in the same deployment both compute it from the sender's name."""
    key = hmac.new(webhook_secret.encode(), f"hallpass-webhook:{source}".encode(), hashlib.sha256)
    return "whsec_" + base64.b64encode(key.digest()).decode()


def envelope_model(event_type: str, payload: type[BaseModel]) -> type[BaseModel]:
    """The body of one event type's webhook: the envelope around its typed payload."""
    name = re.sub(r"(?:^|[._])(\w)", lambda m: m.group(1).upper(), event_type) + "Webhook"
    model: type[BaseModel] = create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        __doc__=payload.__doc__,
        type=(Literal[event_type], ...),  # type: ignore[arg-type]
        timestamp=(dt.datetime, Field(description="When the event happened.")),
        school=(str, Field(description="The school the event belongs to.")),
        data=(payload, ...),
    )
    return model


class WebhookEnvelope(BaseModel):
    """What a receiver reads before handing the payload to the listener."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100)
    timestamp: dt.datetime
    school: str = Field(min_length=1, max_length=64)
    data: dict[str, Any]


@dataclass(frozen=True)
class Subscriber:
    key: str
    name: str
    url: str
    events: frozenset[str]
    secret: str


class Webhooks:
    """One service's outgoing webhooks: fan-out, delivery, replay and purge."""

    def __init__(
        self,
        context: ServiceContext,
        common: CommonSettings,
        settings: WebhookSettings,
        events: Mapping[str, type[BaseModel]],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.service = context.name
        self.database: Database = context.database
        self.tables: KitTables = context.tables
        self.clock = context.clock
        self.settings = settings
        self.events = dict(events)
        self.env = common.env
        default_secret = derived_secret(common.webhook_secret, context.name)
        self._configured: dict[str, Subscriber] = {}
        for entry in settings.subscribers:
            refusal = url_refusal(entry.url, env=common.env, http_hosts=settings.http_hosts)
            if refusal is not None:
                raise ValueError(f"HALLPASS_WEBHOOK_SUBSCRIBERS: {entry.name}: {refusal}")
            key = f"settings:{entry.name}"
            secret = entry.secret.get_secret_value() if entry.secret else default_secret
            self._configured[key] = Subscriber(
                key, entry.name, entry.url, frozenset(entry.events), secret
            )
        self._client = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_seconds),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            transport=transport,
            follow_redirects=False,
        )
        self.jobs = JobQueue(self.database, self._queue(), clock=self.clock)
        self._runner = Runner(
            self.database,
            f"{self.service}-webhooks",
            self._run_pass,
            poll_interval=settings.delivery_interval_seconds,
        )

    def close(self) -> None:
        self._client.close()

    # -- fan-out --------------------------------------------------------------------------

    def fan_out(self, session: Session, event: Event) -> int:
        """Write one delivery per subscriber of ``event`` in the dispatcher's transaction."""
        payload = self.events.get(event.type)
        if payload is None:
            return 0
        subscribers = self._subscribers_for(session, event.type, event.school)
        if not subscribers:
            return 0
        d = self.tables.webhook_delivery
        # The outbox is delivered at least once: a second pass over one event adds nothing.
        already = set(session.scalars(select(d.c.subscriber).where(d.c.event_id == event.id)).all())
        body = {
            "type": event.type,
            "timestamp": event.occurred_at.isoformat(),
            "school": event.school,
            "data": payload.model_validate(event.payload).model_dump(mode="json"),
        }
        now = self.clock()
        rows = [
            {
                "id": uuid.uuid4(),
                "event_id": event.id,
                "event_type": event.type,
                "school": event.school,
                "subscriber": subscriber.key,
                "body": body,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "created_at": now,
                "finished_at": None,
            }
            for subscriber in subscribers
            if subscriber.key not in already
        ]
        if rows:
            session.execute(insert(d), rows)
        return len(rows)

    def _subscribers_for(self, session: Session, event_type: str, school: str) -> list[Subscriber]:
        found = [s for s in self._configured.values() if event_type in s.events]
        s = self.tables.webhook_subscription
        for row in session.execute(select(s).where(s.c.school == school)).all():
            if event_type in row.events:
                found.append(_subscriber_of(row))
        return found

    def _subscriber(self, session: Session, key: str) -> Subscriber | None:
        if key in self._configured:
            return self._configured[key]
        if not key.startswith("subscription:"):
            return None
        s = self.tables.webhook_subscription
        row = session.execute(
            select(s).where(s.c.id == uuid.UUID(key.removeprefix("subscription:")))
        ).first()
        return _subscriber_of(row) if row is not None else None

    # -- delivery -------------------------------------------------------------------------

    def _queue(self) -> Queue:
        d = self.tables.webhook_delivery
        return Queue(
            service=self.service,
            kind="webhook",
            table=d,
            waiting=d.c.status == PENDING,
            # A dead letter is marked by its status, which ``waiting`` leaves out.
            columns=JobColumns(dead_at=None),
            order_by=(d.c.next_attempt_at,),
            max_attempts=self.settings.max_attempts,
            lease=dt.timedelta(seconds=self.settings.lease_seconds),
            backoff=Backoff(
                first=dt.timedelta(seconds=self.settings.first_retry_seconds),
                cap=dt.timedelta(seconds=self.settings.max_retry_seconds),
            ),
            dead_values=lambda now: {"status": DEAD, "finished_at": now},
            on_settled=self._settled,
        )

    def deliver_due(self, now: dt.datetime | None = None) -> int:
        """Send every delivery due at ``now`` (default: the clock); how many were delivered."""
        return self.jobs.run_until_idle(self._deliver, limit=self.settings.batch_size, now=now)

    def start(self) -> None:
        self._runner.start()

    def stop(self) -> None:
        self._runner.stop(timeout=self.settings.timeout_seconds + 5)

    def _run_pass(self) -> bool:
        report = self.jobs.run_batch(
            self._deliver,
            limit=self.settings.batch_size,
            stopping=lambda: self._runner.stopping,
        )
        return report.claimed == self.settings.batch_size and not report.halted

    def _deliver(self, job: Job) -> Outcome:
        row = job.row
        with self.database.session(read_only=True) as session:
            subscriber = self._subscriber(session, row["subscriber"])
        if subscriber is None:
            return Outcome.fail("The subscriber is no longer configured.")
        error = self._send(row["event_id"], row["body"], subscriber)
        if error is None:
            return Outcome.done({"status": DELIVERED, "finished_at": self.clock()})
        return Outcome.retry(error)

    def _send(
        self, event_id: uuid.UUID, body: Mapping[str, Any], subscriber: Subscriber
    ) -> str | None:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        # The wall clock, not the service's clock: receivers compare it with theirs.
        sent_at = dt.datetime.now(dt.UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": str(event_id),
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(subscriber.secret).sign(str(event_id), sent_at, data),
            "user-agent": f"hallpass-{self.service}",
        }
        try:
            response = self._client.post(subscriber.url, content=data.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:500]}"

    def _settled(self, session: Session, job: Job, outcome: Outcome, settled: Settlement) -> None:
        """Each subscriber's run of failures, kept in the outcome's own transaction."""
        if settled.state is Settled.lost:
            return
        key = job.row["subscriber"]
        w = self.tables.webhook_subscriber
        current = session.execute(select(w).where(w.c.subscriber == key)).first()
        values: dict[str, Any]
        if settled.state is Settled.done:
            values = {"consecutive_failures": 0, "last_delivered_at": settled.at}
        else:
            WEBHOOK_FAILURES.labels(self.service, key).inc()
            logger.warning("webhook %s to %s failed: %s", job.key, key, settled.error)
            failures = (current.consecutive_failures if current is not None else 0) + 1
            values = {
                "consecutive_failures": failures,
                "last_failed_at": settled.at,
                "last_error": settled.error,
            }
        if current is None:
            blank = {"last_delivered_at": None, "last_failed_at": None, "last_error": None}
            session.execute(insert(w).values(subscriber=key, **{**blank, **values}))
        else:
            session.execute(update(w).where(w.c.subscriber == key).values(**values))

    # -- replay and purge -----------------------------------------------------------------

    def replay(self, session: Session, *, school: str, delivery_id: uuid.UUID) -> None:
        """Put a dead letter back in the queue with a fresh run of attempts."""
        d = self.tables.webhook_delivery
        replayed = session.execute(
            update(d)
            .where(d.c.id == delivery_id, d.c.school == school, d.c.status == DEAD)
            .values(
                status=PENDING,
                attempts=0,
                next_attempt_at=self.clock(),
                finished_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        if replayed.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("No such dead letter.", code="dead_letter_not_found")

    def purge(self, now: dt.datetime | None = None) -> tuple[int, int]:
        """Delete delivered webhooks and dispatched outbox events past the retention period."""
        cutoff = (now or self.clock()) - dt.timedelta(days=self.settings.retention_days)
        d, o, c = self.tables.webhook_delivery, self.tables.outbox_event, self.tables.consumed_event
        with self.database.session() as session:
            deliveries = session.execute(
                delete(d).where(d.c.status == DELIVERED, d.c.finished_at < cutoff)
            )
            events = session.execute(
                delete(o).where(o.c.dispatched_at.is_not(None), o.c.dispatched_at < cutoff)
            )
            session.execute(delete(c).where(c.c.consumed_at < cutoff))
        return deliveries.rowcount, events.rowcount  # type: ignore[attr-defined]


def _subscriber_of(row: Any) -> Subscriber:
    return Subscriber(
        f"subscription:{row.id}", row.name, row.url, frozenset(row.events), row.secret
    )


def webhooks_of(app: FastAPI) -> Webhooks:
    found: Webhooks = app.state.hallpass_webhooks
    return found


def install_webhooks(
    app: FastAPI,
    context: ServiceContext,
    common: CommonSettings,
    events: Mapping[str, type[BaseModel]],
    *,
    dependencies: Sequence[Any] = (),
    settings: WebhookSettings | None = None,
) -> Webhooks:
    """Give a service app its outgoing webhooks (documented, fanned out, purged), the
    subscription admin API when it announces events (behind ``dependencies``), and a public
    receiver when it listens to another service. The returned sender is a background worker."""
    settings = settings if settings is not None else WebhookSettings()
    webhooks = Webhooks(context, common, settings, events)
    app.state.hallpass_webhooks = webhooks

    def fan_out(event: Event) -> None:
        # The job engine runs subscribers outside its own transactions, so this one is free to
        # write; a retried event finds its deliveries already there.
        with context.database.session() as session:
            webhooks.fan_out(session, event)

    def purge() -> None:
        deliveries, events = webhooks.purge()
        if deliveries or events:
            logger.info("purged %s delivered webhooks and %s outbox events", deliveries, events)

    context.dispatcher.subscribe("*", f"{context.name}-webhooks", fan_out)
    context.dispatcher.every(
        dt.timedelta(minutes=settings.purge_interval_minutes), "webhook-purge", purge
    )
    for event_type, payload in events.items():
        _document_event(app, event_type, payload)
    _answers_of_subscribers_not_validated(app)
    if events:
        app.include_router(admin_router(sorted(events)), dependencies=list(dependencies))
    if context.listens:
        # Public by design: the signature authenticates the sending service.
        app.include_router(receiver_router(context.listens, common, settings))
    return webhooks


def _answers_of_subscribers_not_validated(app: FastAPI) -> None:
    # FastAPI lists a 422 for every route with a body; a subscriber answers what it likes.
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        for path_item in document.get("webhooks", {}).values():
            for operation in path_item.values():
                operation.get("responses", {}).pop("422", None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _document_event(app: FastAPI, event_type: str, payload: type[BaseModel]) -> None:
    body_model = envelope_model(event_type, payload)

    def announce(body: Any) -> None:
        pass  # only documented: the service sends this, it never receives it

    announce.__annotations__["body"] = body_model
    app.webhooks.add_api_route(
        event_type,
        announce,
        methods=["POST"],
        summary=event_type,
        description=inspect.cleandoc(payload.__doc__ or "")
        + "\n\nSigned as a Standard Webhook: `webhook-id` is the event id (the same on every "
        "retry; ignore one you have handled), `webhook-timestamp`, `webhook-signature`. "
        "Answer 2xx when handled; anything else is retried with backoff.",
        operation_id=f"webhook-{event_type}",
        status_code=204,
        response_class=Response,
    )


# -- admin API ------------------------------------------------------------------------------


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=64, pattern=SUBSCRIBER_NAME), STORABLE]
    url: Annotated[str, Field(min_length=1, max_length=2000), STORABLE]
    events: list[Annotated[str, Field(min_length=1, max_length=100), STORABLE]] = Field(
        min_length=1, max_length=20
    )

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[str]) -> list[str]:
        return sorted(set(events))


class SubscriptionView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    name: str
    url: str
    events: list[str]
    created_at: dt.datetime
    created_by: str
    # How deliveries to it are going: failures in a row, and the last of each outcome.
    consecutive_failures: int
    last_delivered_at: dt.datetime | None
    last_failed_at: dt.datetime | None
    last_error: str | None


class CreatedSubscription(SubscriptionView):
    # Shown once, at creation: verify each delivery's signature with it.
    secret: str


class SubscriptionList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[SubscriptionView]


class DeadLetterView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    subscriber: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    failed_at: dt.datetime
    body: dict[str, Any]


# A school's subscriptions are few (its CMS, perhaps a second site); a cap keeps fan-out cheap.
MAX_SUBSCRIPTIONS_PER_SCHOOL = 20


def admin_router(event_types: Sequence[str]) -> APIRouter:
    """Subscriptions and dead letters, for the school's admin and head."""
    router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problem_responses(403))
    known = frozenset(event_types)

    @router.post(
        "/webhook-subscriptions",
        status_code=201,
        responses=problem_responses(409, 422),
    )
    def create_webhook_subscription(
        request: Request,
        body: SubscriptionRequest,
        session: SessionDep,
        principal: Principal = require_roles(*MANAGERS),
    ) -> CreatedSubscription:
        """Subscribe a URL of the school's (its CMS) to some of this service's events.

        The answer carries the signing secret, shown this once."""
        webhooks = webhooks_of(request.app)
        problems = [
            ProblemDetail(
                code="unknown_event_type",
                detail=f"This service announces no {name!r} (it announces: "
                f"{', '.join(sorted(known))}).",
                where=f"body.events.{i}",
            )
            for i, name in enumerate(body.events)
            if name not in known
        ]
        refusal = url_refusal(body.url, env=webhooks.env, http_hosts=())
        if refusal is not None:
            problems.append(ProblemDetail(code="webhook_url_refused", detail=refusal, where="url"))
        if problems:
            raise Unprocessable(
                "The subscription cannot be made.", code="invalid_subscription", problems=problems
            )
        s = webhooks.tables.webhook_subscription
        existing = session.execute(select(s.c.name).where(s.c.school == principal.school)).scalars()
        names = set(existing)
        if body.name in names:
            raise Conflict(
                f"The school already has a subscription called {body.name!r}.",
                code="webhook_subscription_exists",
            )
        if len(names) >= MAX_SUBSCRIPTIONS_PER_SCHOOL:
            raise Conflict(
                f"A school may have {MAX_SUBSCRIPTIONS_PER_SCHOOL} subscriptions; delete one.",
                code="too_many_webhook_subscriptions",
            )
        subscription_id, secret, now = uuid.uuid4(), new_secret(), webhooks.clock()
        session.execute(
            insert(s).values(
                id=subscription_id,
                school=principal.school,
                name=body.name,
                url=body.url,
                events=body.events,
                secret=secret,
                created_at=now,
                created_by=principal.actor,
            )
        )
        context_of(request).audit.append(
            session,
            actor=principal.actor,
            school=principal.school,
            action="webhook.subscribed",
            target=str(subscription_id),
            details={"name": body.name, "url": body.url, "events": body.events},
        )
        return CreatedSubscription(
            id=subscription_id,
            name=body.name,
            url=body.url,
            events=body.events,
            created_at=now,
            created_by=principal.actor,
            consecutive_failures=0,
            last_delivered_at=None,
            last_failed_at=None,
            last_error=None,
            secret=secret,
        )

    @router.get("/webhook-subscriptions")
    def list_webhook_subscriptions(
        request: Request,
        session: SessionDep,
        principal: Principal = require_roles(*MANAGERS),
    ) -> SubscriptionList:
        """The school's subscriptions and how delivery to each is going (secrets not shown)."""
        tables = webhooks_of(request.app).tables
        s, w = tables.webhook_subscription, tables.webhook_subscriber
        rows = session.execute(
            select(s).where(s.c.school == principal.school).order_by(s.c.name)
        ).all()
        keys = [f"subscription:{row.id}" for row in rows]
        states = {
            state.subscriber: state
            for state in session.execute(select(w).where(w.c.subscriber.in_(keys))).all()
        }
        return SubscriptionList(
            items=[
                SubscriptionView(
                    id=row.id,
                    name=row.name,
                    url=row.url,
                    events=list(row.events),
                    created_at=row.created_at,
                    created_by=row.created_by,
                    consecutive_failures=state.consecutive_failures if state else 0,
                    last_delivered_at=state.last_delivered_at if state else None,
                    last_failed_at=state.last_failed_at if state else None,
                    last_error=state.last_error if state else None,
                )
                for row in rows
                for state in [states.get(f"subscription:{row.id}")]
            ]
        )

    @router.delete(
        "/webhook-subscriptions/{subscription_id}",
        status_code=204,
        response_class=Response,
        responses=problem_responses(404),
    )
    def delete_webhook_subscription(
        request: Request,
        subscription_id: uuid.UUID,
        session: SessionDep,
        principal: Principal = require_roles(*MANAGERS),
    ) -> Response:
        """Stop sending to a subscription; its undelivered webhooks are dropped with it."""
        tables = webhooks_of(request.app).tables
        s, d = tables.webhook_subscription, tables.webhook_delivery
        removed = session.execute(
            delete(s).where(s.c.id == subscription_id, s.c.school == principal.school)
        )
        if removed.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("No such subscription.", code="webhook_subscription_not_found")
        key = f"subscription:{subscription_id}"
        session.execute(delete(d).where(d.c.subscriber == key, d.c.status != DELIVERED))
        session.execute(
            delete(tables.webhook_subscriber).where(tables.webhook_subscriber.c.subscriber == key)
        )
        context_of(request).audit.append(
            session,
            actor=principal.actor,
            school=principal.school,
            action="webhook.unsubscribed",
            target=str(subscription_id),
        )
        return Response(status_code=204)

    @router.get("/webhook-dead-letters", responses=problem_responses(400))
    def list_webhook_dead_letters(
        request: Request,
        session: SessionDep,
        cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        principal: Principal = require_roles(*MANAGERS),
    ) -> Page[DeadLetterView]:
        """The school's webhooks that ran out of attempts, newest first."""
        d = webhooks_of(request.app).tables.webhook_delivery
        query = select(d).where(d.c.school == principal.school, d.c.status == DEAD)
        position = decode_position(cursor)
        if position is not None:
            at, ident = position
            query = query.where(
                or_(d.c.finished_at < at, and_(d.c.finished_at == at, d.c.id < ident))
            )
        rows = session.execute(
            query.order_by(d.c.finished_at.desc(), d.c.id.desc()).limit(limit + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page[DeadLetterView](
            items=[
                DeadLetterView(
                    id=row.id,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    subscriber=row.subscriber,
                    attempts=row.attempts,
                    last_error=row.last_error,
                    created_at=row.created_at,
                    failed_at=row.finished_at,
                    body=row.body,
                )
                for row in rows
            ],
            next_cursor=encode_position(rows[-1].finished_at, rows[-1].id) if more else None,
        )

    @router.post(
        "/webhook-dead-letters/{delivery_id}:replay",
        status_code=202,
        response_class=Response,
        responses=problem_responses(404),
    )
    def replay_webhook_dead_letter(
        request: Request,
        delivery_id: uuid.UUID,
        session: SessionDep,
        principal: Principal = require_roles(*MANAGERS),
    ) -> Response:
        """Send a dead letter again, with a fresh run of attempts."""
        webhooks_of(request.app).replay(session, school=principal.school, delivery_id=delivery_id)
        context_of(request).audit.append(
            session,
            actor=principal.actor,
            school=principal.school,
            action="webhook.replayed",
            target=str(delivery_id),
        )
        return Response(status_code=202)

    return router


# -- receiver -------------------------------------------------------------------------------


class WebhookSignatureInvalid(Unauthenticated):
    code = "webhook_signature_invalid"


def receiver_router(
    listens: Sequence[Listener], common: CommonSettings, settings: WebhookSettings
) -> APIRouter:
    """``POST /v1/webhooks/{source}``: public, the signature authenticates the sender."""
    by_source: dict[str, dict[str, Listener]] = {}
    for listener in listens:
        by_source.setdefault(listener.source, {})[listener.event_type] = listener
    verifiers = {
        source: Webhook(
            configured.get_secret_value()
            if (configured := settings.sources.get(source)) is not None
            else derived_secret(common.webhook_secret, source)
        )
        for source in by_source
    }
    router = APIRouter(prefix="/v1", tags=["webhooks"])

    @router.post(
        "/webhooks/{source}",
        status_code=204,
        response_class=Response,
        responses=problem_responses(401, 404, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def receive_webhook(
        request: Request,
        source: Annotated[str, Path(max_length=64, pattern=SUBSCRIBER_NAME), STORABLE],
    ) -> Response:
        """Events from another service of the deployment, signed as Standard Webhooks.

        A webhook id seen before changes nothing and is answered 204 again."""
        verifier = verifiers.get(source)
        if verifier is None:
            raise NotFound(f"This service hears nothing from {source!r}.", code="unknown_source")
        raw = await request.body()
        try:
            verifier.verify(raw, dict(request.headers), json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            raise WebhookSignatureInvalid(
                "The webhook's signature or timestamp does not verify."
            ) from exc
        event = _event_of(request.headers["webhook-id"], raw)
        listener = by_source[source].get(event.type)
        if listener is not None:
            await run_in_threadpool(_handle, listener, event)
        return Response(status_code=204)

    return router


def _event_of(webhook_id: str, raw: bytes) -> Event:
    try:
        event_id = uuid.UUID(webhook_id)
    except ValueError as exc:
        raise Unprocessable(
            "The webhook id is not an event id.", code="invalid_webhook_id"
        ) from exc
    try:
        envelope = WebhookEnvelope.model_validate_json(raw)
    except ValidationError as exc:
        raise Unprocessable(
            "The webhook body is not an event envelope.",
            code="invalid_webhook_body",
            problems=[
                ProblemDetail(
                    code="invalid",
                    detail=str(err["msg"]),
                    where="body." + ".".join(str(p) for p in err["loc"]),
                )
                for err in exc.errors()[:10]
            ],
        ) from exc
    return Event(event_id, envelope.type, envelope.school, envelope.data, envelope.timestamp)


def _handle(listener: Listener, event: Event) -> None:
    try:
        listener.handler(event)
    except ValidationError as exc:
        raise Unprocessable(
            f"The {event.type} payload does not match what {listener.name} reads.",
            code="invalid_webhook_payload",
        ) from exc
    except Exception as exc:
        # The sender keeps the webhook and retries: nothing is lost to a passing failure.
        logger.exception("listener %s failed on webhook %s", listener.name, event.id)
        raise ServiceUnavailable(
            f"{listener.name} could not handle the event; send it again later.",
            code="webhook_handler_failed",
            retry_after=30,
        ) from exc
