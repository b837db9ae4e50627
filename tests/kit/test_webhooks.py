"""Events leave a service as Standard Webhooks: signed, retried, dead-lettered, replayed, purged;
the receiver checks the signature and the timestamp, and a redelivery changes nothing (M7)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from hallpass_consent.events import ChangeCause, ConsentChanged
from hallpass_consent.models import kit_tables as consent_tables
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Event, emit
from hallpass_kit.settings import CommonSettings, Environment
from hallpass_kit.webhooks import derived_secret, url_refusal, webhooks_of
from hallpass_media import migrations as media_migrations
from hallpass_media.app import create_app as create_media_app
from hallpass_media.models import Base as MediaBase
from hallpass_media.models import kit_tables as media_tables
from hallpass_media.settings import MediaSettings
from tests import databases
from tests.conftest import SCHOOL, TokenFactory, build_consent_app
from tests.databases import BACKENDS

WEBHOOK_SECRET = "a-deployment-secret-of-at-least-32-characters"


@dataclass
class Receiver:
    """A subscriber on a loopback port: records what it is sent, answers ``status``."""

    url: str
    status: int = 204
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    found = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            found.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(found.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def common(tmp_path: Path) -> CommonSettings:
    return CommonSettings(
        env=Environment.test, data_dir=tmp_path / "data", webhook_secret=WEBHOOK_SECRET
    )


def consent_with_subscriber(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    issuer: DevIssuer,
    common: CommonSettings,
    url: str,
    *,
    max_attempts: int = 10,
) -> FastAPI:
    monkeypatch.setenv(
        "HALLPASS_WEBHOOK_SUBSCRIBERS",
        json.dumps([{"name": "media", "url": url, "events": ["consent.changed"]}]),
    )
    monkeypatch.setenv("HALLPASS_WEBHOOK_MAX_ATTEMPTS", str(max_attempts))
    return build_consent_app(database, issuer, common)


def withdrawal(database: Database, pupil_id: uuid.UUID | None = None) -> uuid.UUID:
    """A consent.changed in consent's outbox, as a withdrawal writes it (C5)."""
    payload = ConsentChanged(
        pupil_id=pupil_id or uuid.uuid4(),
        purpose="website",
        allowed=False,
        state="withdrawn",  # type: ignore[arg-type]
        cause=ChangeCause.consent_recorded,
    )
    with database.session() as session:
        return emit(
            session,
            consent_tables,
            type="consent.changed",
            school=SCHOOL,
            payload=payload.model_dump(mode="json"),
        )


def test_a_withdrawal_reaches_a_loopback_subscriber_signed_as_a_standard_webhook(
    monkeypatch: pytest.MonkeyPatch,
    consent_db: Database,
    issuer: DevIssuer,
    common: CommonSettings,
    receiver: Receiver,
) -> None:
    app = consent_with_subscriber(monkeypatch, consent_db, issuer, common, receiver.url)
    event_id = withdrawal(consent_db)

    app.state.hallpass.dispatcher.dispatch_pending()
    delivered = webhooks_of(app).deliver_due()

    assert delivered == 1
    ((headers, body),) = receiver.received
    secret = derived_secret(WEBHOOK_SECRET, "consent")
    envelope = Webhook(secret).verify(body, headers)
    assert headers["webhook-id"] == str(event_id)
    assert envelope["type"] == "consent.changed"
    assert envelope["school"] == SCHOOL
    assert envelope["data"]["allowed"] is False


def test_a_second_dispatch_of_one_event_sends_no_second_webhook(
    monkeypatch: pytest.MonkeyPatch,
    consent_db: Database,
    issuer: DevIssuer,
    common: CommonSettings,
    receiver: Receiver,
) -> None:
    app = consent_with_subscriber(monkeypatch, consent_db, issuer, common, receiver.url)
    event_id = withdrawal(consent_db)
    webhooks = webhooks_of(app)

    outbox = consent_tables.outbox_event
    with consent_db.session() as session:
        row = session.execute(select(outbox).where(outbox.c.id == event_id)).one()
        again = Event(row.id, row.type, row.school, row.payload, row.occurred_at)
        assert webhooks.fan_out(session, again) == 1
        assert webhooks.fan_out(session, again) == 0
    webhooks.deliver_due()

    assert len(receiver.received) == 1


