"""Consent requests: the school asks the carers of a class, a year or the whole school for chosen
purposes; each carer answers on the page their personal link opens.

The answers are recorded through ``consents.service.record_consent``, the path the office's
``POST /v1/consents`` takes, so every consent rule applies to them unchanged.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.orm import Session

from hallpass_consent.common import audit, emit_event, record_audit, require_school
from hallpass_consent.consents import service as consents
from hallpass_consent.consents.schemas import ConsentCreate
from hallpass_consent.events import ConsentRequestMailDue
from hallpass_consent.models import (
    ConsentRequest,
    ConsentRequestCarer,
    ConsentRequestLink,
    ConsentRequestPupil,
    ConsentRequestStatus,
    GivenBy,
    Method,
    Pupil,
)
from hallpass_consent.requests import policy, repository
from hallpass_consent.requests.schemas import (
    CarerLinkIssued,
    ChildQuestions,
    ClassProgress,
    ConsentRequestCreate,
    ConsentRequestSummary,
    ConsentRequestView,
    LinkAnswer,
    LinkAnswerReceipt,
    LinkChild,
    LinkOpen,
    LinkRequestView,
    PupilToChase,
    PurposeQuestion,
    RecordedAnswer,
    RequestScope,
    RoundLinks,
)
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import Conflict, HallpassError, NotFound, ProblemDetail, Unprocessable
from hallpass_kit.pagination import Page, decode_position, encode_position


class RequestClosed(HallpassError):
    """The request was closed or its closing date has passed: its links no longer work."""

    status, code, title = 410, "request_closed", "No longer open"


def _closed_error() -> RequestClosed:
    return RequestClosed(
        "This consent request has closed; the school is no longer collecting answers to it. "
        "Please contact the school office if you want to give or change consent."
    )


def _link_not_found() -> NotFound:
    # The same words for a token never issued and one mistyped: whether a request exists is not
    # for the holder of a wrong link to learn.
    return NotFound(
        "This link is not known. Please use the link in the school's most recent email.",
        code="link_not_found",
    )


def _request_not_found() -> NotFound:
    return NotFound("No such consent request in this school.", code="unknown_consent_request")


# --- the office's side ------------------------------------------------------------------------


def _check_purposes(session: Session, school_id: str, codes: Sequence[str]) -> list[str]:
    found = repository.purposes_by_code(session, school_id, codes)
    problems = []
    for i, code in enumerate(codes):
        pair = found.get(code)
        if pair is None:
            problems.append(
                ProblemDetail(
                    code="unknown_purpose",
                    where=f"body.purposes[{i}]",
                    detail=f"No purpose '{code}' in this school's catalogue.",
                    rule="C1",
                )
            )
        elif not pair[0].requires_consent:
            problems.append(
                ProblemDetail(
                    code="no_consent_needed",
                    where=f"body.purposes[{i}]",
                    detail=f"'{code}' needs no consent and is never published.",
                    rule="C6",
                )
            )
    if problems:
        raise Unprocessable(
            "Some purposes cannot be asked about; nothing was sent.",
            code=problems[0].code,
            rule=problems[0].rule,
            problems=problems,
        )
    return list(dict.fromkeys(codes))


def _check_scope(session: Session, school_id: str, scope: RequestScope) -> None:
    if not (scope.class_ids or scope.year_groups or scope.whole_school):
        raise Unprocessable(
            "Choose who is asked: classes, year groups or the whole school.",
            code="empty_scope",
        )
    known = repository.classes_by_id(session, school_id, scope.class_ids)
    unknown = [i for i, class_id in enumerate(scope.class_ids) if class_id not in known]
    if unknown:
        raise Unprocessable(
            "Some classes are not in this school; nothing was sent.",
            code="unknown_class",
            problems=[
                ProblemDetail(
                    code="unknown_class",
                    where=f"body.scope.class_ids[{i}]",
                    detail=f"No class {scope.class_ids[i]} in this school.",
                )
                for i in unknown
            ],
        )


def create_request(
    session: Session, principal: Principal, body: ConsentRequestCreate, *, now: dt.datetime
) -> ConsentRequestView:
    """Snapshot who is asked and announce the first email round (comms sends it after commit)."""
    school = require_school(session, principal.school)
    codes = _check_purposes(session, school.id, body.purposes)
    _check_scope(session, school.id, body.scope)
    if body.closes_at is not None and body.closes_at <= now:
        raise Unprocessable("The closing date must be in the future.", code="closes_in_the_past")
    scope = body.scope
    pupils = repository.pupils_in_scope(
        session,
        school.id,
        class_ids=set(scope.class_ids),
        year_groups=set(scope.year_groups),
        whole_school=scope.whole_school,
    )
    if not pupils:
        raise Unprocessable("No pupil on roll is in the chosen scope.", code="nobody_in_scope")
    request = ConsentRequest(
        id=uuid.uuid4(),
        school_id=school.id,
        title=body.title,
        note=body.note,
        purpose_codes=codes,
        scope=scope.model_dump(mode="json"),
        status=ConsentRequestStatus.open,
        rounds=1,
        closes_at=body.closes_at,
        created_by=principal.actor,
        created_at=now,
    )
    repository.add(session, request)
    repository.add(
        session,
        *(
            ConsentRequestPupil(request_id=request.id, pupil_id=p.id, class_id=p.class_id)
            for p in pupils
        ),
    )
    carers = {
        guardian.id: guardian
        for _, guardian in repository.responsible_carers_with_address(
            session, school.id, [p.id for p in pupils]
        )
    }
    repository.add(
        session,
        *(
            ConsentRequestCarer(
                request_id=request.id,
                school_id=school.id,
                guardian_id=guardian.id,
                email=(guardian.email or "").strip(),
                last_round_mailed=0,
            )
            for guardian in carers.values()
        ),
    )
    emit_event(
        session,
        school.id,
        ConsentRequestMailDue(request_id=request.id, school_id=school.id, round=1),
    )
    record_audit(
        session,
        principal,
        "consent_request.created",
        str(request.id),
        {"purposes": codes, "pupils": len(pupils), "carers": len(carers)},
    )
    return _view(session, request, now=now)


def _progress(
    session: Session, requests: Sequence[ConsentRequest]
) -> dict[uuid.UUID, tuple[list[tuple[Pupil, uuid.UUID | None]], set[uuid.UUID]]]:
    """Per request: its pupils (with class when sent) and which of them have answered."""
    pupils: dict[uuid.UUID, list[tuple[Pupil, uuid.UUID | None]]] = defaultdict(list)
    for request_id, pupil, class_id in repository.request_pupils(session, [r.id for r in requests]):
        pupils[request_id].append((pupil, class_id))
    progress = {}
    for request in requests:
        purposes = repository.purposes_by_code(session, request.school_id, request.purpose_codes)
        purpose_ids = [p.id for p, _ in purposes.values()]
        recorded = repository.answered_pairs(
            session, request.school_id, request.id, purpose_ids, request.created_at
        )
        mine = pupils[request.id]
        progress[request.id] = (
            mine,
            policy.answered_pupils((p.id for p, _ in mine), purpose_ids, recorded),
        )
    return progress


def _status(request: ConsentRequest, now: dt.datetime) -> ConsentRequestStatus:
    closed = policy.is_closed(request.status, request.closes_at, now)
    return ConsentRequestStatus.closed if closed else ConsentRequestStatus.open


def _summary(
    request: ConsentRequest, total: int, answered: int, now: dt.datetime
) -> ConsentRequestSummary:
    return ConsentRequestSummary(
        id=request.id,
        title=request.title,
        status=_status(request, now),
        purposes=list(request.purpose_codes),
        created_at=request.created_at,
        created_by=request.created_by,
        closes_at=request.closes_at,
        closed_at=request.closed_at,
        rounds=request.rounds,
        total=total,
        answered=answered,
    )


def _chase(pupil: Pupil) -> PupilToChase:
    return PupilToChase(
        pupil_id=pupil.id,
        given_name=pupil.preferred_name or pupil.given_name,
        family_name=pupil.family_name,
    )


def _view(session: Session, request: ConsentRequest, *, now: dt.datetime) -> ConsentRequestView:
    pupils, answered = _progress(session, [request])[request.id]
    names = repository.class_names(session, request.school_id)
    by_class: dict[uuid.UUID | None, list[Pupil]] = defaultdict(list)
    for pupil, class_id in pupils:
        by_class[class_id].append(pupil)
    classes = [
        ClassProgress(
            class_id=class_id,
            class_name=names.get(class_id) if class_id else None,
            total=len(members),
            answered=sum(1 for p in members if p.id in answered),
            not_yet=[_chase(p) for p in members if p.id not in answered],
        )
        for class_id, members in sorted(
            by_class.items(),
            key=lambda item: (item[0] is None, names.get(item[0], "") if item[0] else ""),
        )
    ]
    carers = repository.carers_of(session, [request.id])
    reached = {
        pupil.id
        for _, pupil in repository.children_of_carers(
            session, request.id, [c.guardian_id for c in carers]
        )
    }
    summary = _summary(request, len(pupils), len(answered), now)
    return ConsentRequestView(
        **summary.model_dump(),
        note=request.note,
        scope=RequestScope.model_validate(request.scope),
        carers_asked=len(carers),
        carers_mailed=sum(1 for c in carers if c.last_round_mailed > 0),
        last_round_mailed=max((c.last_round_mailed for c in carers), default=0),
        classes=classes,
        pupils_without_address=[_chase(p) for p, _ in pupils if p.id not in reached],
    )


def list_requests(
    session: Session, principal: Principal, *, cursor: str | None, limit: int, now: dt.datetime
) -> Page[ConsentRequestSummary]:
    """The school's requests, newest first, with how many pupils have answered."""
    rows = repository.page_requests(
        session, principal.school, after=decode_position(cursor), limit=limit + 1
    )
    page = list(rows[:limit])
    progress = _progress(session, page)
    return Page[ConsentRequestSummary](
        items=[_summary(r, len(progress[r.id][0]), len(progress[r.id][1]), now) for r in page],
        next_cursor=encode_position(page[-1].created_at, page[-1].id)
        if len(rows) > limit
        else None,
    )


