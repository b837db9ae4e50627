"""What the schemathesis tests share: which refusals are business faults, not contract ones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

PROBLEM_JSON = "application/problem+json"

# Schema-invalid data may also be refused for its size: a body over the endpoint's limit is a 413
# before anything reads it (schemathesis' default list of refusals leaves 413 out).
NEGATIVE_REFUSALS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]


def config() -> schemathesis.Config:
    """How every service's contract test runs schemathesis."""
    return schemathesis.Config.from_dict(
        {
            "generation": {"with-security-parameters": False},
            "checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_REFUSALS}},
        }
    )


# The kit's webhook endpoints, on every service that announces events: an event the service does
# not announce, a URL it will not call, a name already taken, a cursor it never issued.
WEBHOOK_REJECTIONS: dict[str, frozenset[tuple[int, str]]] = {
    "POST /v1/webhook-subscriptions": frozenset(
        {
            (422, "invalid_subscription"),
            (409, "webhook_subscription_exists"),
            (409, "too_many_webhook_subscriptions"),
        }
    ),
    "GET /v1/webhook-dead-letters": frozenset({(400, "invalid_cursor")}),
}

# Per operation label ("POST /v1/..."), the (status, code) pairs a schema-valid request may get.
Rejections = Mapping[str, frozenset[tuple[int, str]]]


def rejected_problem(failure: Any, response: schemathesis.Response) -> dict[str, Any] | None:
    """The problem document of a schema-valid request the API refused, when it sent one."""
    if not isinstance(failure, RejectedPositiveData):
        return None
    if response.headers.get("content-type", [""])[0].split(";")[0] != PROBLEM_JSON:
        return None
    problem: dict[str, Any] = response.json()
    return problem


def is_listed(
    case: schemathesis.Case[Any],
    response: schemathesis.Response,
    problem: Mapping[str, Any],
    rejections: Rejections,
) -> bool:
    """The refusal is one the operation rightly gives for what the request refers to."""
    allowed = rejections.get(case.operation.label, frozenset())
    return (response.status_code, problem.get("code")) in allowed


def is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