def test_a_failing_subscriber_is_retried_then_dead_lettered_then_replayed(
    monkeypatch: pytest.MonkeyPatch,
    consent_db: Database,
    issuer: DevIssuer,
    common: CommonSettings,
    receiver: Receiver,
    auth: TokenFactory,
) -> None:
    app = consent_with_subscriber(
        monkeypatch, consent_db, issuer, common, receiver.url, max_attempts=3
    )
    webhooks = webhooks_of(app)
    receiver.status = 500
    withdrawal(consent_db)
    app.state.hallpass.dispatcher.dispatch_pending()
    later = utcnow() + dt.timedelta(days=1)

    for _ in range(3):
        assert webhooks.deliver_due(now=later) == 0
    assert webhooks.deliver_due(now=later + dt.timedelta(days=1)) == 0

    assert len(receiver.received) == 3
    with TestClient(app, raise_server_exceptions=False) as client:
        dead = client.get("/v1/webhook-dead-letters", headers=auth("head")).json()["items"]
        assert [(d["subscriber"], d["attempts"]) for d in dead] == [("settings:media", 3)]
        assert "HTTP 500" in dead[0]["last_error"]
        receiver.status = 204
        replayed = client.post(
            f"/v1/webhook-dead-letters/{dead[0]['id']}:replay", headers=auth("head")
        )
        assert replayed.status_code == 202
        assert webhooks.deliver_due() == 1
        assert client.get("/v1/webhook-dead-letters", headers=auth("head")).json()["items"] == []
    assert len(receiver.received) == 4


def test_replaying_a_delivery_that_is_not_dead_is_404_and_changes_nothing(
    consent_db: Database, issuer: DevIssuer, common: CommonSettings, auth: TokenFactory
) -> None:
    app = build_consent_app(consent_db, issuer, common)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            f"/v1/webhook-dead-letters/{uuid.uuid4()}:replay", headers=auth("admin")
        )
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "dead_letter_not_found"