def get_request(
    session: Session, principal: Principal, request_id: uuid.UUID, *, now: dt.datetime
) -> ConsentRequestView:
    request = repository.get_request(session, principal.school, request_id)
    if request is None:
        raise _request_not_found()
    return _view(session, request, now=now)


def _open_request(
    session: Session, principal: Principal, request_id: uuid.UUID, now: dt.datetime
) -> ConsentRequest:
    request = repository.lock_request(session, principal.school, request_id)
    if request is None:
        raise _request_not_found()
    if policy.is_closed(request.status, request.closes_at, now):
        raise Conflict("This consent request is closed.", code="request_closed")
    return request


def remind(
    session: Session, principal: Principal, request_id: uuid.UUID, *, now: dt.datetime
) -> ConsentRequestView:
    """Another round: carers of pupils not answered yet get a fresh link."""
    request = _open_request(session, principal, request_id, now)
    request.rounds += 1
    session.flush()
    emit_event(
        session,
        request.school_id,
        ConsentRequestMailDue(
            request_id=request.id, school_id=request.school_id, round=request.rounds
        ),
    )
    record_audit(
        session, principal, "consent_request.reminded", str(request.id), {"round": request.rounds}
    )
    return _view(session, request, now=now)


def close(
    session: Session, principal: Principal, request_id: uuid.UUID, *, now: dt.datetime
) -> ConsentRequestView:
    """No more answers by link; what was recorded stays recorded."""
    request = _open_request(session, principal, request_id, now)
    request.status = ConsentRequestStatus.closed
    request.closed_by = principal.actor
    request.closed_at = now
    session.flush()
    record_audit(session, principal, "consent_request.closed", str(request.id))
    return _view(session, request, now=now)


