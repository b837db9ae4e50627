"""The one client media has for the consent service, and only through its public API.

Every answer the consent service cannot give becomes ``ServiceUnavailable`` (503): a check then
fails closed and is never "allowed". A 422 about a pupil becomes ``unknown_pupil`` for the caller.
The roster and its compiled name matcher are kept per school for the life of the roster's ETag:
the matcher is rebuilt only when consent answers with a new roster. A pupil added a moment ago
must be found in the very next check (the bound on staleness is zero), so a check matches names
only with a roster at least as new as one consent read after the check was received: either the
roster version a decision answer names (``Hallpass-Roster-Version``, read in the same statement
as the decisions), or a revalidation (If-None-Match; an unchanged roster answers 304 without the
names). Concurrent checks share revalidations, but only ones that started after the check itself
began (``_Revalidations``), so sharing never hands a check an answer older than the check.

Each answer media reads is a Pydantic model below: a tolerant reader (``extra="ignore"``) of the
fields media uses, which tests/contract/test_media_consent_client.py checks against
``openapi/consent.json``, so a field renamed in consent fails the build rather than a check.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hallpass_kit.auth import CarerLink
from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import NotFound, ProblemDetail, ServiceUnavailable, Unprocessable
from hallpass_media.consent_facts import DecisionBatch, PupilDecision, Roster
from hallpass_media.names import NameDetector, RosterName


class ConsentAnswer(BaseModel):
    """What media reads of one consent answer; whatever else consent sends is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class DecisionEntry(ConsentAnswer):
    pupil_id: uuid.UUID
    allowed: bool
    reason: str


class DecisionsAnswer(ConsentAnswer):
    """``POST /v1/decisions``."""

    decisions: list[DecisionEntry]


class RosterPupil(ConsentAnswer):
    id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None = None


class RosterAnswer(ConsentAnswer):
    """``GET /v1/roster``."""

    version: int
    pupils: list[RosterPupil]


class GuardianAnswer(ConsentAnswer):
    """One entry of ``GET /v1/pupils/{pupil_id}/guardians``."""

    id: uuid.UUID


class PupilAnswer(ConsentAnswer):
    """``GET /v1/pupils/{pupil_id}``, and one entry of a page of pupils."""

    id: uuid.UUID


class PupilsPage(ConsentAnswer):
    """``GET /v1/pupils``."""

    items: list[PupilAnswer]
    next_cursor: str | None = None


class CarerLinkAnswer(ConsentAnswer):
    """One record of a signed-in carer, in one school."""

    school: str
    guardian_id: uuid.UUID


class CarerLinksAnswer(ConsentAnswer):
    """``GET /v1/me/links``, asked with the carer's own token."""

    links: list[CarerLinkAnswer]


class ProblemEntry(ConsentAnswer):
    code: str
    detail: str
    where: str | None = None
    rule: str | None = None


class ConsentProblem(ConsentAnswer):
    """A problem+json refusal from consent (422 on ``POST /v1/decisions``)."""

    code: str | None = None
    problems: list[ProblemEntry] = []


Answer = TypeVar("Answer")

ROSTER_VERSION = "Hallpass-Roster-Version"
GUARDIANS: TypeAdapter[list[GuardianAnswer]] = TypeAdapter(list[GuardianAnswer])
LINKS_PATH = "/v1/me/links"


def _unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, code="consent_unavailable")


def _read(response: httpx.Response, read: Callable[[bytes], Answer]) -> Answer:
    """The answer as media reads it; one it cannot read is an answer consent could not give."""
    try:
        return read(response.content)
    except ValidationError as exc:
        raise _unavailable("The consent service gave an answer media cannot read.") from exc


@dataclass
class _Flights:
    """One school's roster revalidations on one event loop: the one running, and the one that
    will start when it ends (shared by every check that arrives meanwhile)."""

    queued: asyncio.Future[Roster] | None = None
    runner: asyncio.Task[None] | None = None


