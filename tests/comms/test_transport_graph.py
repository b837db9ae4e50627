"""Microsoft Graph ``sendMail`` (E2: sent as the member of staff, limited by an access policy).

A loopback stand-in shaped from Microsoft's sendMail documentation answers: the MIME message
base64-encoded as text/plain, 202 when taken, ``{"error": {"code", "message"}}`` bodies, 429 with
Retry-After. The last test sends through the delivery worker on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from hallpass_comms import migrations
from hallpass_comms.delivery import DeliveryWorker
from hallpass_comms.delivery.graph import GraphTransport
from hallpass_comms.delivery.oauth import TokenRefused
from hallpass_comms.delivery.rendering import DELIVERY_HEADER
from hallpass_comms.delivery.transports import (
    PermanentFailure,
    ServerUnavailable,
    Throttled,
    TransientFailure,
)
from hallpass_comms.models import Base, DeliveryStatus
from hallpass_comms.settings import CommsSettings
from hallpass_kit.db import Database, utcnow
from tests import databases
from tests.comms.providers import (
    CARERS,
    CLIENT_ID,
    CLIENT_SECRET,
    DOMAIN,
    GRAPH_SCOPE,
    HEAD,
    TEACHER,
    TENANT,
    Answer,
    ProviderStandIn,
    family_email,
)
from tests.comms.test_delivery import family_addresses, queue_message, rows
from tests.databases import BACKENDS


@pytest.fixture
def stand_in() -> Iterator[ProviderStandIn]:
    server = ProviderStandIn()
    server.access_policy = {TEACHER}
    server.start()
    yield server
    server.stop()


def graph_settings(stand_in: ProviderStandIn, **extra: object) -> CommsSettings:
    values: dict[str, object] = {
        "mail_transport": "graph",
        "microsoft_tenant_id": TENANT,
        "microsoft_client_id": CLIENT_ID,
        "microsoft_client_secret": CLIENT_SECRET,
        "microsoft_login_url": stand_in.url,
        "microsoft_graph_url": stand_in.url,
    }
    return CommsSettings.model_validate(values | extra)


@pytest.fixture
def graph(stand_in: ProviderStandIn) -> Iterator[GraphTransport]:
    transport = GraphTransport(graph_settings(stand_in))
    yield transport
    transport.close()


def graph_error(status: int, code: str, message: str, **headers: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, headers)


def test_e2_e1_graph_sends_our_mime_so_every_header_survives(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    email = family_email()
    graph.send(email)

    (sent,) = stand_in.delivered
    assert sent.mailbox == TEACHER
    assert sent.addresses("From") == [TEACHER]
    assert sent.addresses("To") == CARERS
    assert sent.addresses("Cc") == [HEAD]
    assert sent.message["Message-ID"] == email["Message-ID"]
    assert sent.message[DELIVERY_HEADER] == email[DELIVERY_HEADER]
    assert [(g.scope, g.subject) for g in stand_in.issued] == [(GRAPH_SCOPE, None)]


def test_the_graph_token_is_reused_until_refused_then_replaced_once(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    graph.send(family_email())
    graph.send(family_email())
    assert len(stand_in.issued) == 1

    stand_in.revoke_all()
    graph.send(family_email())

    assert len(stand_in.delivered) == 3
    assert len(stand_in.issued) == 2
    assert stand_in.graph_requests == 4  # one 401, then the fresh token


def test_a_token_graph_keeps_refusing_stops_mail_rather_than_failing_it(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    refusal = graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
    stand_in.answer_next("graph", refusal, times=2)
    with pytest.raises(ServerUnavailable, match=r"Mail\.Send application permission"):
        graph.send(family_email())
    assert stand_in.delivered == []


@pytest.mark.parametrize("status", [429, 503, 504])
def test_graph_throttling_raises_throttled_with_its_retry_after(
    stand_in: ProviderStandIn, graph: GraphTransport, status: int
) -> None:
    stand_in.answer_next(
        "graph",
        graph_error(
            status,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
            **{"Retry-After": "7"},
        ),
    )
    with pytest.raises(Throttled) as throttled:
        graph.send(family_email())

    assert throttled.value.retry_after == 7
    assert stand_in.delivered == []
    graph.send(family_email())
    assert len(stand_in.delivered) == 1


def test_e2_a_mailbox_outside_the_access_policy_is_permanent_and_says_so(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    outsider = f"supply.teacher@{DOMAIN}"
    with pytest.raises(PermanentFailure) as refused:
        graph.send(family_email(sender=outsider))

    assert (
        f"Graph 403 ErrorAccessDenied: the application access policy does not include {outsider}"
        in str(refused.value)
    )


def test_a_message_graph_refuses_is_permanent_with_graphs_code(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    stand_in.answer_next(
        "graph", graph_error(400, "ErrorMimeContentInvalid", "The MIME content is invalid.")
    )
    with pytest.raises(PermanentFailure, match="ErrorMimeContentInvalid"):
        graph.send(family_email())


def test_a_graph_server_error_is_tried_again(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    stand_in.answer_next("graph", graph_error(500, "InternalServerError", "Try again."))
    with pytest.raises(TransientFailure) as later:
        graph.send(family_email())
    assert not isinstance(later.value, PermanentFailure | Throttled)


def test_graph_sends_again_after_the_worker_closed_it(
    stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    graph.send(family_email())
    graph.close()  # DeliveryWorker.stop(); the worker may start again
    graph.send(family_email())
    assert len(stand_in.delivered) == 2


def test_a_wrong_client_secret_never_reaches_graph(stand_in: ProviderStandIn) -> None:
    transport = GraphTransport(graph_settings(stand_in, microsoft_client_secret="wrong"))
    with pytest.raises(TokenRefused, match="AADSTS7000215"):
        transport.send(family_email())
    transport.close()
    assert stand_in.graph_requests == 0


# --------------------------------------------------------------------------------------------
# Through the delivery worker, on SQLite and PostgreSQL


@pytest.fixture(scope="module")
def graph_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(
        tmp_path_factory.mktemp("graph-template"), "comms.db", migrations.upgrade
    )


@pytest.fixture(scope="module")
def graph_postgres_database() -> Iterator[str]:
    with databases.postgres_database("comms_graph", migrations.upgrade) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = databases.sqlite_copy(request.getfixturevalue("graph_sqlite_template"), tmp_path)
    else:
        database = databases.emptied(
            request.getfixturevalue("graph_postgres_database"), Base.metadata
        )
    yield database
    database.dispose()


def test_e9_the_worker_sends_each_family_through_graph_as_the_teacher(
    db: Database, stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    now = utcnow()
    _message, deliveries = queue_message(
        db, families=[family_addresses(1), family_addresses(2)], due_at=now
    )
    worker = DeliveryWorker(
        db, graph, public_base_url="https://hallpass.oakfield.sch.uk", clock=lambda: now
    )

    assert worker.run_once() == 2

    assert all(row.status is DeliveryStatus.sent for row in rows(db).values())
    by_id = {sent.message["Message-ID"]: sent for sent in stand_in.delivered}
    for delivery in deliveries:
        sent = by_id[delivery.message_id_header]
        assert sent.mailbox == TEACHER
        assert sent.addresses("To") == delivery.to_addresses
        assert sent.addresses("Cc") == [HEAD]


def test_graph_throttling_holds_the_envelope_without_using_an_attempt(
    db: Database, stand_in: ProviderStandIn, graph: GraphTransport
) -> None:
    now = utcnow()
    clock = [now]
    _message, (delivery,) = queue_message(db, families=[family_addresses(1)], due_at=now)
    worker = DeliveryWorker(
        db, graph, public_base_url="https://hallpass.oakfield.sch.uk", clock=lambda: clock[0]
    )
    stand_in.answer_next(
        "graph",
        Answer(
            429,
            {"error": {"code": "ApplicationThrottled", "message": "MailboxConcurrency"}},
            {"Retry-After": "30"},
        ),
    )

    assert worker.run_once() == 0
    held = rows(db)[delivery.id]
    assert held.status is DeliveryStatus.queued
    assert held.due_at >= now + dt.timedelta(seconds=30)
    assert "ApplicationThrottled" in (held.last_error or "")
    assert held.attempts == 0  # the throttled try was given back

    clock[0] = held.due_at
    assert worker.run_once() == 1
    sent = rows(db)[delivery.id]
    assert sent.status is DeliveryStatus.sent
    assert sent.attempts == 1
    assert len(stand_in.delivered) == 1
