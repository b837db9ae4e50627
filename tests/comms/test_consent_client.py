"""How comms reads the consent service's answers: tolerant of fields it does not read, closed
(503, nothing sent) on an answer it cannot read, and a refusal said of the sender's recipients.
The consent service here is a hand-written stand-in answering what each test gives it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hallpass_comms.consent_client import ConsentClient
from hallpass_comms.recipients.policy import Targets
from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import ServiceUnavailable, Unprocessable

SCHOOL = "oakfield"
PUPIL = uuid.uuid4()
GUARDIAN = uuid.uuid4()


class StaticTokens:
    def token_for(self, school: str) -> str:
        return "service-token"


def a_family(**changes: Any) -> dict[str, Any]:
    family: dict[str, Any] = {
        "pupil_id": str(PUPIL),
        "pupil_given_name": "Amara",
        "pupil_family_name": "Okafor",
        "class_id": None,
        "year_group": 3,
        "on_roll": True,
        "carers": [
            {
                "guardian_id": str(GUARDIAN),
                "given_name": "Ngozi",
                "family_name": "Okafor",
                "email": "ngozi@example.org",
                "relationship": "mother",
                "parental_responsibility": True,
            }
        ],
    }
    family.update(changes)
    return family


def consent_answering(status: int, body: Any) -> ConsentClient:
    async def answer(request: Request) -> JSONResponse:
        return JSONResponse(body, status_code=status)

    app = Starlette(
        routes=[
            Route("/v1/families:resolve", answer, methods=["POST"]),
            Route("/v1/renewals", answer, methods=["GET"]),
        ]
    )
    return ConsentClient(ServiceClient(name="consent", app=app, tokens=StaticTokens()))


def test_fields_consent_adds_are_ignored() -> None:
    consent = consent_answering(200, [a_family(pupil_preferred_name="Mara", house="Oak")])

    (family,) = consent.families(SCHOOL, Targets(pupil_ids=frozenset({PUPIL})))

    assert (family.pupil_id, family.given_name) == (PUPIL, "Amara")
    assert family.carers[0].email == "ngozi@example.org"


def test_an_answer_without_a_field_comms_reads_fails_closed() -> None:
    renamed = a_family()
    renamed["given_name"] = renamed.pop("pupil_given_name")
    consent = consent_answering(200, [renamed])

    with pytest.raises(ServiceUnavailable) as refused:
        consent.families(SCHOOL, Targets(pupil_ids=frozenset({PUPIL})))

    assert refused.value.code == "consent_unavailable"


def test_e9_unknown_pupils_are_refused_as_the_senders_recipients() -> None:
    consent = consent_answering(
        422,
        {
            "type": "about:blank",
            "title": "Unprocessable",
            "status": 422,
            "detail": "Unknown pupils.",
            "code": "unknown_pupil",
            "problems": [
                {"code": "unknown_pupil", "detail": "No such pupil.", "where": "body.pupil_ids"}
            ],
        },
    )

    with pytest.raises(Unprocessable) as refused:
        consent.families(SCHOOL, Targets(pupil_ids=frozenset({PUPIL})))

    assert refused.value.code == "unknown_pupil"
    assert [p.where for p in refused.value.problems] == ["body.recipients.pupil_ids"]


def test_a_carer_consent_does_not_know_has_no_children() -> None:
    consent = consent_answering(422, {"code": "unknown_guardian", "problems": []})

    assert consent.children_of(SCHOOL, GUARDIAN) == set()


def test_only_renewals_with_a_carer_to_write_to_are_reminded() -> None:
    renewal = {
        "record_id": str(uuid.uuid4()),
        "pupil_id": str(PUPIL),
        "purpose": "website_photo",
        "guardian_id": str(GUARDIAN),
        "guardian_email": "Ngozi@Example.org",
        "valid_until": "2026-12-01T00:00:00+00:00",
    }
    consent = consent_answering(
        200,
        [renewal, {**renewal, "guardian_email": None}, {**renewal, "guardian_id": None}],
    )

    (lapsing,) = consent.lapsing_consents(SCHOOL, within_days=30)

    assert (lapsing.guardian_id, lapsing.email) == (GUARDIAN, "ngozi@example.org")