# --- comms' side: the links of a round ---------------------------------------------------------


def issue_links(
    session: Session,
    principal: Principal,
    request_id: uuid.UUID,
    round_: int,
    *,
    now: dt.datetime,
) -> RoundLinks:
    """A fresh personal link for each carer due in ``round_``. Only the links' hashes are kept;
    comms mails each token once and keeps none."""
    request = repository.lock_request(session, principal.school, request_id)
    if request is None:
        raise _request_not_found()
    if round_ > request.rounds:
        raise NotFound(f"This request has no round {round_} yet.", code="unknown_round")
    if policy.is_closed(request.status, request.closes_at, now):
        raise _closed_error()
    school = require_school(session, request.school_id)
    carers = {c.guardian_id: c for c in repository.carers_of(session, [request.id])}
    children: dict[uuid.UUID, list[Pupil]] = defaultdict(list)
    for guardian_id, pupil in repository.children_of_carers(session, request.id, list(carers)):
        children[guardian_id].append(pupil)
    _, answered = _progress(session, [request])[request.id]
    due = policy.carers_due(
        round_, {g: [p.id for p in kids] for g, kids in children.items()}, answered
    )
    purposes = repository.purposes_by_code(session, request.school_id, request.purpose_codes)
    titles = [purposes[c][0].title for c in request.purpose_codes if c in purposes]
    issued = []
    for guardian_id in sorted(due, key=lambda g: (carers[g].email, str(g))):
        carer = carers[guardian_id]
        token = secrets.token_urlsafe(32)  # 256 bits: not guessable, fits in a URL as it is
        repository.add(
            session,
            ConsentRequestLink(
                carer_id=carer.id, token_hash=policy.token_hash(token), round=round_, issued_at=now
            ),
        )
        carer.last_round_mailed = max(carer.last_round_mailed, round_)
        carer.mailed_at = now
        issued.append(
            CarerLinkIssued(
                guardian_id=guardian_id,
                email=carer.email,
                children=[
                    LinkChild(pupil_id=p.id, given_name=p.preferred_name or p.given_name)
                    for p in children[guardian_id]
                ],
                purposes=titles,
                token=token,
            )
        )
    session.flush()
    record_audit(
        session,
        principal,
        "consent_request.links_issued",
        str(request.id),
        {"round": round_, "carers": len(issued)},
    )
    return RoundLinks(
        request_id=request.id,
        round=round_,
        school_name=school.name,
        title=request.title,
        note=request.note,
        closes_at=request.closes_at,
        carers=issued,
    )


