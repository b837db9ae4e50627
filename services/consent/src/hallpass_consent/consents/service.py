"""Recording, withdrawing and reading consent; the one place consent state is computed.

Every function is handed the time (``now``) by its caller: the service's one clock.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from hallpass_consent.common import emit_event, record_audit, require_school
from hallpass_consent.consents import policy, repository
from hallpass_consent.consents.policy import PurposeRule, Reason, SchoolYear, Verdict, decide
from hallpass_consent.consents.schemas import (
    ConsentCreate,
    ConsentReceipt,
    ConsentRecordView,
    DecisionRequest,
    EffectiveConsent,
    PupilConsents,
    ReceiptParty,
    ReceiptPurpose,
    ReceiptWithdrawal,
    Renewal,
    Withdrawal,
)
from hallpass_consent.events import ChangeCause, ConsentChanged
from hallpass_consent.models import (
    Basis,
    ConsentRecord,
    Decision,
    GivenBy,
    Method,
    Pupil,
    Purpose,
    PurposeWording,
    School,
)
from hallpass_consent.pupils import repository as pupils
from hallpass_consent.schools import repository as schools
from hallpass_kit.auth import Principal
from hallpass_kit.db import Database
from hallpass_kit.errors import Conflict, NotFound, ProblemDetail, Unprocessable

Verdicts = dict[tuple[uuid.UUID, str], Verdict]


def rule_of(purpose: Purpose) -> PurposeRule:
    return PurposeRule(
        purpose.code, purpose.basis, purpose.requires_consent, purpose.needs_pupil_agreement
    )


def consent_purposes(session: Session, school_id: str) -> Sequence[Purpose]:
    return repository.consent_purposes(session, school_id)


def evaluate(
    session: Session,
    school_id: str,
    purposes: Sequence[Purpose],
    pupil_ids: Collection[uuid.UUID],
    at: dt.datetime,
) -> Verdicts:
    """(pupil id, purpose code) → verdict, for known pupils of this school. Two queries."""
    if not pupil_ids or not purposes:
        return {}
    standing = repository.standings(session, school_id, pupil_ids, at)
    if not standing:
        return {}
    records = repository.record_views(
        session, school_id, [p.id for p in purposes], list(standing), at
    )
    verdicts: Verdicts = {}
    for purpose in purposes:
        rule = rule_of(purpose)
        for pupil_id, pupil in standing.items():
            verdicts[(pupil_id, purpose.code)] = decide(
                rule,
                at=at,
                on_roll=pupil.on_roll,
                restricted=pupil.restricted,
                responsible_guardians=pupil.responsible_guardians,
                records=records.get((pupil_id, purpose.id), ()),
            )
    return verdicts


def announce_changes(
    session: Session,
    school_id: str,
    purposes: Sequence[Purpose],
    pupil_ids: Collection[uuid.UUID],
    before: Mapping[tuple[uuid.UUID, str], Verdict],
    *,
    cause: ChangeCause,
    now: dt.datetime,
) -> None:
    """Emit ``consent.changed`` for every (pupil, purpose) whose effective state moved."""
    after = evaluate(session, school_id, purposes, pupil_ids, now)
    for (pupil_id, code), verdict in after.items():
        previous = before.get((pupil_id, code))
        if previous is not None and (previous.allowed, previous.reason) == (
            verdict.allowed,
            verdict.reason,
        ):
            continue
        emit_event(
            session,
            school_id,
            ConsentChanged(
                pupil_id=pupil_id,
                purpose=code,
                allowed=verdict.allowed,
                # Restricted is announced as such, never with its reason (C12).
                state=verdict.reason,
                record_id=verdict.record_id,
                cause=cause,
            ),
        )


def school_year(school: School) -> SchoolYear:
    return SchoolYear(
        school.consent_expiry, school.academic_year_end_month, school.academic_year_end_day
    )


def shown_words(wording: PurposeWording, language: str) -> tuple[str, str]:
    """The words a carer was shown in ``language`` and their hash (C10)."""
    if language == "cy" and wording.text_cy is not None and wording.text_cy_sha256 is not None:
        return wording.text_cy, wording.text_cy_sha256
    return wording.text, wording.text_sha256


def record_views(
    session: Session, school_id: str, records: Sequence[ConsentRecord]
) -> list[ConsentRecordView]:
    """Records as the API shows them: each with the words its carer was shown and how many
    scans of the form are kept with it. Three queries, whatever the number of records."""
    codes = {p.id: p.code for p in consent_purposes(session, school_id)}
    wordings = repository.wordings_of(session, {(r.purpose_id, r.wording_version) for r in records})
    scans = repository.scan_counts(session, school_id, [r.id for r in records])
    return [
        record_view(
            r,
            codes[r.purpose_id],
            wordings[(r.purpose_id, r.wording_version)],
            scans.get(r.id, 0),
        )
        for r in records
    ]


def record_view(
    record: ConsentRecord, purpose_code: str, wording: PurposeWording, scans: int
) -> ConsentRecordView:
    words, sha256 = shown_words(wording, record.wording_language)
    return ConsentRecordView(
        id=record.id,
        pupil_id=record.pupil_id,
        purpose=purpose_code,
        decision=record.decision,
        given_by=record.given_by,
        guardian_id=record.guardian_id,
        method=record.method,
        evidence_ref=record.evidence_ref,
        wording_version=record.wording_version,
        wording_language="cy" if record.wording_language == "cy" else "en",
        wording=words,
        wording_sha256=sha256,
        valid_from=record.valid_from,
        valid_until=record.valid_until,
        recorded_by=record.recorded_by,
        recorded_at=record.recorded_at,
        withdraws_record_id=record.withdraws_record_id,
        scans=scans,
    )


def _find_purpose(session: Session, school_id: str, code: str) -> Purpose:
    purpose = schools.purpose_by_code(session, school_id, code)
    if purpose is None:
        raise Unprocessable(
            f"No purpose '{code}' in this school's catalogue.", code="unknown_purpose", rule="C1"
        )
    if not purpose.requires_consent:
        raise Unprocessable(
            f"'{code}' needs no consent and is never published.",
            code="no_consent_needed",
            rule="C6",
        )
    return purpose


def _find_pupil_on_roll(session: Session, school_id: str, pupil_id: uuid.UUID) -> Pupil:
    pupil = pupils.get_pupil(session, school_id, pupil_id)
    if pupil is None:
        raise Unprocessable("No such pupil in this school.", code="unknown_pupil")
    if pupil.archived_at is not None:
        raise Unprocessable("This pupil has left the school.", code="pupil_not_on_roll")
    return pupil


def _check_carer(session: Session, pupil: Pupil, guardian_id: uuid.UUID) -> None:
    link = pupils.link(session, pupil.id, guardian_id)
    if link is None:
        raise Unprocessable(
            "This carer is not linked to this pupil.", code="not_a_carer", rule="A2"
        )
    if not link.parental_responsibility:
        raise Unprocessable(
            "Only a carer with parental responsibility can give or refuse consent.",
            code="no_parental_responsibility",
            rule="C11",
        )


def _append(
    session: Session,
    *,
    school: School,
    actor: str,
    pupil: Pupil,
    purpose: Purpose,
    decision: Decision,
    given_by: GivenBy,
    guardian_id: uuid.UUID | None,
    method: Method,
    evidence_ref: str | None,
    wording_version: int,
    wording_language: str,
    valid_from: dt.datetime,
    valid_until: dt.datetime | None,
    now: dt.datetime,
    withdraws: uuid.UUID | None = None,
) -> ConsentRecord:
    before = evaluate(session, school.id, [purpose], [pupil.id], now)
    record = ConsentRecord(
        school_id=school.id,
        pupil_id=pupil.id,
        purpose_id=purpose.id,
        decision=decision,
        given_by=given_by,
        guardian_id=guardian_id,
        method=method,
        evidence_ref=evidence_ref,
        wording_version=wording_version,
        wording_language=wording_language,
        valid_from=valid_from,
        valid_until=valid_until,
        recorded_by=actor,
        recorded_at=now,
        withdraws_record_id=withdraws,
    )
    repository.add_record(session, record)
    announce_changes(
        session,
        school.id,
        [purpose],
        [pupil.id],
        before,
        cause=ChangeCause.consent_recorded,
        now=now,
    )
    return record


def _wording_shown(
    session: Session, purpose: Purpose, requested: int | None, language: str
) -> PurposeWording:
    """The version a carer was shown, which must exist in the language they were shown it."""
    version = purpose.current_version if requested is None else requested
    wording = schools.wording(session, purpose.id, version)
    if wording is None:
        raise Unprocessable(
            f"'{purpose.code}' has no wording version {version}.",
            code="unknown_wording_version",
            rule="C10",
        )
    if language == "cy" and wording.text_cy is None:
        raise Unprocessable(
            f"Version {version} of '{purpose.code}' has no Welsh words, so a carer cannot have "
            "been shown it in Welsh.",
            code="wording_not_in_welsh",
            rule="C10",
        )
    return wording


def record_consent(
    session: Session, principal: Principal, body: ConsentCreate, *, now: dt.datetime
) -> ConsentRecordView:
    """Staff record a carer's (or, for their own work, a pupil's) decision (C1, C10)."""
    school = require_school(session, principal.school)
    pupil = _find_pupil_on_roll(session, school.id, body.pupil_id)
    purpose = _find_purpose(session, school.id, body.purpose)
    if body.given_by is GivenBy.pupil:
        if not purpose.needs_pupil_agreement:
            raise Unprocessable(
                f"A pupil's own answer is not asked for '{purpose.code}'.",
                code="pupil_answer_not_asked",
                rule="C8",
            )
        if body.guardian_id is not None:
            raise Unprocessable(
                "A pupil's own answer names no carer.", code="guardian_not_expected"
            )
    else:
        if body.guardian_id is None:
            raise Unprocessable(
                "Name the carer who gave this decision.", code="guardian_required", rule="C10"
            )
        _check_carer(session, pupil, body.guardian_id)
    decision = Decision(body.decision)
    valid_from, valid_until = policy.validity(
        school_year(school), decision, body.valid_from, body.valid_until, now=now
    )
    wording = _wording_shown(session, purpose, body.wording_version, body.wording_language)
    record = _append(
        session,
        school=school,
        actor=principal.actor,
        pupil=pupil,
        purpose=purpose,
        decision=decision,
        given_by=body.given_by,
        guardian_id=body.guardian_id,
        method=body.method,
        evidence_ref=body.evidence_ref,
        wording_version=wording.version,
        wording_language=body.wording_language,
        valid_from=valid_from,
        valid_until=valid_until,
        now=now,
    )
    record_audit(
        session,
        principal,
        f"consent.{decision.value}",
        str(record.id),
        {
            "pupil_id": str(pupil.id),
            "purpose": purpose.code,
            "method": body.method.value,
            "wording": f"{wording.version}/{body.wording_language}",
        },
    )
    return record_view(record, purpose.code, wording, 0)


def record_parent_consent(
    session: Session,
    principal: Principal,
    pupil: Pupil,
    purpose_code: str,
    decision: Decision,
    wording_version: int | None,
    *,
    now: dt.datetime,
    wording_language: str = "en",
) -> ConsentRecordView:
    """A carer answers for their own child in the app (A2 is checked by the caller).

    ``wording_version`` and ``wording_language`` are what the carer's page showed: a version
    the school has replaced since is refused (409), so nobody agrees to words that no longer
    describe what the school does. A withdrawal is never refused for its words (C5): it names
    the words of the grant it withdraws.
    """
    assert principal.guardian_id is not None
    school = require_school(session, principal.school)
    if pupil.archived_at is not None:
        raise Unprocessable("This pupil has left the school.", code="pupil_not_on_roll")
    purpose = _find_purpose(session, school.id, purpose_code)
    _check_carer(session, pupil, principal.guardian_id)
    valid_from, valid_until = policy.validity(school_year(school), decision, None, None, now=now)
    withdrawn = None
    if decision is Decision.withdrawn:
        withdrawn = next(
            (
                r
                for r in repository.history(session, school.id, pupil.id)
                if r.purpose_id == purpose.id
                and r.guardian_id == principal.guardian_id
                and r.decision is Decision.granted
            ),
            None,
        )
    if withdrawn is not None:
        wording_language = withdrawn.wording_language
        wording = _wording_shown(session, purpose, withdrawn.wording_version, wording_language)
    elif decision is Decision.withdrawn:
        wording = _wording_shown(session, purpose, None, "en")
        wording_language = "cy" if wording_language == "cy" and wording.text_cy else "en"
    else:
        wording = _wording_shown(session, purpose, wording_version, wording_language)
        if wording.version != purpose.current_version:
            raise Conflict(
                f"The school has published new words for '{purpose.code}' (version "
                f"{purpose.current_version}) since version {wording.version} was shown; read "
                "them and answer again.",
                code="stale_wording",
                rule="C10",
            )
    withdraws = withdrawn.id if withdrawn is not None else None
    record = _append(
        session,
        school=school,
        actor=principal.actor,
        pupil=pupil,
        purpose=purpose,
        decision=decision,
        given_by=GivenBy.guardian,
        guardian_id=principal.guardian_id,
        method=Method.app,
        evidence_ref=None,
        wording_version=wording.version,
        wording_language=wording_language,
        valid_from=valid_from,
        valid_until=valid_until,
        now=now,
        withdraws=withdraws,
    )
    record_audit(
        session,
        principal,
        f"consent.{decision.value}",
        str(record.id),
        {
            "pupil_id": str(pupil.id),
            "purpose": purpose.code,
            "method": "app",
            "wording": f"{wording.version}/{wording_language}",
        },
    )
    return record_view(record, purpose.code, wording, 0)


def withdraw_record(
    session: Session,
    principal: Principal,
    record_id: uuid.UUID,
    body: Withdrawal,
    *,
    now: dt.datetime,
) -> ConsentRecordView:
    """Withdraw a grant (C5): a new record, effective for every decision from now on."""
    school = require_school(session, principal.school)
    record = repository.get_record(session, school.id, record_id)
    if record is None:
        raise NotFound("No such consent record in this school.", code="unknown_record")
    if record.decision is not Decision.granted:
        raise Unprocessable("Only a grant can be withdrawn.", code="not_a_grant", rule="C5")
    pupil = pupils.get_pupil(session, school.id, record.pupil_id)
    purpose = next(p for p in consent_purposes(session, school.id) if p.id == record.purpose_id)
    assert pupil is not None
    withdrawal = _append(
        session,
        school=school,
        actor=principal.actor,
        pupil=pupil,
        purpose=purpose,
        decision=Decision.withdrawn,
        given_by=record.given_by,
        guardian_id=record.guardian_id,
        method=body.method,
        evidence_ref=body.evidence_ref,
        wording_version=record.wording_version,
        wording_language=record.wording_language,
        valid_from=now,
        valid_until=None,
        now=now,
        withdraws=record.id,
    )
    record_audit(
        session,
        principal,
        "consent.withdrawn",
        str(withdrawal.id),
        {"pupil_id": str(pupil.id), "purpose": purpose.code, "withdraws": str(record.id)},
    )
    return record_views(session, school.id, [withdrawal])[0]


def get_record(session: Session, principal: Principal, record_id: uuid.UUID) -> ConsentRecordView:
    record = repository.get_record(session, principal.school, record_id)
    if record is None:
        raise NotFound("No such consent record in this school.", code="unknown_record")
    return record_views(session, principal.school, [record])[0]


def pupil_consents(
    session: Session, principal: Principal, pupil_id: uuid.UUID, *, now: dt.datetime
) -> PupilConsents:
    """A pupil's effective consent per purpose at ``now``, and the full history behind it."""
    school_id = principal.school
    pupil = pupils.get_pupil(session, school_id, pupil_id)
    if pupil is None:
        raise NotFound("No such pupil in this school.", code="unknown_pupil")
    purposes = consent_purposes(session, school_id)
    verdicts = evaluate(session, school_id, purposes, [pupil.id], now)
    restricted = bool(pupils.restricted_pupil_ids(session, school_id, [pupil.id]))
    return PupilConsents(
        pupil_id=pupil.id,
        restricted=restricted,
        effective=[
            EffectiveConsent(
                purpose=p.code,
                title=p.title,
                allowed=verdicts[(pupil.id, p.code)].allowed,
                reason=verdicts[(pupil.id, p.code)].reason,
                record_id=verdicts[(pupil.id, p.code)].record_id,
                valid_until=verdicts[(pupil.id, p.code)].valid_until,
            )
            for p in purposes
        ],
        history=record_views(session, school_id, repository.history(session, school_id, pupil.id)),
    )


