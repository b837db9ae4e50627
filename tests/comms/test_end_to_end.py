"""With the real delivery worker and a real SMTP server on loopback: what carers' mail servers
receive for a class message sent through the gateway (E1, E2, E9), what the history then shows,
and out-of-hours mail reaching the server only at the next school-day morning (E8)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_comms.app import create_app
from hallpass_comms.delivery import SmtpTransport
from hallpass_comms.settings import CommsSettings
from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import DEV_ISSUER, CommonSettings
from tests.comms.conftest import DEPUTY, HEAD, FrozenClock, delivery_worker, settings_body
from tests.comms.smtp import SmtpServer
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder

SCHOOL = "oakfield"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path, smtp: SmtpServer) -> Gateway:
    common = CommonSettings(data_dir=tmp_path, auth_issuer=DEV_ISSUER, auth_jwks_url=None)
    comms = CommsSettings(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        smtp_timeout_seconds=5,
        reminder_within_days=0,
    )
    return create_gateway(common, ConsentSettings(), settings={"comms": comms})


def _headers(gateway: Gateway, role: str, **claims: Any) -> dict[str, str]:
    assert gateway.dev_issuer is not None
    token = gateway.dev_issuer.issue(
        sub=f"{role}@{SCHOOL}",
        school=SCHOOL,
        roles=[role],
        email=f"{role}@{SCHOOL}.sch.uk",
        **claims,
    )
    return {"Authorization": f"Bearer {token}"}


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _family(
    client: TestClient, office: dict[str, str], class_id: str, name: str, carers: int
) -> tuple[str, list[str]]:
    pupil = _ok(
        client.post(
            "/consent/v1/pupils",
            headers=office,
            json={
                "mis_id": f"MIS-{name}",
                "given_name": name,
                "family_name": "Pupil",
                "year_group": 3,
                "class_id": class_id,
            },
        ),
        201,
    )["id"]
    emails = [f"{name.lower()}.carer{n}@parents.example.org" for n in range(carers)]
    for address in emails:
        _ok(
            client.post(
                "/consent/v1/guardians",
                headers=office,
                json={
                    "given_name": "Carer",
                    "family_name": name,
                    "email": address,
                    "children": [{"pupil_id": pupil, "relationship": "parent"}],
                },
            ),
            201,
        )
    return pupil, emails


def test_a_class_message_reaches_each_family_alone_from_the_school_copied_to_leadership(
    gateway: Gateway, smtp: SmtpServer
) -> None:
    with TestClient(gateway) as client:
        office = _headers(gateway, "office")
        _ok(
            client.put(
                "/consent/v1/school",
                headers=_headers(gateway, "head"),
                json={"name": "Oakfield Primary"},
            )
        )
        oak = _ok(
            client.post(
                "/consent/v1/classes", headers=office, json={"name": "Year 3 Oak", "year_group": 3}
            ),
            201,
        )["id"]
        families = dict(
            _family(client, office, oak, name, carers)
            for name, carers in (("Amara", 2), ("Oliver", 1), ("Isla", 1))
        )
        _ok(
            client.put(
                "/comms/v1/settings", headers=_headers(gateway, "head"), json=settings_body()
            )
        )

        receipt = _ok(
            client.post(
                "/comms/v1/messages",
                headers=_headers(gateway, "staff"),
                json={
                    "recipients": {"class_ids": [oak]},
                    "subject": "Trip on Friday",
                    "body_text": "Please bring a packed lunch.",
                    "urgent": True,
                },
            ),
            202,
        )
        received = smtp.wait_for(3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = _ok(
                client.get(f"/comms/v1/messages/{receipt['id']}", headers=_headers(gateway, "head"))
            )
            if {d["status"] for d in message["deliveries"]} == {"sent"}:
                break
            time.sleep(0.1)
        pupil = next(iter(families))
        guardian = _ok(client.get(f"/consent/v1/pupils/{pupil}/guardians", headers=office))[0]
        history = _ok(
            client.get(
                f"/comms/v1/families/{pupil}/messages",
                headers=_headers(gateway, "parent", guardian_id=guardian["id"]),
            )
        )

    assert {d["status"] for d in message["deliveries"]} == {"sent"}
    assert len(received) == 3
    every_carer = {a for addresses in families.values() for a in addresses}
    for mail in received:
        to = set(mail.addresses("To"))
        assert to in {frozenset(a) for a in families.values()}
        assert mail.addresses("From") == [f"staff@{SCHOOL}.sch.uk"]
        assert set(mail.addresses("Cc")) == {HEAD, DEPUTY}
        # No other family's address anywhere in the message or its envelope (E9).
        others = every_carer - to
        raw = mail.raw.decode("utf-8", "replace").lower()
        assert not [a for a in others if a in raw]
        assert set(mail.rcpt_tos) == to | {HEAD, DEPUTY}
    assert len(smtp.count_by_message_id()) == 3
    assert [m["id"] for m in history["items"]] == [receipt["id"]]
    assert history["items"][0]["delivery_statuses"] == ["sent"]


def test_e8_mail_written_in_the_evening_reaches_the_smtp_server_the_next_morning(
    smtp: SmtpServer,
    comms_db: Database,
    issuer: DevIssuer,
    common_settings: CommonSettings,
    consent_client: ServiceClient,
    auth: TokenFactory,
    school: SchoolBuilder,
) -> None:
    clock = FrozenClock(dt.datetime(2026, 11, 18, 19, 30, tzinfo=dt.UTC))  # Wednesday evening
    settings = CommsSettings(
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, reminder_within_days=0
    )
    transport = SmtpTransport(settings)
    app = create_app(
        common=common_settings,
        settings=settings,
        verifier=TokenVerifier(common_settings, key_set=issuer.key_set()),
        consent=consent_client,
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=transport,
        clock=clock,
    )
    family = school.family()
    worker = delivery_worker(app)
    with TestClient(app, raise_server_exceptions=False) as comms:
        assert (
            comms.put("/v1/settings", json=settings_body(), headers=auth("head")).status_code == 200
        )
        receipt = comms.post(
            "/v1/messages",
            json={
                "recipients": {"pupil_ids": [family.pupil_id]},
                "subject": "Reading",
                "body_text": "Reading books are due back tomorrow.",
            },
            headers=auth("staff"),
        ).json()

        sent_in_the_evening = worker.run_once()
        clock.now = dt.datetime(2026, 11, 19, 7, 59, tzinfo=dt.UTC)
        sent_a_minute_early = worker.run_once()
        clock.now = dt.datetime(2026, 11, 19, 8, 0, tzinfo=dt.UTC)
        sent_in_the_morning = worker.run_once()
    transport.close()

    assert receipt["scheduled_for"] == "2026-11-19T08:00:00Z"
    assert (sent_in_the_evening, sent_a_minute_early, sent_in_the_morning) == (0, 0, 1)
    (mail,) = smtp.received
    assert mail.addresses("From") == [f"staff@{SCHOOL}.sch.uk"]
    assert set(mail.addresses("Cc")) == {HEAD, DEPUTY}