# --- the carer's side: the page a link opens ---------------------------------------------------


def _carer_by_link(
    session: Session, token: str, now: dt.datetime
) -> tuple[ConsentRequestLink, ConsentRequestCarer, ConsentRequest]:
    found = repository.link_by_hash(session, policy.token_hash(token))
    if found is None:
        raise _link_not_found()
    link, carer, request = found
    if policy.is_closed(request.status, request.closes_at, now):
        raise _closed_error()
    return link, carer, request


def _link_actor(carer: ConsentRequestCarer) -> str:
    return f"carer:{carer.guardian_id} via link"


def _link_principal(carer: ConsentRequestCarer) -> Principal:
    """The carer the link was mailed to, acting in the link's school only (the link is the
    credential, as in ParentMail: whoever holds it is taken to be that carer)."""
    return Principal(
        sub=_link_actor(carer),
        school=carer.school_id,
        roles=frozenset({Role.parent}),
        guardian_id=carer.guardian_id,
        email=carer.email,
    )


def open_link(session: Session, body: LinkOpen, *, now: dt.datetime) -> LinkRequestView:
    """The request, the carer's children in it and each purpose's current wording."""
    link, carer, request = _carer_by_link(session, body.token, now)
    school = require_school(session, request.school_id)
    guardian = repository.guardian(session, request.school_id, carer.guardian_id)
    children = [
        p for _, p in repository.children_of_carers(session, request.id, [carer.guardian_id])
    ]
    purposes = repository.purposes_by_code(session, request.school_id, request.purpose_codes)
    asked = [purposes[c] for c in request.purpose_codes if c in purposes]
    latest = repository.latest_decisions(
        session,
        request.school_id,
        carer.guardian_id,
        [p.id for p in children],
        [p.id for p, _ in asked],
    )
    repository.mark_opened(session, link.id, now)
    audit.append(
        session,
        actor=_link_actor(carer),
        school=request.school_id,
        action="consent_request.link_opened",
        target=str(request.id),
        details={"round": link.round},
    )
    return LinkRequestView(
        request_id=request.id,
        school_name=school.name,
        title=request.title,
        note=request.note,
        closes_at=request.closes_at,
        guardian_given_name=guardian.given_name if guardian else "",
        children=[
            ChildQuestions(
                pupil_id=child.id,
                given_name=child.preferred_name or child.given_name,
                purposes=[
                    PurposeQuestion(
                        purpose=purpose.code,
                        title=purpose.title,
                        title_cy=purpose.title_cy,
                        wording_version=wording.version,
                        wording=wording.text,
                        wording_cy=wording.text_cy,
                        current_decision=record.decision
                        if (record := latest.get((child.id, purpose.id)))
                        else None,
                    )
                    for purpose, wording in asked
                ],
            )
            for child in children
        ],
    )


