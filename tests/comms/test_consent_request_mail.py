"""Consent request emails (issue 11): consent announces a mail round, comms writes to each carer
due in it once, from the school office's account (E2), held to school hours (E8), with a personal
link that opens the request; leadership gets one copy of each round without any link (E1); a
redelivered event mails nobody twice."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from hallpass_comms.consent_requests.policy import LEADERSHIP_COPY, MailDueNotice
from hallpass_comms.context import CommsContext
from hallpass_comms.models import (
    ConsentRequestMail,
    Delivery,
    Message,
    MessageKind,
    RecipientKind,
)
from hallpass_kit.db import Database
from hallpass_kit.outbox import Dispatcher, Event
from hallpass_kit.settings import CommonSettings
from hallpass_kit.webhooks import derived_secret
from tests.comms.conftest import DEPUTY, HEAD, OFFICE, FrozenClock, delivery_worker
from tests.comms.mail_reading import addresses, parse_strictly, shown_text
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder

LINK = re.compile(r"http://127\.0\.0\.1:8000/parents/requests/([A-Za-z0-9_-]{43})")


@pytest.fixture
def consent_dispatcher(consent_app: FastAPI, comms_app: FastAPI) -> Dispatcher:
    """Consent's dispatcher with comms' listener subscribed, as the gateway wires them."""
    dispatcher: Dispatcher = consent_app.state.hallpass.dispatcher
    context = comms_app.state.hallpass
    assert isinstance(context, CommsContext)
    for listener in context.listens:
        if listener.event_type == "consent_request.mail_due":
            dispatcher.subscribe(listener.event_type, listener.name, listener.handler)
    return dispatcher


def ask(client: TestClient, school: SchoolBuilder, class_id: str) -> dict[str, Any]:
    response = client.post(
        "/v1/consent-requests",
        json={
            "title": "Photos on the school website",
            "note": "We would like to show this year's sports day.",
            "purposes": ["website_photo"],
            "scope": {"class_ids": [class_id]},
        },
        headers=school.office,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def mails(outbox: Path) -> list[Any]:
    return [parse_strictly(path.read_bytes()) for path in sorted(outbox.glob("*.eml"))]


def messages(comms_db: Database, kind: RecipientKind = RecipientKind.family) -> int:
    """Consent request messages to carers (or, with ``staff``, leadership's copies)."""
    with comms_db.session() as session:
        return int(
            session.execute(
                select(func.count(func.distinct(Message.id)))
                .select_from(Message)
                .join(Delivery, Delivery.message_id == Message.id)
                .where(Message.kind == MessageKind.consent_request, Delivery.recipient_kind == kind)
            ).scalar_one()
        )


def test_one_email_per_carer_from_the_office_and_one_linkless_copy_for_leadership_e1_e2(
    client: TestClient,
    comms_app: FastAPI,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    consent_dispatcher: Dispatcher,
    outbox: Path,
) -> None:
    oak = school.school_class()
    amara = school.family("Amara", "Okafor", carers=2, class_id=oak)
    oliver = school.family("Oliver", "Shaw", class_id=oak)
    ask(client, school, oak)

    consent_dispatcher.dispatch_pending()
    sent = delivery_worker(comms_app).run_once()

    assert sent == 4  # three carers and leadership's one copy
    found = mails(outbox)
    to_carers = [m for m in found if HEAD not in addresses(m, "to")]
    [copy] = [m for m in found if HEAD in addresses(m, "to")]
    assert len(sorted(a for mail in to_carers for a in addresses(mail, "to"))) == 3
    with comms_db.session() as session:
        rows = session.execute(select(ConsentRequestMail)).scalars().all()
        assert {str(r.guardian_id) for r in rows} == {
            *amara.guardian_ids,
            *oliver.guardian_ids,
            str(LEADERSHIP_COPY),
        }
        assert {r.round for r in rows} == {1}
    for mail in to_carers:
        assert addresses(mail, "from") == [OFFICE]
        # A carer's email holds a link that answers as them: nobody else is copied on it.
        assert addresses(mail, "cc") == []
        text = shown_text(mail)
        assert LINK.search(text) is not None
        assert "Photos on the school website" in text
        assert "sports day" in text
        assert "Website" in text or "website" in text
    amara_mail = next(m for m in to_carers if "Amara" in shown_text(m))
    assert "Oliver" not in shown_text(amara_mail)  # E9: each family hears of its own child
    assert sorted(addresses(copy, "to")) == sorted([HEAD, DEPUTY])
    assert "3 parents and carers" in shown_text(copy)
    assert "sports day" in shown_text(copy)
    assert LINK.search(shown_text(copy)) is None
    assert "/parents/requests/" not in shown_text(copy)


def test_staff_reading_a_carers_request_email_never_see_the_link(
    client: TestClient,
    comms: TestClient,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    consent_dispatcher: Dispatcher,
    auth: TokenFactory,
) -> None:
    oak = school.school_class()
    family = school.family("Amara", "Okafor", class_id=oak)
    ask(client, school, oak)
    consent_dispatcher.dispatch_pending()
    with comms_db.session() as session:
        stored = session.execute(
            select(Message)
            .join(Delivery, Delivery.message_id == Message.id)
            .where(Delivery.recipient_kind == RecipientKind.family)
        ).scalar_one()
    head = auth("head", school=school.school)

    view = comms.get(f"/v1/messages/{stored.id}", headers=head)
    history = comms.get(f"/v1/families/{family.pupil_id}/messages", headers=head)

    assert view.status_code == 200, view.text
    assert history.status_code == 200, history.text
    assert LINK.search(stored.body_text) is not None  # the carer's own email carries it
    for shown in (view.text, history.text):
        assert "/parents/requests/" not in shown
        assert "personal link" in shown


def test_the_link_in_the_email_opens_the_request(
    client: TestClient,
    comms_app: FastAPI,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    consent_dispatcher: Dispatcher,
    outbox: Path,
) -> None:
    oak = school.school_class()
    family = school.family("Amara", "Okafor", class_id=oak)
    request = ask(client, school, oak)
    consent_dispatcher.dispatch_pending()
    delivery_worker(comms_app).run_once()

    [mail] = [m for m in mails(outbox) if HEAD not in addresses(m, "to")]
    match = LINK.search(shown_text(mail))
    assert match is not None, shown_text(mail)
    opened = client.post("/v1/consent-requests:open-link", json={"token": match.group(1)})

    assert opened.status_code == 200, opened.text
    assert opened.json()["request_id"] == request["id"]
    assert [c["pupil_id"] for c in opened.json()["children"]] == [family.pupil_id]


def test_a_redelivered_event_sends_nothing_more(
    client: TestClient,
    comms_app: FastAPI,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    outbox: Path,
) -> None:
    oak = school.school_class()
    school.family("Amara", "Okafor", class_id=oak)
    request = ask(client, school, oak)
    context = comms_app.state.hallpass
    assert isinstance(context, CommsContext)
    [listener] = [x for x in context.listens if x.event_type == "consent_request.mail_due"]
    event = Event(
        id=uuid.uuid4(),
        type="consent_request.mail_due",
        school=school.school,
        payload={"request_id": request["id"], "school_id": school.school, "round": 1},
        occurred_at=dt.datetime.now(dt.UTC),
    )

    listener.handler(event)
    listener.handler(event)

    assert messages(comms_db) == 1
    assert messages(comms_db, RecipientKind.staff) == 1
    assert delivery_worker(comms_app).run_once() == 2
    assert delivery_worker(comms_app).run_once() == 0


def test_a_reminder_round_writes_only_to_carers_not_answered(
    client: TestClient,
    auth: TokenFactory,
    comms_app: FastAPI,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    consent_dispatcher: Dispatcher,
) -> None:
    oak = school.school_class()
    amara = school.family("Amara", "Okafor", class_id=oak)
    oliver = school.family("Oliver", "Shaw", class_id=oak)
    request = ask(client, school, oak)
    consent_dispatcher.dispatch_pending()
    school.consent(amara.pupil_id, amara.guardian_ids[0])  # a paper form answers Amara's

    reminded = client.post(f"/v1/consent-requests/{request['id']}:remind", headers=school.office)
    consent_dispatcher.dispatch_pending()

    assert reminded.status_code == 200, reminded.text
    with comms_db.session() as session:
        second = session.execute(
            select(ConsentRequestMail.guardian_id).where(ConsentRequestMail.round == 2)
        ).scalars()
        assert sorted(str(g) for g in second) == sorted(
            [*oliver.guardian_ids, str(LEADERSHIP_COPY)]
        )
    assert messages(comms_db) == 3
    assert messages(comms_db, RecipientKind.staff) == 2


def test_e8_an_email_written_at_night_waits_for_the_morning(
    client: TestClient,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    consent_dispatcher: Dispatcher,
    clock: FrozenClock,
) -> None:
    oak = school.school_class()
    school.family("Amara", "Okafor", class_id=oak)
    ask(client, school, oak)
    clock.advance(hours=13)  # 23:00

    consent_dispatcher.dispatch_pending()

    with comms_db.session() as session:
        for message in session.execute(select(Message)).scalars():
            assert message.scheduled_for is not None
            assert message.scheduled_for.hour == 8


def test_a_closed_request_is_not_mailed(
    client: TestClient,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    consent_dispatcher: Dispatcher,
) -> None:
    oak = school.school_class()
    school.family("Amara", "Okafor", class_id=oak)
    request = ask(client, school, oak)
    closed = client.post(f"/v1/consent-requests/{request['id']}:close", headers=school.office)
    assert closed.status_code == 200, closed.text

    consent_dispatcher.dispatch_pending()

    assert messages(comms_db) == 0


# --- the event's contract ------------------------------------------------------------------------

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "consent.json"


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


@pytest.mark.parametrize("name", sorted(MailDueNotice.model_fields))
def test_every_field_comms_reads_of_mail_due_is_published_and_required(name: str) -> None:
    spec = json.loads(SPEC.read_text())
    operation = spec["webhooks"]["consent_request.mail_due"]["post"]
    envelope = _resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    payload = _resolve(spec, envelope["properties"]["data"])

    assert name in payload["properties"], f"consent_request.mail_due no longer has {name!r}"
    assert name in payload.get("required", []), f"consent_request.mail_due may leave out {name!r}"


# --- over a signed webhook (services apart, as docker-compose runs them) -------------------------


def _signed(secret: str, event_id: uuid.UUID, envelope: dict[str, Any]) -> tuple[bytes, Any]:
    body = json.dumps(envelope).encode()
    sent = dt.datetime.now(dt.UTC)
    signature = Webhook(derived_secret(secret, "consent")).sign(str(event_id), sent, body.decode())
    return body, {
        "content-type": "application/json",
        "webhook-id": str(event_id),
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": signature,
    }


def test_mail_due_by_signed_webhook_mails_each_carer_once_and_a_redelivery_nothing(
    client: TestClient,
    comms: TestClient,
    comms_db: Database,
    school: SchoolBuilder,
    mail_settings: dict[str, Any],
    common_settings: CommonSettings,
) -> None:
    oak = school.school_class()
    school.family("Amara", "Okafor", carers=2, class_id=oak)
    request = ask(client, school, oak)
    envelope = {
        "type": "consent_request.mail_due",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "school": school.school,
        "data": {"request_id": request["id"], "school_id": school.school, "round": 1},
    }
    body, headers = _signed(common_settings.webhook_secret, uuid.uuid4(), envelope)

    first = comms.post("/v1/webhooks/consent", content=body, headers=headers)
    again = comms.post("/v1/webhooks/consent", content=body, headers=headers)

    assert (first.status_code, again.status_code) == (204, 204), first.text
    assert messages(comms_db) == 2