def history(session: Session, school_id: str, pupil_id: uuid.UUID) -> list[ConsentRecordView]:
    """Every consent record about a pupil, newest first."""
    return record_views(session, school_id, repository.history(session, school_id, pupil_id))


@dataclass(frozen=True, slots=True)
class DecidedBatch:
    """A decision batch's answer: the response body, already JSON, each verdict's reason, and
    the school's roster version read in the same statement as the facts decided on."""

    json: bytes
    reasons: list[Reason]
    roster_version: int


def decisions(
    database: Database,
    principal: Principal,
    body: DecisionRequest,
    *,
    max_batch: int,
    now: dt.datetime,
) -> DecidedBatch:
    """Per-pupil verdicts for one purpose; fails closed on anything unknown.

    Reads with one statement (``repository.decision_facts``) and decides with the same pure
    ``decide`` as every other reader of consent state; nothing is written, nothing cached (C5).
    The body is the ``DecisionResponse`` schema, written directly: the verdicts are built here
    and need no validating again.
    """
    if len(body.pupil_ids) > max_batch:
        raise Unprocessable(
            f"At most {max_batch} pupils per decision request.", code="batch_too_large"
        )
    at = body.at or now
    pupil_ids = list({pid.int: pid for pid in body.pupil_ids}.values())
    with database.reading() as connection:
        facts = repository.decision_facts(connection, principal.school, body.purpose, pupil_ids, at)
    rule = facts.rule
    if rule is None:
        raise Unprocessable(
            f"No purpose '{body.purpose}' in this school's catalogue.",
            code="unknown_purpose",
            rule="C1",
        )
    standing = facts.standing
    unknown = [i for i, pid in enumerate(body.pupil_ids) if pid.int not in standing]
    if unknown:
        raise Unprocessable(
            "Some pupils are not known in this school; nothing was decided.",
            code="unknown_pupil",
            problems=[
                ProblemDetail(
                    code="unknown_pupil",
                    where=f"body.pupil_ids[{i}]",
                    detail=f"No pupil {body.pupil_ids[i]} in this school.",
                )
                for i in unknown[:100]
            ],
        )
    records = facts.records
    parts: list[str] = []
    reasons: list[Reason] = []
    for pid in pupil_ids:
        key = pid.int
        pupil = standing[key]
        verdict = decide(
            rule,
            at=at,
            on_roll=pupil.on_roll,
            restricted=pupil.restricted,
            responsible_guardians=pupil.responsible_guardians,
            records=records.get(key, ()),
        )
        reasons.append(verdict.reason)
        record = "null" if verdict.record_id is None else f'"{verdict.record_id}"'
        parts.append(
            f'{{"pupil_id":"{pid}","allowed":{"true" if verdict.allowed else "false"},'
            f'"reason":"{verdict.reason.value}","record_id":{record}}}'
        )
    # The purpose code is a slug and a UUID or a reason never needs escaping; the instant is
    # written by the same serializer as every other response's.
    head = f'{{"purpose":{json.dumps(rule.code)},"at":{_INSTANT.dump_json(at).decode()}'
    return DecidedBatch(
        f'{head},"decisions":[{",".join(parts)}]}}'.encode(), reasons, facts.roster_version
    )


