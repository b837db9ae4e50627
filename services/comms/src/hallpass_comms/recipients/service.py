"""Asks the consent service who the families are; it is the only source of carers' addresses."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from hallpass_comms.recipients.policy import Carer, FamilyRecord, Targets
from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import ProblemDetail, ServiceUnavailable, Unprocessable

RESOLVE_PATH = "/v1/families:resolve"


def _family(raw: dict[str, Any]) -> FamilyRecord:
    return FamilyRecord(
        pupil_id=uuid.UUID(raw["pupil_id"]),
        given_name=raw["pupil_given_name"],
        family_name=raw["pupil_family_name"],
        class_id=uuid.UUID(raw["class_id"]) if raw.get("class_id") else None,
        year_group=int(raw["year_group"]),
        on_roll=bool(raw["on_roll"]),
        carers=tuple(
            Carer(
                guardian_id=uuid.UUID(c["guardian_id"]),
                email=c.get("email"),
                parental_responsibility=bool(c["parental_responsibility"]),
            )
            for c in raw["carers"]
        ),
    )


def _read(response: httpx.Response) -> list[FamilyRecord]:
    if response.status_code == 422:
        problem = response.json()
        problems = [
            ProblemDetail(
                code=str(p.get("code", "unknown_recipient")),
                detail=str(p.get("detail", "")),
                where=(
                    str(p["where"]).replace("body.", "body.recipients.", 1)
                    if p.get("where")
                    else None
                ),
            )
            for p in problem.get("problems", [])
        ]
        raise Unprocessable(
            "Some recipients are not in this school; nothing was sent.",
            code=str(problem.get("code", "unknown_recipient")),
            problems=problems,
        )
    if response.status_code != 200:
        raise ServiceUnavailable(
            f"The consent service answered {response.status_code}; nothing was sent.",
            code="consent_unavailable",
        )
    try:
        return [_family(raw) for raw in response.json()]
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailable(
            "The consent service's answer could not be read; nothing was sent.",
            code="consent_unavailable",
        ) from exc


def _query(targets: Targets) -> dict[str, Any]:
    return {
        "guardian_ids": sorted(str(g) for g in targets.guardian_ids),
        "pupil_ids": sorted(str(p) for p in targets.pupil_ids),
        "class_ids": sorted(str(c) for c in targets.class_ids),
        "year_groups": sorted(targets.year_groups),
    }


def resolve_families(
    consent: ServiceClient, school: str, targets: Targets, *, caller_token: str | None = None
) -> Sequence[FamilyRecord]:
    """The families the targets name; from a worker thread (sync endpoints, jobs, the CLI)."""
    if not targets.needs_families:
        return []
    response = consent.request_sync(
        "POST", RESOLVE_PATH, school=school, caller_token=caller_token, json=_query(targets)
    )
    return _read(response)


def children_of(
    consent: ServiceClient, school: str, guardian_id: uuid.UUID, *, caller_token: str | None = None
) -> set[uuid.UUID]:
    """The pupils this carer is linked to; empty when the consent service does not know them."""
    response = consent.request_sync(
        "POST",
        RESOLVE_PATH,
        school=school,
        caller_token=caller_token,
        json=_query(Targets(guardian_ids=frozenset({guardian_id}))),
    )
    if response.status_code == 422:
        return set()
    return {
        f.pupil_id for f in _read(response) if any(c.guardian_id == guardian_id for c in f.carers)
    }


def pupil_in_school(
    consent: ServiceClient, school: str, pupil_id: uuid.UUID, *, caller_token: str | None = None
) -> bool:
    """Whether the consent service knows this pupil in this school (leavers included)."""
    response = consent.request_sync(
        "POST",
        RESOLVE_PATH,
        school=school,
        caller_token=caller_token,
        json=_query(Targets(pupil_ids=frozenset({pupil_id}))),
    )
    if response.status_code == 422:
        return False
    return any(f.pupil_id == pupil_id for f in _read(response))
