"""The consent service against its own OpenAPI document: schemathesis, in-process over ASGI.

Every operation is fuzzed with all of schemathesis' default checks (server errors, status codes,
content types, response schemas and headers, positive/negative data, ``ignored_auth``…) using a
token that reaches the whole API. The school has real data, and generated ids are swapped for
real ones part of the time, so requests get past "not found" into the interesting code.

``HALLPASS_FUZZ_EXAMPLES`` sets the examples per operation (25 by default; ``make fuzz`` uses 500).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
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

from hallpass_consent.app import create_app
from hallpass_consent.settings import ConsentSettings
from hallpass_kit.auth import DevIssuer, TokenVerifier
from hallpass_kit.db import Database
from hallpass_kit.settings import CommonSettings, Environment
from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.contract.support import WEBHOOK_REJECTIONS, config, is_listed, rejected_problem

Case: TypeAlias = schemathesis.Case[Any]

EXAMPLES = int(os.environ.get("HALLPASS_FUZZ_EXAMPLES", "25"))

# Schema-valid requests the API rightly refuses because of what they refer to or a policy rule:
# things no schema can say (which ids exist, which carer is linked to which child, which cursors
# the server issued). positive_data_acceptance counts them as failures, so for each operation
# exactly these (status, problem code) pairs are accepted; any other rejection of valid data,
# above all 422 invalid_request (the server's validation disagreeing with its own schema), fails.
CARER_ANSWER_REFUSALS = (
    "unknown_purpose",
    "no_consent_needed",
    "pupil_not_on_roll",
    "not_a_carer",
    "no_parental_responsibility",
)
BUSINESS_REJECTIONS: dict[str, frozenset[tuple[int, str]]] = {
    "GET /v1/pupils": frozenset({(400, "invalid_cursor")}),
    "GET /v1/audit": frozenset({(400, "invalid_cursor")}),
    "GET /v1/audit/checkpoints": frozenset({(400, "invalid_cursor")}),
    **WEBHOOK_REJECTIONS,
    "POST /v1/pupils": frozenset({(422, "unknown_class")}),
    # PupilChange documents null as "leave unchanged" for optional names; required ones refuse it.
    "PATCH /v1/pupils/{pupil_id}": frozenset({(422, "unknown_class"), (422, "required_field")}),
    "POST /v1/pupils:import": frozenset({(422, "invalid_csv"), (422, "too_many_rows")}),
    "POST /v1/guardians": frozenset({(422, "unknown_pupil"), (422, "duplicate_child")}),
    "POST /v1/guardians/{guardian_id}/children": frozenset({(422, "unknown_pupil")}),
    "POST /v1/consents": frozenset(
        (422, code)
        for code in (
            "unknown_pupil",
            "pupil_not_on_roll",
            "unknown_purpose",
            "no_consent_needed",
            "pupil_answer_not_asked",
            "guardian_not_expected",
            "guardian_required",
            "not_a_carer",
            "no_parental_responsibility",
            "invalid_dates",
            "unknown_wording_version",
            "wording_not_in_welsh",
        )
    ),
    # A scan's type is read from its bytes (415 for anything not a PDF, JPEG or PNG) and an
    # empty file is refused; the record part is the JSON of POST /v1/consents, as a string the
    # schema cannot describe further, with that endpoint's refusals.
    "POST /v1/consents:with-evidence": frozenset(
        {
            (415, "unsupported_scan_type"),
            (422, "empty_scan"),
            (422, "invalid_record"),
            (422, "wording_not_in_welsh"),
            *(
                (422, code)
                for code in (
                    "unknown_pupil",
                    "pupil_not_on_roll",
                    "unknown_purpose",
                    "no_consent_needed",
                    "pupil_answer_not_asked",
                    "guardian_not_expected",
                    "guardian_required",
                    "not_a_carer",
                    "no_parental_responsibility",
                    "invalid_dates",
                    "unknown_wording_version",
                )
            ),
        }
    ),
    "POST /v1/consents/{record_id}/evidence": frozenset(
        {(415, "unsupported_scan_type"), (422, "empty_scan")}
    ),
    "POST /v1/consents/{record_id}:withdraw": frozenset({(422, "not_a_grant")}),
    "POST /v1/families:resolve": frozenset(
        {(422, "unknown_pupil"), (422, "unknown_guardian"), (422, "unknown_class")}
    ),
    # The batch limit is a deployment setting (HALLPASS_CONSENT_MAX_DECISION_BATCH).
    "POST /v1/decisions": frozenset(
        {(422, "unknown_purpose"), (422, "unknown_pupil"), (422, "batch_too_large")}
    ),
    "PATCH /v1/purposes/{code}": frozenset(
        {(422, "no_consent_needed"), (422, "explicit_consent_required")}
    ),
    "POST /v1/me/children/{pupil_id}/consents": frozenset(
        (422, code)
        for code in (*CARER_ANSWER_REFUSALS, "unknown_wording_version", "wording_not_in_welsh")
    ),
    "POST /v1/me/children/{pupil_id}/consents/{purpose}:withdraw": frozenset(
        (422, code) for code in CARER_ANSWER_REFUSALS
    ),
    # Which codes the school issued is no schema's to say.
    "POST /v1/me/invitations:redeem": frozenset({(422, "invitation_not_valid")}),
    # Which purposes and classes the school has, and who is on roll in them.
    "POST /v1/consent-requests": frozenset(
        (422, code)
        for code in (
            "unknown_purpose",
            "no_consent_needed",
            "empty_scope",
            "unknown_class",
            "closes_in_the_past",
            "nobody_in_scope",
        )
    ),
    "GET /v1/consent-requests": frozenset({(400, "invalid_cursor")}),
}

PURPOSES = ("website_photo", "social_media_photo", "livestream", "pupil_work_publish")


def _schema_app() -> FastAPI:
    """An app only to read the OpenAPI document from; requests go to each test's own app."""
    common = CommonSettings(env=Environment.test)
    return create_app(
        common=common,
        settings=ConsentSettings(),
        verifier=TokenVerifier(common),  # never asked: this app answers no API request
        database=Database("sqlite://"),
        run_background=False,
        migrate=False,
    )


schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _schema_app(),
    # The test sends a real token with every request (and ignored_auth probes without it), so
    # generating random Authorization headers would only produce requests that never reach the
    # operation, and "negative" cases whose only flaw is the header the test replaces anyway.
    config=config(),
)


def _special_use_email(case: Case, problem: dict[str, Any]) -> bool:
    """email-validator refuses special-use domains (RFC 6761: .test, .invalid, localhost…) that
    the JSON Schema "email" format allows; no carer's real address is on one."""
    problems = problem.get("problems", [])
    return (
        case.operation.label == "POST /v1/guardians"
        and problem.get("code") == "invalid_request"
        and bool(problems)
        and all(
            p.get("where") == "body.email" and "special-use or reserved name" in p.get("detail", "")
            for p in problems
        )
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
    if problem is None:
        return True
    if is_listed(case, response, problem, BUSINESS_REJECTIONS):
        return False
    return not (response.status_code == 422 and _special_use_email(case, problem))


PURPOSE_CODE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
ID_FIELDS = ("pupil_id", "guardian_id", "class_id", "record_id")


def _well_formed(kind: str, value: object) -> bool:
    """Only values the schema accepts are replaced: a negative case must stay negative."""
    if not isinstance(value, str):
        return False
    if kind == "purpose":
        return PURPOSE_CODE.match(value) is not None
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass
class Fuzzed:
    """The fuzzed school: its app, the tokens used and the real ids to substitute."""

    app: FastAPI
    staff: dict[str, str]
    parent: dict[str, str]
    families: list[dict[str, str]]

    def headers(self, case: Case) -> dict[str, str]:
        # /v1/me is a carer's own view (A2): only a parent token reaches past the role check.
        return self.parent if case.path.startswith("/v1/me/") else self.staff

    def substitute(self, case: Case) -> None:
        """Point about two cases in three at one real family: its pupil, carer, record.

        The generated values decide (which family, whether at all), so a failing example replays
        and shrinks the same way.
        """
        body = dict(case.body) if isinstance(case.body, dict) else {}
        candidates = [*case.path_parameters.items(), *sorted(body.items())]
        seed = next(
            (
                uuid.UUID(value).int if _well_formed("id", value) else zlib.crc32(value.encode())
                for name, value in candidates
                if _well_formed("purpose" if name in ("code", "purpose") else "id", value)
            ),
            None,
        )
        if seed is None or seed % 3 == 0:
            return
        family = self.families[seed // 3 % len(self.families)]
        real = {**family, "purpose": PURPOSES[seed // 9 % len(PURPOSES)]}

        def swap(name: str, value: Any) -> Any:
            kind = "purpose" if name in ("code", "purpose") else name
            if kind in real and _well_formed("purpose" if kind == "purpose" else "id", value):
                return real[kind]
            return value

        if case.path_parameters:
            case.path_parameters = {k: swap(k, v) for k, v in case.path_parameters.items()}
        if not body:
            return
        for name, value in body.items():
            if name in (*ID_FIELDS, "purpose"):
                body[name] = swap(name, value)
            elif name == "pupil_ids" and isinstance(value, list):
                pupils = [f["pupil_id"] for f in self.families]
                body[name] = [
                    pupils[i % len(pupils)] if _well_formed("id", v) else v
                    for i, v in enumerate(value)
                ]
            elif name == "children" and isinstance(value, list):
                body[name] = [
                    {**child, "pupil_id": swap("pupil_id", child["pupil_id"])}
                    if isinstance(child, dict) and "pupil_id" in child
                    else child
                    for child in value
                ]
        case.body = body


@pytest.fixture
def fuzzed(
    tmp_path: Path, sqlite_template: Path, issuer: DevIssuer, auth: TokenFactory
) -> Iterator[Fuzzed]:
    """A populated school on a database of its own (SQLite only: this is a contract test)."""
    path = tmp_path / "consent.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    common = CommonSettings(env=Environment.test, data_dir=tmp_path / "data")
    app = create_app(
        common=common,
        settings=ConsentSettings(),
        verifier=TokenVerifier(common, key_set=issuer.key_set()),
        database=database,
        run_background=False,
        migrate=False,
    )
    families: list[dict[str, str]] = []
    with TestClient(app) as client:
        school = SchoolBuilder(client, auth)
        school.set_up()
        class_id = school.school_class()
        for given, family_name, purpose, decision in (
            ("Amara", "Okafor", "website_photo", "granted"),
            ("Oliver", "Shaw", "livestream", "refused"),
            ("Isla", "Brennan", "social_media_photo", "granted"),
        ):
            family = school.family(given, family_name, class_id=class_id)
            record = school.consent(family.pupil_id, family.guardian_ids[0], purpose, decision)
            families.append(
                {
                    "pupil_id": family.pupil_id,
                    "guardian_id": family.guardian_ids[0],
                    "class_id": class_id,
                    "record_id": str(record["id"]),
                }
            )
        response = client.put(
            f"/v1/pupils/{families[2]['pupil_id']}/restriction",
            json={"kind": "court_order", "reason": "Must not be locatable"},
            headers=auth("dsl"),
        )
        assert response.status_code == 200, response.text
    yield Fuzzed(
        app=app,
        staff=auth("head", "office", "dsl", "admin"),
        parent=auth("parent", guardian=families[0]["guardian_id"]),
        families=families,
    )
    database.dispose()


@pytest.mark.contract
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # One school per operation, shared by its examples on purpose: later examples meet the data
    # earlier ones wrote, as a real client would.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@schema.parametrize()
def test_consent_api_keeps_its_openapi_contract(case: Case, fuzzed: Fuzzed) -> None:
    fuzzed.substitute(case)
    case.call_and_validate(headers=fuzzed.headers(case), app=fuzzed.app)
