"""The comms service against its own OpenAPI document: schemathesis, in-process over ASGI.

Every operation is fuzzed with schemathesis' default checks using tokens that reach the whole
API (a carer's for the carers' operations). The school has real families, a sensitive message,
a message held for approval and a pastoral concern, and generated ids are swapped for real ones
part of the time so requests get past "not found".

``HALLPASS_FUZZ_EXAMPLES`` sets the examples per operation (25 by default).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from hallpass_comms import migrations as comms_migrations
from hallpass_comms.app import create_app
from hallpass_comms.delivery import EmlFolderTransport
from hallpass_comms.settings import CommsSettings
from hallpass_consent.app import create_app as create_consent_app
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings, Environment
from tests.comms.conftest import settings_body
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.contract.support import config, is_listed, is_uuid, rejected_problem

Case: TypeAlias = schemathesis.Case[Any]

EXAMPLES = int(os.environ.get("HALLPASS_FUZZ_EXAMPLES", "25"))
# In school hours on a school day, so nothing is held for lack of a term ahead.
NOW = dt.datetime(2026, 11, 18, 10, 0, tzinfo=dt.UTC)

SETTINGS_REFUSALS = frozenset(
    (422, code)
    for code in (
        "address_off_domain",
        "cc_address_missing",
        "unknown_timezone",
        "invalid_school_hours",
        "duplicate_school_day",
        "term_dates_out_of_order",
        "duplicate_domain",
    )
)
SEND_REFUSALS = frozenset(
    {
        (422, "no_recipients"),
        (422, "unknown_pupil"),
        (422, "unknown_guardian"),
        (422, "unknown_class"),
        (422, "chain_message"),
        (422, "sensitive_needs_family"),
        (409, "no_school_day_ahead"),
        (409, "idempotency_key_reused"),
    }
)
# Schema-valid requests rightly refused for what they refer to or a policy rule.
BUSINESS_REJECTIONS: dict[str, frozenset[tuple[int, str]]] = {
    "PUT /v1/settings": SETTINGS_REFUSALS,
    "POST /v1/messages": SEND_REFUSALS,
    "POST /v1/messages/{message_id}:approve": frozenset({(409, "not_pending_approval")}),
    "GET /v1/messages/{message_id}/secure-view": frozenset({(410, "secure_view_expired")}),
    "GET /v1/families/{pupil_id}/messages": frozenset({(400, "invalid_cursor")}),
    "GET /v1/pastoral/concerns": frozenset({(400, "invalid_cursor")}),
    "POST /v1/pastoral/concerns/{concern_id}/replies": frozenset(
        {(422, "chain_message"), (422, "no_recipients")}
    ),
    "POST /v1/reports": frozenset({(422, "report_needs_source")}),
    "GET /v1/audit": frozenset({(400, "invalid_cursor")}),
    "GET /v1/audit/checkpoints": frozenset({(400, "invalid_cursor")}),
}
ID_FIELDS = ("message_id", "pupil_id", "concern_id", "guardian_id", "class_id")
CARER_OPERATIONS = ("POST /v1/pastoral/concerns", "GET /v1/messages/{message_id}/secure-view")


def _schema_app() -> FastAPI:
    common = CommonSettings(env=Environment.test)
    return create_app(
        common=common,
        settings=CommsSettings(reminder_within_days=0),
        verifier=TokenVerifier(common),
        consent=ServiceClient(name="consent"),
        database=Database("sqlite://"),
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(Path("unused-outbox")),
    )


schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _schema_app(),
    config=config(),
)


@schema.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Any,
    case: Case,
    response: schemathesis.Response,
) -> bool:
    """Keep every failure but a schema-valid request refused for one of the reasons above."""
    problem = rejected_problem(failure, response)
    return problem is None or not is_listed(case, response, problem, BUSINESS_REJECTIONS)


@dataclass
class Fuzzed:
    app: FastAPI
    staff: dict[str, str]
    parent: dict[str, str]
    real: list[dict[str, str]]

    def headers(self, case: Case) -> dict[str, str]:
        return self.parent if case.operation.label in CARER_OPERATIONS else self.staff

    def substitute(self, case: Case) -> None:
        """Point about two cases in three at real ids; the generated values decide which."""
        body = dict(case.body) if isinstance(case.body, dict) else {}
        values = [v for _, v in sorted(case.path_parameters.items()) if is_uuid(v)]
        values += [v for k, v in sorted(body.items()) if k in ID_FIELDS and is_uuid(v)]
        if not values:
            return
        seed = zlib.crc32(str(values[0]).encode())
        if seed % 3 == 0:
            return
        real = self.real[seed // 3 % len(self.real)]
        if case.path_parameters:
            case.path_parameters = {
                k: real.get(k, v) if is_uuid(v) else v for k, v in case.path_parameters.items()
            }
        if body:
            for name in ID_FIELDS:
                if name in body and is_uuid(body[name]):
                    body[name] = real.get(name, body[name])
            case.body = body


@pytest.fixture
def fuzzed(
    tmp_path: Path, sqlite_template: Path, issuer: DevIssuer, auth: TokenFactory
) -> Iterator[Fuzzed]:
    consent_path = tmp_path / "consent.db"
    shutil.copyfile(sqlite_template, consent_path)
    consent_db = Database(f"sqlite:///{consent_path}")
    comms_db = Database(f"sqlite:///{tmp_path / 'comms.db'}")
    comms_migrations.upgrade(comms_db)
    common = CommonSettings(env=Environment.test, data_dir=tmp_path / "data")
    verifier = TokenVerifier(common, key_set=issuer.key_set())
    consent_app = create_consent_app(
        common=common,
        settings=ConsentSettings(),
        verifier=verifier,
        database=consent_db,
        run_background=False,
        migrate=False,
    )
    app = create_app(
        common=common,
        settings=CommsSettings(reminder_within_days=0),
        verifier=verifier,
        consent=ServiceClient(
            name="consent", app=consent_app, tokens=DevServiceTokens(issuer, "comms")
        ),
        database=comms_db,
        run_background=False,
        migrate=False,
        transport=EmlFolderTransport(tmp_path / "outbox"),
        clock=lambda: NOW,
    )
    real: list[dict[str, str]] = []
    with TestClient(consent_app) as client, TestClient(app) as comms:
        school = SchoolBuilder(client, auth)
        school.set_up()
        class_id = school.school_class()
        assert (
            comms.put("/v1/settings", json=settings_body(), headers=auth("head")).status_code == 200
        )
        for given, family_name in (("Amara", "Okafor"), ("Oliver", "Shaw")):
            family = school.family(given, family_name, class_id=class_id)
            carer = auth("parent", guardian=family.guardian_ids[0])
            message = comms.post(
                "/v1/messages",
                json={
                    "recipients": {"pupil_ids": [family.pupil_id]},
                    "subject": "About your child",
                    "body_text": "Private words.",
                    "sensitivity": "sensitive",
                },
                headers=auth("staff"),
            )
            concern = comms.post(
                "/v1/pastoral/concerns",
                json={"subject": "Lunch", "body": "Upset at lunch.", "pupil_id": family.pupil_id},
                headers=carer,
            )
            assert message.status_code == 202, message.text
            assert concern.status_code == 201, concern.text
            real.append(
                {
                    "pupil_id": family.pupil_id,
                    "guardian_id": family.guardian_ids[0],
                    "class_id": class_id,
                    "message_id": message.json()["id"],
                    "concern_id": concern.json()["id"],
                }
            )
        held = comms.post(
            "/v1/messages",
            json={
                "recipients": {"addresses": ["referrals@council.gov.uk"]},
                "subject": "Referral",
                "body_text": "Notes to follow.",
            },
            headers=auth("staff"),
        )
        assert held.status_code == 202, held.text
        real.append({**real[0], "message_id": held.json()["id"]})
    yield Fuzzed(
        app=app,
        staff=auth("head", "deputy", "dsl", "office", "admin", "pastoral"),
        parent=auth("parent", guardian=real[0]["guardian_id"]),
        real=real,
    )
    consent_db.dispose()
    comms_db.dispose()


@pytest.mark.contract
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@schema.parametrize()
def test_comms_api_keeps_its_openapi_contract(case: Case, fuzzed: Fuzzed) -> None:
    fuzzed.substitute(case)
    case.call_and_validate(headers=fuzzed.headers(case), app=fuzzed.app)
