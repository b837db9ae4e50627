"""What comms asks the consent service, and only through its public API: the families a message
goes to, a carer's children, whether a pupil is in the school, and the consents that lapse soon.

Each answer is read through a model of the consent service's response (tolerant: fields comms
does not read are ignored), and tests/contract/test_comms_consent_client.py checks every field of
these models against openapi/consent.json, so a field renamed in consent fails the build rather
than a send. Anything the consent service cannot answer becomes ``ServiceUnavailable`` (503):
nothing is sent on a guess.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hallpass_comms.recipients.policy import Carer, FamilyRecord, Targets
from hallpass_comms.reminders.policy import Lapsing
from hallpass_kit.auth import CarerLink
from hallpass_kit.clients import ServiceClient
from hallpass_kit.errors import ProblemDetail, ServiceUnavailable, Unprocessable

RESOLVE_PATH = "/v1/families:resolve"
RENEWALS_PATH = "/v1/renewals"
LINKS_PATH = "/v1/me/links"
ROUND_LINKS_PATH = "/v1/consent-requests/{request_id}/rounds/{round}:links"


class ConsentAnswer(BaseModel):
    # A tolerant reader: consent may add fields without breaking comms.
    model_config = ConfigDict(extra="ignore", frozen=True)


class FamilyCarer(ConsentAnswer):
    """A carer of a resolved family (consent's ``FamilyCarer``)."""

    guardian_id: uuid.UUID
    email: str | None
    parental_responsibility: bool


class Family(ConsentAnswer):
    """One pupil and their carers (consent's ``Family``, from ``POST /v1/families:resolve``)."""

    pupil_id: uuid.UUID
    pupil_given_name: str
    pupil_family_name: str
    class_id: uuid.UUID | None
    year_group: int
    on_roll: bool
    carers: list[FamilyCarer]


class Renewal(ConsentAnswer):
    """A grant that lapses soon (consent's ``Renewal``, from ``GET /v1/renewals``)."""

    record_id: uuid.UUID
    pupil_id: uuid.UUID
    purpose: str
    guardian_id: uuid.UUID | None
    guardian_email: str | None
    valid_until: dt.datetime


class CarerLinkAnswer(ConsentAnswer):
    """One record of a signed-in carer, in one school (consent's ``CarerLinkView``)."""

    school: str
    guardian_id: uuid.UUID


class CarerLinks(ConsentAnswer):
    """A signed-in carer's records (consent's ``MyLinks``, from ``GET /v1/me/links``)."""

    links: list[CarerLinkAnswer]


class RequestChild(ConsentAnswer):
    """A carer's child in a consent request (consent's ``LinkChild``)."""

    pupil_id: uuid.UUID
    given_name: str


class RequestCarerLink(ConsentAnswer):
    """One carer's personal link for a round (consent's ``CarerLinkIssued``)."""

    guardian_id: uuid.UUID
    email: str
    children: list[RequestChild]
    purposes: list[str]
    token: str


class RoundLinks(ConsentAnswer):
    """A consent request's round and its links (consent's ``RoundLinks``)."""

    request_id: uuid.UUID
    round: int
    school_name: str
    title: str
    note: str | None
    closes_at: dt.datetime | None
    carers: list[RequestCarerLink]


class RefusedItem(ConsentAnswer):
    """One reason in consent's refusal (consent's ``ProblemDetail``)."""

    code: str = "unknown_recipient"
    detail: str = ""
    where: str | None = None


class Refusal(ConsentAnswer):
    """Consent's 422 problem+json: which of the ids asked about it does not know."""

    code: str = "unknown_recipient"
    problems: list[RefusedItem] = []


Answer = TypeVar("Answer")
_FAMILIES = TypeAdapter(list[Family])
_RENEWALS = TypeAdapter(list[Renewal])


def _unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(detail, code="consent_unavailable")


def _parsed(adapter: TypeAdapter[Answer], response: httpx.Response) -> Answer:
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        raise _unavailable(
            "The consent service's answer could not be read; nothing was sent."
        ) from exc


def _family_record(family: Family) -> FamilyRecord:
    return FamilyRecord(
        pupil_id=family.pupil_id,
        given_name=family.pupil_given_name,
        family_name=family.pupil_family_name,
        class_id=family.class_id,
        year_group=family.year_group,
        on_roll=family.on_roll,
        carers=tuple(
            Carer(
                guardian_id=c.guardian_id,
                email=c.email,
                parental_responsibility=c.parental_responsibility,
            )
            for c in family.carers
        ),
    )


def _refused_recipients(response: httpx.Response) -> Unprocessable:
    """Consent's refusal, said of the message's recipients (where it names ``body.x``, the
    sender's field is ``body.recipients.x``)."""
    refusal = _parsed(TypeAdapter(Refusal), response)
    return Unprocessable(
        "Some recipients are not in this school; nothing was sent.",
        code=refusal.code,
        problems=[
            ProblemDetail(
                code=p.code,
                detail=p.detail,
                where=p.where.replace("body.", "body.recipients.", 1) if p.where else None,
            )
            for p in refusal.problems
        ],
    )


def _query(targets: Targets) -> dict[str, Any]:
    return {
        "guardian_ids": sorted(str(g) for g in targets.guardian_ids),
        "pupil_ids": sorted(str(p) for p in targets.pupil_ids),
        "class_ids": sorted(str(c) for c in targets.class_ids),
        "year_groups": sorted(targets.year_groups),
    }


class ConsentClient:
    """Synchronous calls (from worker threads: sync endpoints, jobs, the CLI) to consent."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client
        # A carer's links are asked as the carer, never as comms: the same consent service
        # without comms's own credentials, so only the carer's token is ever sent.
        self._as_carer = ServiceClient(
            name=client.name, base_url=client.base_urls, app=client.app, timeout=client.timeout
        )

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
            for link in _parsed(TypeAdapter(CarerLinks), response).links
        ]

    def _resolve(self, school: str, targets: Targets, caller_token: str | None) -> httpx.Response:
        return self.client.request_sync(
            "POST", RESOLVE_PATH, school=school, caller_token=caller_token, json=_query(targets)
        )

    def _families(self, response: httpx.Response) -> list[FamilyRecord]:
        if response.status_code != 200:
            raise _unavailable(
                f"The consent service answered {response.status_code}; nothing was sent."
            )
        return [_family_record(f) for f in _parsed(_FAMILIES, response)]

    def families(
        self, school: str, targets: Targets, *, caller_token: str | None = None
    ) -> Sequence[FamilyRecord]:
        """The families the targets name; unknown ids are the sender's mistake (422)."""
        if not targets.needs_families:
            return []
        response = self._resolve(school, targets, caller_token)
        if response.status_code == 422:
            raise _refused_recipients(response)
        return self._families(response)

    def children_of(
        self, school: str, guardian_id: uuid.UUID, *, caller_token: str | None = None
    ) -> set[uuid.UUID]:
        """The pupils this carer is linked to; empty when the consent service does not know
        them."""
        response = self._resolve(
            school, Targets(guardian_ids=frozenset({guardian_id})), caller_token
        )
        if response.status_code == 422:
            return set()
        return {
            f.pupil_id
            for f in self._families(response)
            if any(c.guardian_id == guardian_id for c in f.carers)
        }

    def pupil_in_school(
        self, school: str, pupil_id: uuid.UUID, *, caller_token: str | None = None
    ) -> bool:
        """Whether the consent service knows this pupil in this school (leavers included)."""
        response = self._resolve(school, Targets(pupil_ids=frozenset({pupil_id})), caller_token)
        if response.status_code == 422:
            return False
        return any(f.pupil_id == pupil_id for f in self._families(response))

    def round_links(self, school: str, request_id: uuid.UUID, round_: int) -> RoundLinks | None:
        """The personal links of a consent request's mail round; None when the request has
        closed or is not known (then there is nobody to write to)."""
        response = self.client.request_sync(
            "POST", ROUND_LINKS_PATH.format(request_id=request_id, round=round_), school=school
        )
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code} for links.")
        return _parsed(TypeAdapter(RoundLinks), response)

    def lapsing_consents(self, school: str, within_days: int) -> list[Lapsing]:
        """Grants lapsing within ``within_days`` whose carer has an address to remind."""
        response = self.client.request_sync(
            "GET", RENEWALS_PATH, school=school, params={"within_days": within_days}
        )
        if response.status_code != 200:
            raise _unavailable(f"The consent service answered {response.status_code} for renewals.")
        return [
            Lapsing(
                record_id=r.record_id,
                pupil_id=r.pupil_id,
                purpose=r.purpose,
                guardian_id=r.guardian_id,
                email=r.guardian_email.lower(),
                valid_until=r.valid_until,
            )
            for r in _parsed(_RENEWALS, response)
            if r.guardian_id is not None and r.guardian_email
        ]
