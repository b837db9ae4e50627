"""Through the gateway, with the real delivery worker and a real SMTP server on loopback: what
carers' mail servers receive for a class message (E1, E2, E9) and what the history then shows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hallpass_comms.settings import CommsSettings
from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_kit.settings import DEV_ISSUER, CommonSettings
from tests.comms.conftest import DEPUTY, HEAD, settings_body
from tests.comms.smtp import SmtpServer

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