_INSTANT: TypeAdapter[dt.datetime] = TypeAdapter(dt.datetime)


def receipt(
    session: Session, school_id: str, record: ConsentRecord, *, now: dt.datetime
) -> ConsentReceipt:
    school = require_school(session, school_id)
    pupil = pupils.get_pupil(session, school_id, record.pupil_id)
    purpose = next(p for p in consent_purposes(session, school_id) if p.id == record.purpose_id)
    wording = schools.wording(session, purpose.id, record.wording_version)
    assert pupil is not None
    assert wording is not None
    words, words_sha256 = shown_words(wording, record.wording_language)
    if record.guardian_id is not None:
        guardian = pupils.get_guardian(session, school_id, record.guardian_id)
        assert guardian is not None
        given_by = ReceiptParty(
            id=str(guardian.id), name=f"{guardian.given_name} {guardian.family_name}"
        )
    else:
        given_by = ReceiptParty(id=str(pupil.id), name="the pupil")
    ended = policy.ending(repository.later_records_of_party(session, record))
    basis = (
        "consent, UK GDPR Art. 6(1)(a)"
        if purpose.basis is Basis.opt_in
        else "public task, UK GDPR Art. 6(1)(e), with the right to object"
    )
    return ConsentReceipt(
        receipt_id=record.id,
        issued_at=now,
        controller=ReceiptParty(id=school.id, name=school.name),
        subject=ReceiptParty(id=str(pupil.id), name=f"{pupil.given_name} {pupil.family_name}"),
        given_by=given_by,
        legal_basis=basis,
        purpose=ReceiptPurpose(
            code=purpose.code,
            title=purpose.title,
            wording_version=wording.version,
            wording_language="cy" if record.wording_language == "cy" else "en",
            wording=words,
            wording_sha256=words_sha256,
        ),
        decision=record.decision,
        method=record.method,
        evidence_ref=record.evidence_ref,
        recorded_at=record.recorded_at,
        recorded_by=record.recorded_by,
        valid_from=record.valid_from,
        valid_until=record.valid_until,
        withdrawal=ReceiptWithdrawal(
            how=f"In the parent app, or POST /v1/me/children/{pupil.id}/consents/"
            f"{purpose.code}:withdraw, or tell the school office; it takes effect at once.",
            withdrawn_at=ended.recorded_at if ended else None,
            withdrawal_record_id=ended.id if ended else None,
        ),
    )