@dataclass
class _Revalidations:
    """Coalesces roster revalidations without ever serving a check an answer older than itself.

    A check joins the *queued* revalidation, never the running one: the running one may have
    been answered before a pupil was added that the check must find. So each check waits for a
    revalidation that began after it did, and concurrent checks share it: under load there are
    at most two revalidations in flight per school however many checks run.
    """

    _loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Flights]] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    async def fresh(self, school: str, revalidate: Callable[[], Awaitable[Roster]]) -> Roster:
        loop = asyncio.get_running_loop()
        flights = self._loops.setdefault(loop, {}).setdefault(school, _Flights())
        if flights.queued is None:
            flights.queued = loop.create_future()
            # A roster nobody waits for any more (its checks were cancelled) is not an error.
            flights.queued.add_done_callback(_consume)
        waiter = flights.queued
        if flights.runner is None:
            flights.runner = loop.create_task(self._run(flights, revalidate))
        return await asyncio.shield(waiter)

    @staticmethod
    async def _run(flights: _Flights, revalidate: Callable[[], Awaitable[Roster]]) -> None:
        future: asyncio.Future[Roster] | None = None
        try:
            while flights.queued is not None:
                future, flights.queued = flights.queued, None
                try:
                    future.set_result(await revalidate())
                except Exception as exc:  # each waiting check raises it (fails closed)
                    future.set_exception(exc)
        finally:
            flights.runner = None
            if future is not None and not future.done():
                future.cancel()  # the loop is going away: nobody is left to answer


def _consume(future: asyncio.Future[Roster]) -> None:
    if not future.cancelled():
        future.exception()


class ConsentLink:
    """Synchronous calls (from worker threads) to the consent service for one media service."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client
        # A carer's links are asked as the carer, never as media: the same consent service
        # without media's own credentials, so only the carer's token is ever sent.
        self._as_carer = ServiceClient(
            name=client.name, base_url=client.base_urls, app=client.app, timeout=client.timeout
        )
        self._rosters: dict[str, Roster] = {}
        self._lock = threading.Lock()
        self._revalidations = _Revalidations()

    def carer_links(self, token: str) -> list[CarerLink]:
        """The records of the carer holding ``token`` in every school, asked with that token.

        The answer covers all the carer's schools, so the school header the client always sends
        is left empty.
        """
        response = self._as_carer.request_sync("GET", LINKS_PATH, school="", caller_token=token)
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code} for links.")
        return [
            CarerLink(link.school, link.guardian_id)
            for link in _read(response, CarerLinksAnswer.model_validate_json).links
        ]

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
    ) -> DecisionBatch:
        """``decisions`` from a coroutine (the in-process consent app runs on the same loop),
        with the roster version consent decided against: the oldest of its batches', None if
        any answer did not say (or no pupil was asked about, so consent was not asked)."""
        wanted = list(dict.fromkeys(pupil_ids))
        answers: dict[uuid.UUID, PupilDecision] = {}
        versions: list[int | None] = []
        for batch in _batches(wanted):
            response = await self.client.request(
                "POST", "/v1/decisions", school=school, json=_decision_body(purpose, batch)
            )
            answers.update(_decisions(response))
            versions.append(_roster_version(response))
        known = [v for v in versions if v is not None]
        oldest = min(known) if known and len(known) == len(versions) else None
        return DecisionBatch(_complete(wanted, answers), oldest)

    def held_roster(self, school: str) -> Roster | None:
        """The roster this process holds for ``school``, however old: a check may match with it
        only once consent has named a version it is at least as new as."""
        return self._cached(school)

    async def roster_since_async(self, school: str, version: int | None) -> Roster:
        """A roster at least as new as ``version`` (read by consent after the caller was
        received): the one held if it is, else revalidated (``roster_async``). None: always
        revalidated."""
        held = self._cached(school)
        if version is not None and held is not None and _at_least(held, version):
            return held
        return await self.roster_async(school)

    def roster(self, school: str) -> Roster:
        """The school's names, from cache when the consent service says they are unchanged."""
        cached = self._cached(school)
        response = self.client.request_sync(
            "GET", "/v1/roster", school=school, headers=_revalidate(cached)
        )
        return self._remember(school, cached, response)

    async def roster_async(self, school: str) -> Roster:
        """``roster`` from a coroutine: revalidated after the call began, shared with the
        checks that call meanwhile (``_Revalidations``)."""

        async def revalidate() -> Roster:
            cached = self._cached(school)
            response = await self.client.request(
                "GET", "/v1/roster", school=school, headers=_revalidate(cached)
            )
            if response.status_code == 200:
                # A new roster: its matcher is compiled in a thread, not on the event loop.
                return await asyncio.to_thread(self._remember, school, cached, response)
            return self._remember(school, cached, response)

        return await self._revalidations.fresh(school, revalidate)

    def _cached(self, school: str) -> Roster | None:
        with self._lock:
            return self._rosters.get(school)

    def _remember(self, school: str, cached: Roster | None, response: httpx.Response) -> Roster:
        if response.status_code == 304 and cached is not None:
            return cached
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code} for names.")
        answer = _read(response, RosterAnswer.model_validate_json)
        names = {
            pupil.id: RosterName(
                pupil_id=pupil.id,
                given_name=pupil.given_name,
                family_name=pupil.family_name,
                preferred_name=pupil.preferred_name,
            )
            for pupil in answer.pupils
        }
        roster = Roster(
            etag=response.headers.get("ETag", ""),
            detector=NameDetector(names.values()),
            names=names,
            version=answer.version,
        )
        with self._lock:
            held = self._rosters.get(school)
            # Two revalidations may finish out of order: the newer roster is the one kept.
            if held is None or held.version is None or held.version <= answer.version:
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
        return {guardian.id for guardian in _read(response, GUARDIANS.validate_json)}

    def pupil_exists(self, school: str, pupil_id: uuid.UUID) -> bool:
        response = self.client.request_sync("GET", f"/v1/pupils/{pupil_id}", school=school)
        if response.status_code in (404, 422):
            return False
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code}.")
        _read(response, PupilAnswer.model_validate_json)
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
            page = _read(response, PupilsPage.model_validate_json)
            pupils.extend(pupil.id for pupil in page.items)
            cursor = page.next_cursor
            if not cursor:
                return pupils


