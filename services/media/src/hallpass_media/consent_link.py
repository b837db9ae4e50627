"""What the media service asks the consent service, and only through its public API.

Every answer the consent service cannot give becomes ``ServiceUnavailable`` (503): a check then
fails closed and is never "allowed". A 422 about a pupil becomes ``unknown_pupil`` for the caller.
The roster is cached per school by ETag: each check revalidates it (a 304 is cheap) and the name
matcher is rebuilt only when the roster changed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import NotFound, ProblemDetail, ServiceUnavailable, Unprocessable
from hallpass_media.names import NameDetector, RosterName


@dataclass(frozen=True)
class PupilDecision:
    pupil_id: uuid.UUID
    allowed: bool
    reason: str


@dataclass(frozen=True)
class Roster:
    etag: str
    detector: NameDetector
    names: dict[uuid.UUID, RosterName]

    def display_name(self, pupil_id: uuid.UUID) -> str | None:
        name = self.names.get(pupil_id)
        if name is None:
            return None
        return f"{name.preferred_name or name.given_name} {name.family_name}"


def _unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, code="consent_unavailable")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise _unavailable("The consent service gave an answer that is not JSON.") from exc


class ConsentLink:
    """Synchronous calls (from worker threads) to the consent service for one media service."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client
        self._rosters: dict[str, Roster] = {}
        self._lock = threading.Lock()

    def decisions(
        self, school: str, purpose: str, pupil_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, PupilDecision]:
        """One verdict per pupil for ``purpose``; an unknown pupil is the caller's mistake."""
        wanted = list(dict.fromkeys(pupil_ids))
        answers: dict[uuid.UUID, PupilDecision] = {}
        for batch in _batches(wanted):
            response = self.client.request_sync(
                "POST", "/v1/decisions", school=school, json=_decision_body(purpose, batch)
            )
            answers.update(_decisions(response))
        return _complete(wanted, answers)

    async def decisions_async(
        self, school: str, purpose: str, pupil_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, PupilDecision]:
        """``decisions`` from a coroutine: the in-process consent app runs on the same loop."""
        wanted = list(dict.fromkeys(pupil_ids))
        answers: dict[uuid.UUID, PupilDecision] = {}
        for batch in _batches(wanted):
            response = await self.client.request(
                "POST", "/v1/decisions", school=school, json=_decision_body(purpose, batch)
            )
            answers.update(_decisions(response))
        return _complete(wanted, answers)

    def roster(self, school: str) -> Roster:
        """The school's names, from cache when the consent service says they are unchanged."""
        cached = self._cached(school)
        response = self.client.request_sync(
            "GET", "/v1/roster", school=school, headers=_revalidate(cached)
        )
        return self._remember(school, cached, response)

    async def roster_async(self, school: str) -> Roster:
        cached = self._cached(school)
        response = await self.client.request(
            "GET", "/v1/roster", school=school, headers=_revalidate(cached)
        )
        return self._remember(school, cached, response)

    def _cached(self, school: str) -> Roster | None:
        with self._lock:
            return self._rosters.get(school)

    def _remember(self, school: str, cached: Roster | None, response: httpx.Response) -> Roster:
        if response.status_code == 304 and cached is not None:
            return cached
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code} for names.")
        body = _json(response)
        names = {
            uuid.UUID(p["id"]): RosterName(
                pupil_id=uuid.UUID(p["id"]),
                given_name=p["given_name"],
                family_name=p["family_name"],
                preferred_name=p.get("preferred_name"),
            )
            for p in body.get("pupils", [])
        }
        roster = Roster(
            etag=response.headers.get("ETag", ""),
            detector=NameDetector(names.values()),
            names=names,
        )
        with self._lock:
            self._rosters[school] = roster
        return roster

    def guardian_ids(self, school: str, pupil_id: uuid.UUID) -> set[uuid.UUID]:
        """The carers of a pupil; an unknown pupil answers 404 (never says whose it is)."""
        response = self.client.request_sync(
            "GET", f"/v1/pupils/{pupil_id}/guardians", school=school
        )
        if response.status_code in (404, 422):
            raise NotFound("No such pupil.", code="pupil_not_found")
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code}.")
        return {uuid.UUID(g["id"]) for g in _json(response)}

    def pupil_exists(self, school: str, pupil_id: uuid.UUID) -> bool:
        response = self.client.request_sync("GET", f"/v1/pupils/{pupil_id}", school=school)
        if response.status_code in (404, 422):
            return False
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code}.")
        return True

    def pupils_of_class(self, school: str, class_id: uuid.UUID) -> list[uuid.UUID]:
        """Every pupil on roll in a class, page by page."""
        pupils: list[uuid.UUID] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"class_id": str(class_id), "limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = self.client.request_sync("GET", "/v1/pupils", school=school, params=params)
            if response.status_code != 200:
                raise _unavailable(f"The consent service answered {response.status_code}.")
            body = _json(response)
            pupils.extend(uuid.UUID(p["id"]) for p in body.get("items", []))
            cursor = body.get("next_cursor")
            if not cursor:
                return pupils


def _batches(wanted: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    # The consent service caps a batch; large classes go in slices.
    return [wanted[start : start + 500] for start in range(0, len(wanted), 500)]


def _decision_body(purpose: str, batch: list[uuid.UUID]) -> dict[str, Any]:
    return {"purpose": purpose, "pupil_ids": [str(p) for p in batch]}


def _revalidate(cached: Roster | None) -> dict[str, str] | None:
    return {"If-None-Match": cached.etag} if cached else None


def _decisions(response: httpx.Response) -> dict[uuid.UUID, PupilDecision]:
    if response.status_code == 422:
        problem = _json(response)
        if problem.get("code") == "unknown_pupil":
            raise Unprocessable(
                "One or more of these pupils is not on this school's roll.",
                code="unknown_pupil",
                problems=[
                    ProblemDetail(**p)
                    for p in problem.get("problems", [])
                    if isinstance(p, dict) and set(p) <= {"code", "detail", "where", "rule"}
                ],
            )
        raise _unavailable(f"The consent service refused the question ({problem.get('code')}).")
    if response.status_code != 200:
        raise _unavailable(f"The consent service answered {response.status_code}.")
    answers: dict[uuid.UUID, PupilDecision] = {}
    for entry in _json(response).get("decisions", []):
        decision = PupilDecision(
            pupil_id=uuid.UUID(entry["pupil_id"]),
            allowed=bool(entry["allowed"]),
            reason=str(entry["reason"]),
        )
        answers[decision.pupil_id] = decision
    return answers


def _complete(
    wanted: list[uuid.UUID], answers: dict[uuid.UUID, PupilDecision]
) -> dict[uuid.UUID, PupilDecision]:
    if any(p not in answers for p in wanted):
        raise _unavailable("The consent service left some pupils undecided.")
    return {p: answers[p] for p in wanted}