def test_delivered_webhooks_and_dispatched_events_are_purged_after_retention(
    monkeypatch: pytest.MonkeyPatch,
    consent_db: Database,
    issuer: DevIssuer,
    common: CommonSettings,
    receiver: Receiver,
) -> None:
    app = consent_with_subscriber(monkeypatch, consent_db, issuer, common, receiver.url)
    webhooks = webhooks_of(app)
    withdrawal(consent_db)
    app.state.hallpass.dispatcher.dispatch_pending()
    webhooks.deliver_due()

    assert webhooks.purge(now=utcnow() + dt.timedelta(days=1)) == (0, 0)
    assert webhooks.purge(now=utcnow() + dt.timedelta(days=15)) == (1, 1)
    with consent_db.session() as session:
        for table in (consent_tables.webhook_delivery, consent_tables.outbox_event):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_a_school_subscription_is_made_listed_and_deleted_by_the_head_only(
    consent_db: Database, issuer: DevIssuer, common: CommonSettings, auth: TokenFactory
) -> None:
    app = build_consent_app(consent_db, issuer, common)
    body = {
        "name": "cms",
        "url": "https://cms.oakfield.sch.uk/hooks",
        "events": ["consent.changed"],
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        assert (
            client.post("/v1/webhook-subscriptions", json=body, headers=auth("staff")).status_code
            == 403
        )
        made = client.post("/v1/webhook-subscriptions", json=body, headers=auth("head"))
        assert made.status_code == 201
        assert made.json()["secret"].startswith("whsec_")
        listed = client.get("/v1/webhook-subscriptions", headers=auth("admin")).json()["items"]
        assert [(s["name"], "secret" in s) for s in listed] == [("cms", False)]
        other = client.get(
            "/v1/webhook-subscriptions", headers=auth("head", school="riverside")
        ).json()["items"]
        assert other == []
        gone = client.delete(f"/v1/webhook-subscriptions/{made.json()['id']}", headers=auth("head"))
        assert gone.status_code == 204
        assert client.get("/v1/webhook-subscriptions", headers=auth("head")).json()["items"] == []


@pytest.mark.parametrize(
    ("url", "event", "code"),
    [
        ("ftp://cms.oakfield.sch.uk/hooks", "consent.changed", "webhook_url_refused"),
        ("http://cms.oakfield.sch.uk/hooks", "consent.changed", "webhook_url_refused"),
        ("https://cms.oakfield.sch.uk/hooks", "consent.withdrawn", "unknown_event_type"),
    ],
)
def test_a_subscription_to_a_bad_url_or_unknown_event_is_refused_and_nothing_is_made(
    consent_db: Database,
    issuer: DevIssuer,
    common: CommonSettings,
    auth: TokenFactory,
    url: str,
    event: str,
    code: str,
) -> None:
    app = build_consent_app(consent_db, issuer, common)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/v1/webhook-subscriptions",
            json={"name": "cms", "url": url, "events": [event]},
            headers=auth("head"),
        )
        assert answer.status_code == 422
        assert [p["code"] for p in answer.json()["problems"]] == [code]
        assert client.get("/v1/webhook-subscriptions", headers=auth("head")).json()["items"] == []


def test_production_takes_https_only_and_http_to_the_hosts_it_is_told() -> None:
    production = Environment.production
    assert url_refusal("https://cms.example/hooks", env=production) is None
    assert url_refusal("http://127.0.0.1:8000/hooks", env=production) is not None
    assert (
        url_refusal("http://media:8000/v1/webhooks/consent", env=production, http_hosts=["media"])
        is None
    )
    assert url_refusal("http://127.0.0.1:8000/hooks", env=Environment.development) is None


# --- media: the receiver and the CMS ---------------------------------------------------------


@pytest.fixture(scope="module")
def media_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("media-webhooks"), "media.db", media_migrations.upgrade
    )


@pytest.fixture(scope="module")
def media_postgres() -> Iterator[str]:
    with databases.postgres_database("webhooks_media", media_migrations.upgrade) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def media_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = databases.sqlite_copy(request.getfixturevalue("media_template"), tmp_path)
    else:
        database = databases.emptied(request.getfixturevalue("media_postgres"), MediaBase.metadata)
    yield database
    database.dispose()


@pytest.fixture
def media_app(media_db: Database, issuer: DevIssuer, common: CommonSettings) -> FastAPI:
    nobody = ServiceClient(name="consent", app=FastAPI(), base_url="http://consent.internal")
    return create_media_app(
        common=common,
        settings=MediaSettings(ocr=False),
        verifier=TokenVerifier(common, key_set=issuer.key_set()),
        consent=nobody,
        database=media_db,
        run_background=False,
        migrate=False,
    )