def _batches(wanted: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    # The consent service caps a batch; large classes go in slices.
    return [wanted[start : start + 500] for start in range(0, len(wanted), 500)]


def _decision_body(purpose: str, batch: list[uuid.UUID]) -> dict[str, Any]:
    return {"purpose": purpose, "pupil_ids": [str(p) for p in batch]}


def _at_least(roster: Roster, version: int) -> bool:
    return roster.version is not None and roster.version >= version


def _roster_version(response: httpx.Response) -> int | None:
    said = response.headers.get(ROSTER_VERSION)
    if said is None or not said.isdigit():
        return None
    return int(said)


def _revalidate(cached: Roster | None) -> dict[str, str] | None:
    return {"If-None-Match": cached.etag} if cached else None


def _decisions(response: httpx.Response) -> dict[uuid.UUID, PupilDecision]:
    if response.status_code == 422:
        problem = _read(response, ConsentProblem.model_validate_json)
        if problem.code == "unknown_pupil":
            raise Unprocessable(
                "One or more of these pupils is not on this school's roll.",
                code="unknown_pupil",
                problems=[
                    ProblemDetail(code=p.code, detail=p.detail, where=p.where, rule=p.rule)
                    for p in problem.problems
                ],
            )
        raise _unavailable(f"The consent service refused the question ({problem.code}).")
    if response.status_code != 200:
        raise _unavailable(f"The consent service answered {response.status_code}.")
    return {
        entry.pupil_id: PupilDecision(
            pupil_id=entry.pupil_id, allowed=entry.allowed, reason=entry.reason
        )
        for entry in _read(response, DecisionsAnswer.model_validate_json).decisions
    }


def _complete(
    wanted: list[uuid.UUID], answers: dict[uuid.UUID, PupilDecision]
) -> dict[uuid.UUID, PupilDecision]:
    if any(p not in answers for p in wanted):
        raise _unavailable("The consent service left some pupils undecided.")
    return {p: answers[p] for p in wanted}