def answer_link(session: Session, body: LinkAnswer, *, now: dt.datetime) -> LinkAnswerReceipt:
    """Record every answer or none: each through the office's own recording path, so every
    consent rule (C3, C8, C10, C11, C12…) holds for an answer by link too."""
    link, carer, request = _carer_by_link(session, body.token, now)
    children = {
        p.id: p for _, p in repository.children_of_carers(session, request.id, [carer.guardian_id])
    }
    purposes = repository.purposes_by_code(session, request.school_id, request.purpose_codes)
    seen: set[tuple[uuid.UUID, str]] = set()
    for i, answer in enumerate(body.answers):
        if answer.pupil_id not in children:
            # Another carer's child, or one not in this request: the same 404 either way (A2).
            raise NotFound("No such child in this request.", code="unknown_child", rule="A2")
        if answer.purpose not in purposes:
            raise Unprocessable(
                f"This request does not ask about '{answer.purpose}'.",
                code="purpose_not_requested",
                problems=[
                    ProblemDetail(
                        code="purpose_not_requested",
                        where=f"body.answers[{i}].purpose",
                        detail=f"Not asked: '{answer.purpose}'.",
                    )
                ],
            )
        if (answer.pupil_id, answer.purpose) in seen:
            raise Unprocessable(
                "The same child and purpose are answered twice.", code="duplicate_answer"
            )
        seen.add((answer.pupil_id, answer.purpose))
        current = purposes[answer.purpose][1].version
        if answer.wording_version != current:
            # The school changed the words since the page was opened: the carer answers the
            # words in force, so they are shown them first (C10).
            raise Conflict(
                f"The school has changed the words of '{purposes[answer.purpose][0].title}' "
                f"since this page was opened (now version {current}). Please read them again "
                "and answer.",
                code="stale_wording",
                rule="C10",
                problems=[
                    ProblemDetail(
                        code="stale_wording",
                        where=f"body.answers[{i}].wording_version",
                        detail=f"The current version is {current}.",
                        rule="C10",
                    )
                ],
            )
    principal = _link_principal(carer)
    recorded = []
    for answer in body.answers:
        view = consents.record_consent(
            session,
            principal,
            ConsentCreate(
                pupil_id=answer.pupil_id,
                purpose=answer.purpose,
                decision=answer.decision,
                guardian_id=carer.guardian_id,
                given_by=GivenBy.guardian,
                method=Method.electronic,
                evidence_ref=policy.evidence_ref(request.id, carer.email),
                wording_version=answer.wording_version,
                wording_language=answer.wording_language or body.language,
            ),
            now=now,
        )
        recorded.append(
            RecordedAnswer(
                record_id=view.id,
                pupil_id=answer.pupil_id,
                given_name=(child := children[answer.pupil_id]).preferred_name or child.given_name,
                purpose=answer.purpose,
                title=purposes[answer.purpose][0].title,
                title_cy=purposes[answer.purpose][0].title_cy,
                decision=view.decision,
                wording_version=view.wording_version,
                wording_language=view.wording_language,
            )
        )
    repository.mark_used(session, link.id, carer.id, now)
    audit.append(
        session,
        actor=_link_actor(carer),
        school=request.school_id,
        action="consent_request.answered",
        target=str(request.id),
        details={"round": link.round, "answers": len(recorded), "language": body.language},
    )
    return LinkAnswerReceipt(request_id=request.id, recorded=recorded)
