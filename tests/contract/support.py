"""What the schemathesis tests share: which refusals are business faults, not contract ones."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

PROBLEM_JSON = "application/problem+json"

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