def signed(
    event_id: uuid.UUID, envelope: dict[str, object], *, at: dt.datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(envelope).encode()
    sent = at or dt.datetime.now(dt.UTC)
    signature = Webhook(derived_secret(WEBHOOK_SECRET, "consent")).sign(
        str(event_id), sent, body.decode()
    )
    return body, {
        "content-type": "application/json",
        "webhook-id": str(event_id),
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": signature,
    }


def consent_changed(pupil_id: uuid.UUID) -> dict[str, object]:
    return {
        "type": "consent.changed",
        "timestamp": utcnow().isoformat(),
        "school": SCHOOL,
        "data": {
            "pupil_id": str(pupil_id),
            "purpose": "website",
            "allowed": False,
            "state": "withdrawn",
            "record_id": None,
            "cause": "consent_recorded",
        },
    }


def consumed(database: Database) -> int:
    with database.session() as session:
        return int(
            session.scalar(select(func.count()).select_from(media_tables.consumed_event)) or 0
        )


def test_the_receiver_takes_a_signed_webhook_once_and_a_redelivery_changes_nothing_m7(
    media_app: FastAPI, media_db: Database
) -> None:
    event_id = uuid.uuid4()
    body, headers = signed(event_id, consent_changed(uuid.uuid4()))
    with TestClient(media_app, raise_server_exceptions=False) as client:
        first = client.post("/v1/webhooks/consent", content=body, headers=headers)
        again = client.post("/v1/webhooks/consent", content=body, headers=headers)

    assert (first.status_code, again.status_code) == (204, 204)
    assert consumed(media_db) == 1


def test_the_receiver_refuses_a_forged_signature_with_401_and_changes_nothing(
    media_app: FastAPI, media_db: Database
) -> None:
    event_id = uuid.uuid4()
    body, headers = signed(event_id, consent_changed(uuid.uuid4()))
    forged = Webhook("whsec_" + "A" * 44).sign(
        str(event_id), dt.datetime.now(dt.UTC), body.decode()
    )
    with TestClient(media_app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/v1/webhooks/consent", content=body, headers={**headers, "webhook-signature": forged}
        )

    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "webhook_signature_invalid"
    assert consumed(media_db) == 0


def test_the_receiver_refuses_a_webhook_signed_ten_minutes_ago(
    media_app: FastAPI, media_db: Database
) -> None:
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    body, headers = signed(uuid.uuid4(), consent_changed(uuid.uuid4()), at=stale)
    with TestClient(media_app, raise_server_exceptions=False) as client:
        answer = client.post("/v1/webhooks/consent", content=body, headers=headers)

    assert answer.status_code == 401
    assert consumed(media_db) == 0


def test_the_receiver_answers_422_to_a_signed_body_that_is_no_envelope(
    media_app: FastAPI, media_db: Database
) -> None:
    body, headers = signed(uuid.uuid4(), {"type": "consent.changed", "school": SCHOOL})
    with TestClient(media_app, raise_server_exceptions=False) as client:
        answer = client.post("/v1/webhooks/consent", content=body, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_webhook_body"
    assert consumed(media_db) == 0


def test_a_cms_subscribed_through_the_api_receives_publication_takedown_required_m7(
    media_app: FastAPI,
    media_db: Database,
    receiver: Receiver,
    auth: TokenFactory,
) -> None:
    with TestClient(media_app, raise_server_exceptions=False) as client:
        made = client.post(
            "/v1/webhook-subscriptions",
            json={"name": "cms", "url": receiver.url, "events": ["publication.takedown_required"]},
            headers=auth("head"),
        ).json()
    payload = {
        "publication_id": str(uuid.uuid4()),
        "channel": "website",
        "target_url": "https://oakfield.sch.uk/news/sports-day",
        "post_id": None,
        "pupil_id": str(uuid.uuid4()),
        "state": "withdrawn",
        "consent_event_id": str(uuid.uuid4()),
    }
    with media_db.session() as session:
        emit(
            session,
            media_tables,
            type="publication.takedown_required",
            school=SCHOOL,
            payload=payload,
        )
        emit(
            session,
            media_tables,
            type="publication.taken_down",
            school=SCHOOL,
            payload={"publication_id": payload["publication_id"], "channel": "website"},
        )

    media_app.state.hallpass.dispatcher.dispatch_pending()
    assert webhooks_of(media_app).deliver_due() == 1

    ((headers, body),) = receiver.received
    envelope = Webhook(made["secret"]).verify(body, headers)
    assert envelope["type"] == "publication.takedown_required"
    assert envelope["data"] == payload