def staff_receipt(
    session: Session, principal: Principal, record_id: uuid.UUID, *, now: dt.datetime
) -> ConsentReceipt:
    record = repository.get_record(session, principal.school, record_id)
    if record is None:
        raise NotFound("No such consent record in this school.", code="unknown_record")
    return receipt(session, principal.school, record, now=now)


def renewals(
    session: Session, principal: Principal, within_days: int, *, now: dt.datetime
) -> list[Renewal]:
    """Grants still in force that lapse within ``within_days`` and have not been renewed."""
    rows = repository.grants_ending_between(
        session, principal.school, now, now + dt.timedelta(days=within_days)
    )
    due: list[Renewal] = []
    for record, purpose, guardian in rows:
        later = repository.later_records_of_party(session, record)
        if not policy.renewal_due(repository.view_of(record), later):
            continue  # renewed beyond this grant, refused or withdrawn since
        due.append(
            Renewal(
                pupil_id=record.pupil_id,
                purpose=purpose.code,
                record_id=record.id,
                guardian_id=record.guardian_id,
                guardian_email=guardian.email if guardian else None,
                valid_until=record.valid_until or now,
            )
        )
    return due


def sweep_expired(session: Session, *, now: dt.datetime, limit: int = 500) -> int:
    """Announce grants that lapsed since the last sweep (``consent.changed`` state ``expired``)."""
    lapsed = repository.unnoticed_lapsed_grants(session, now, limit)
    announced = 0
    for record in lapsed:
        purposes = [
            p for p in consent_purposes(session, record.school_id) if p.id == record.purpose_id
        ]
        verdict = evaluate(session, record.school_id, purposes, [record.pupil_id], now)
        current = verdict.get((record.pupil_id, purposes[0].code))
        if current is not None and current.reason is Reason.expired:
            emit_event(
                session,
                record.school_id,
                ConsentChanged(
                    pupil_id=record.pupil_id,
                    purpose=purposes[0].code,
                    allowed=False,
                    state=Reason.expired,
                    record_id=record.id,
                    cause=ChangeCause.expired,
                ),
            )
            announced += 1
        repository.note_expiry(session, record.id, now)
    return announced
