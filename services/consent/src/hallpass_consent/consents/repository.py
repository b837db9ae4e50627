from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    CompoundSelect,
    Connection,
    DateTime,
    Integer,
    String,
    Uuid,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, defer
from sqlalchemy.types import TypeEngine

from hallpass_consent.consents.policy import PurposeRule, RecordView
from hallpass_consent.models import (
    Basis,
    ConsentEvidence,
    ConsentRecord,
    Decision,
    ExpiryNotice,
    GivenBy,
    Guardian,
    GuardianLink,
    Pupil,
    Purpose,
    PurposeWording,
    Restriction,
    School,
)
from hallpass_kit.db import UTCDateTime

# The decision path runs on every publishing check: its statements are built once, with bound
# parameters, so a request pays only for executing them (two round trips, no query building).
_at = bindparam("at", type_=UTCDateTime())
_restricted_then = (
    exists()
    .where(
        Restriction.pupil_id == Pupil.id,
        Restriction.set_at <= _at,
        or_(Restriction.lifted_at.is_(None), Restriction.lifted_at > _at),
    )
    .label("restricted")
)
_STANDING = (
    select(Pupil.id, Pupil.archived_at, _restricted_then, GuardianLink.guardian_id)
    .outerjoin(
        GuardianLink,
        and_(GuardianLink.pupil_id == Pupil.id, GuardianLink.parental_responsibility.is_(True)),
    )
    .where(
        Pupil.school_id == bindparam("school"),
        Pupil.id.in_(bindparam("pupil_ids", expanding=True)),
    )
)
_c = ConsentRecord
_RECORDS = select(
    _c.id,
    _c.pupil_id,
    _c.purpose_id,
    _c.given_by,
    _c.guardian_id,
    _c.decision,
    _c.recorded_at,
    _c.valid_from,
    _c.valid_until,
).where(
    _c.school_id == bindparam("school"),
    _c.purpose_id.in_(bindparam("purpose_ids", expanding=True)),
    _c.pupil_id.in_(bindparam("pupil_ids", expanding=True)),
    _c.recorded_at <= _at,
)


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a pupil stood at an instant: on roll, restricted, and who had responsibility."""

    on_roll: bool
    restricted: bool
    responsible_guardians: frozenset[uuid.UUID]


def standings(
    session: Session, school_id: str, pupil_ids: Collection[uuid.UUID], at: dt.datetime
) -> dict[uuid.UUID, Standing]:
    """Each known pupil of this school as they stood at ``at``.

    Roll and restriction are read as they stood at ``at``, so a question about the past is
    answered from the past: a restriction lifted since still counts for an instant when it was in
    force (C12). Parental responsibility is kept only as it is now.
    """
    rows = session.execute(
        _STANDING, {"school": school_id, "pupil_ids": list(pupil_ids), "at": at}
    ).all()
    guardians: defaultdict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    flags: dict[uuid.UUID, tuple[bool, bool]] = {}
    for pupil_id, archived, restricted, guardian_id in rows:
        flags[pupil_id] = (archived is None or archived > at, bool(restricted))
        if guardian_id is not None:
            guardians[pupil_id].add(guardian_id)
    return {
        pupil_id: Standing(on_roll, restricted, frozenset(guardians.get(pupil_id, ())))
        for pupil_id, (on_roll, restricted) in flags.items()
    }


def record_views(
    session: Session,
    school_id: str,
    purpose_ids: Collection[uuid.UUID],
    pupil_ids: Collection[uuid.UUID],
    at: dt.datetime,
) -> dict[tuple[uuid.UUID, uuid.UUID], list[RecordView]]:
    """(pupil, purpose) → the records made by ``at``."""
    rows = session.execute(
        _RECORDS,
        {
            "school": school_id,
            "purpose_ids": list(purpose_ids),
            "pupil_ids": list(pupil_ids),
            "at": at,
        },
    ).all()
    grouped: defaultdict[tuple[uuid.UUID, uuid.UUID], list[RecordView]] = defaultdict(list)
    for row in rows:
        grouped[(row.pupil_id, row.purpose_id)].append(
            RecordView(
                row.id,
                row.given_by,
                row.guardian_id,
                row.decision,
                row.recorded_at,
                row.valid_from,
                row.valid_until,
            )
        )
    for views in grouped.values():
        if len(views) > 1:
            views.sort(key=_record_order)
    return grouped


_new_uuid = uuid.UUID.__new__
_set_slot = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _uuid_of_hex(value: str) -> uuid.UUID:
    """``uuid.UUID(hex=value)`` for the 32 lower-case hex digits SQLite stores, without the
    constructor's parsing of every spelling a UUID may come in: a 1,000-pupil batch makes some
    3,700 of them, and the constructor was a quarter of the batch's time. The slots are set as
    ``UUID.__init__`` and ``UUID.__setstate__`` set them."""
    made = _new_uuid(uuid.UUID)
    _set_slot(made, "int", int(value, 16))
    _set_slot(made, "is_safe", _UNKNOWN_SAFETY)
    return made


def _record_order(record: RecordView) -> tuple[dt.datetime, bytes]:
    # The rules cite one record of several made at the same instant by different carers (both
    # signatures on one form keyed at once); in this order, every reader cites the same one
    # whatever order the database returned the rows in.
    return record.recorded_at, record.id.bytes


def consent_purposes(session: Session, school_id: str) -> Sequence[Purpose]:
    return (
        session.execute(
            select(Purpose).where(Purpose.school_id == school_id).order_by(Purpose.position)
        )
        .scalars()
        .all()
    )


def get_record(session: Session, school_id: str, record_id: uuid.UUID) -> ConsentRecord | None:
    return session.execute(
        select(ConsentRecord).where(
            ConsentRecord.school_id == school_id, ConsentRecord.id == record_id
        )
    ).scalar_one_or_none()


def history(session: Session, school_id: str, pupil_id: uuid.UUID) -> Sequence[ConsentRecord]:
    return (
        session.execute(
            select(ConsentRecord)
            .where(ConsentRecord.school_id == school_id, ConsentRecord.pupil_id == pupil_id)
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id)
        )
        .scalars()
        .all()
    )


def view_of(record: ConsentRecord) -> RecordView:
    """What the pure rules read of a loaded record."""
    return RecordView(
        record.id,
        record.given_by,
        record.guardian_id,
        record.decision,
        record.recorded_at,
        record.valid_from,
        record.valid_until,
    )


def later_records_of_party(session: Session, record: ConsentRecord) -> list[RecordView]:
    """What the same party (the same carer, or the pupil) said about the same purpose after
    ``record``, oldest first."""
    c = ConsentRecord
    party = (
        c.guardian_id == record.guardian_id
        if record.guardian_id is not None
        else c.guardian_id.is_(None)
    )
    rows = session.execute(
        select(
            c.id, c.given_by, c.guardian_id, c.decision, c.recorded_at, c.valid_from, c.valid_until
        )
        .where(
            c.school_id == record.school_id,
            c.pupil_id == record.pupil_id,
            c.purpose_id == record.purpose_id,
            c.given_by == record.given_by,
            party,
            c.recorded_at > record.recorded_at,
        )
        .order_by(c.recorded_at)
    ).all()
    return [RecordView(*row) for row in rows]


def grants_ending_between(
    session: Session, school_id: str | None, start: dt.datetime, end: dt.datetime
) -> Sequence[tuple[ConsentRecord, Purpose, Guardian | None]]:
    c = ConsentRecord
    query = (
        select(c, Purpose, Guardian)
        .join(Purpose, Purpose.id == c.purpose_id)
        .join(Pupil, Pupil.id == c.pupil_id)
        .outerjoin(Guardian, Guardian.id == c.guardian_id)
        .where(
            c.decision == "granted",
            c.valid_until > start,
            c.valid_until <= end,
            Pupil.archived_at.is_(None),  # leavers are not asked again
        )
        .order_by(c.valid_until)
    )
    if school_id is not None:
        query = query.where(c.school_id == school_id)
    return [(r, p, g) for r, p, g in session.execute(query).all()]


def unnoticed_lapsed_grants(
    session: Session, now: dt.datetime, limit: int
) -> Sequence[ConsentRecord]:
    c = ConsentRecord
    return (
        session.execute(
            select(c)
            .outerjoin(ExpiryNotice, ExpiryNotice.record_id == c.id)
            .where(c.decision == "granted", c.valid_until <= now, ExpiryNotice.record_id.is_(None))
            .order_by(c.valid_until)
            .limit(limit)
        )
        .scalars()
        .all()
    )


def add_record(session: Session, record: ConsentRecord) -> ConsentRecord:
    """Append a record (records are never changed afterwards, C10); flushed, so it has its id."""
    session.add(record)
    session.flush()
    return record


def note_expiry(session: Session, record_id: uuid.UUID, noticed_at: dt.datetime) -> None:
    """Remember that a lapsed grant has been looked at, so the sweep never announces it twice."""
    session.add(ExpiryNotice(record_id=record_id, noticed_at=noticed_at))
    session.flush()


def wordings_of(
    session: Session, keys: Collection[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], PurposeWording]:
    """(purpose id, version) → the words of that version, for the versions asked about."""
    if not keys:
        return {}
    rows = (
        session.execute(
            select(PurposeWording).where(
                PurposeWording.purpose_id.in_({purpose_id for purpose_id, _ in keys}),
                PurposeWording.version.in_({version for _, version in keys}),
            )
        )
        .scalars()
        .all()
    )
    return {(w.purpose_id, w.version): w for w in rows}


def scan_counts(
    session: Session, school_id: str, record_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not record_ids:
        return {}
    rows = session.execute(
        select(ConsentEvidence.record_id, func.count())
        .where(
            ConsentEvidence.school_id == school_id,
            ConsentEvidence.record_id.in_(list(record_ids)),
        )
        .group_by(ConsentEvidence.record_id)
    ).all()
    counts: dict[uuid.UUID, int] = {}
    for record_id, count in rows:
        counts[record_id] = count
    return counts


def add_scan(session: Session, scan: ConsentEvidence) -> ConsentEvidence:
    """Store a scan with its record; flushed, so it has its id."""
    session.add(scan)
    session.flush()
    return scan


def scans_of_record(
    session: Session, school_id: str, record_id: uuid.UUID
) -> Sequence[ConsentEvidence]:
    """The scans of one record, oldest first (pages sent together by name), without loading
    their content."""
    return (
        session.execute(
            select(ConsentEvidence)
            .options(defer(ConsentEvidence.content))
            .where(ConsentEvidence.school_id == school_id, ConsentEvidence.record_id == record_id)
            .order_by(ConsentEvidence.uploaded_at, ConsentEvidence.file_name, ConsentEvidence.id)
        )
        .scalars()
        .all()
    )


def get_scan(session: Session, school_id: str, scan_id: uuid.UUID) -> ConsentEvidence | None:
    return session.execute(
        select(ConsentEvidence).where(
            ConsentEvidence.school_id == school_id, ConsentEvidence.id == scan_id
        )
    ).scalar_one_or_none()


# --- the decisions endpoint: one statement --------------------------------------------------
#
# A decision batch asks about one purpose. Everything it needs comes back from one statement of
# three parts glued with UNION ALL, each row tagged with its part: the purpose (its basis and
# flags, and the school's roster version), each asked pupil as they stood at ``at`` (one row per
# carer with parental responsibility), and the pupils' records for the purpose made by ``at``.
# Plain columns, no ORM entities. The asked pupils come as one parameter (an array's text on
# PostgreSQL, a JSON array on SQLite, of the ids' hex digits), so the statement's text, and the
# server's prepared plan, is the same whatever the batch's size.
#
# Each asked pupil is found by index lookups on their own id (the pupil by its key, their carers
# by ``guardian_link``'s key, their records by every column of ``ix_consent_record_lookup``:
# school, purpose, pupil, instant), so a batch reads the rows it answers from and no others,
# however many pupils, records or schools the database holds. On PostgreSQL that is spelt out: a
# ``LATERAL`` subquery per asked pupil with ``OFFSET 0``, which the planner may not flatten into
# a join. Without it, once ``school_id`` was selective (a database of many schools) the planner
# read the school's every record for the purpose, and every pupil, and filtered the few asked
# for: twice the work in a database of 50 schools, growing with the school's size
# (docs/benchmarks.md, "Scale: reading the numbers").

_PURPOSE_ROW, _PUPIL_ROW, _RECORD_ROW = 0, 1, 2
_FENCE = literal_column("0", Integer())  # OFFSET 0: keep the subquery a per-pupil lookup


def _facts_statement(dialect: str) -> CompoundSelect[Any]:
    native = dialect == "postgresql"
    # What the rows carry: PostgreSQL's driver makes UUIDs and aware datetimes in C; SQLite's
    # text is handed back as it is and parsed in decision_facts (faster than per-value type
    # processing, which was a third of a 1,000-pupil batch's time). SQLite's instants are naive
    # UTC: the zone is written on in SQL, so ``datetime.fromisoformat`` alone reads them aware.
    as_uuid: TypeEngine[Any] = Uuid() if native else String()
    as_time: TypeEngine[Any] = DateTime(timezone=True) if native else String()
    utc = literal_column("'+00:00'", String())

    def uid(column: Any) -> Any:
        return type_coerce(column, as_uuid)

    def time(column: Any) -> Any:
        return type_coerce(column, as_time) if native else type_coerce(column, String()) + utc

    no_uuid = uid(cast(null(), Uuid()))
    no_text = cast(null(), String())
    no_time = time(cast(null(), UTCDateTime()))
    no_flag = cast(null(), Boolean())
    school = bindparam("school", type_=String())
    code = bindparam("purpose", type_=String())
    asked_purpose = (
        select(
            Purpose.id,
            Purpose.basis,
            Purpose.requires_consent,
            Purpose.needs_pupil_agreement,
            School.roster_version,
        )
        .where(Purpose.school_id == school, Purpose.code == code, School.id == Purpose.school_id)
        .cte("asked_purpose")
    )
    if native:
        asked = (
            # The array comes as its text ('{hex,hex,…}', cast by the server): the driver's
            # dumping of a list, element by element in Python, was a tenth of a 1,000-pupil
            # batch's time.
            select(
                func.unnest(
                    cast(bindparam("pupil_ids", type_=String()), postgresql.ARRAY(Uuid()))
                ).label("id")
            )
            .distinct()
            .cte("asked")
        )
    else:
        # SQLite's ids are 32 hex digits; json_each reads the array in C.
        asked = (
            select(literal_column("value", String()).label("id"))
            .select_from(func.json_each(bindparam("pupil_ids", type_=String())))
            .distinct()
            .cte("asked")
        )
    purpose = select(
        literal_column(str(_PURPOSE_ROW), Integer()).label("part"),
        no_uuid.label("pupil_id"),
        uid(asked_purpose.c.id).label("id"),
        no_uuid.label("party"),
        type_coerce(asked_purpose.c.basis, String()).label("word"),
        # The school's roster version, read in the same snapshot as the facts, so the answer
        # can name the roster it was decided against (the purpose row's spare text column).
        cast(asked_purpose.c.roster_version, String()).label("decision"),
        no_time.label("recorded_at"),
        no_time.label("valid_from"),
        no_time.label("valid_until"),
        asked_purpose.c.requires_consent.label("flag"),
        asked_purpose.c.needs_pupil_agreement.label("pupil_agreement"),
    )
    on_roll = select(Pupil.id, Pupil.archived_at, _restricted_then).where(
        Pupil.id == asked.c.id, Pupil.school_id == school
    )
    made = select(
        _c.pupil_id,
        _c.id,
        _c.guardian_id,
        _c.given_by,
        _c.decision,
        _c.recorded_at,
        _c.valid_from,
        _c.valid_until,
    ).where(
        # PostgreSQL: per asked pupil (the LATERAL below); SQLite: as an IN list on the
        # index's pupil column, which its planner probes pupil by pupil (as a join it scanned
        # the school's records and probed the asked pupils instead).
        _c.pupil_id == asked.c.id if native else _c.pupil_id.in_(select(asked.c.id)),
        _c.purpose_id
        == (asked_purpose.c.id if native else select(asked_purpose.c.id).scalar_subquery()),
        _c.school_id == school,
        _c.recorded_at <= _at,
    )
    responsible = GuardianLink.parental_responsibility.is_(True)
    pupil: Any
    carer: Any
    record: Any
    if native:
        pupil = on_roll.offset(_FENCE).lateral("pupil")
        carer = (
            select(GuardianLink.guardian_id)
            .where(GuardianLink.pupil_id == pupil.c.id, responsible)
            .offset(_FENCE)
            .lateral("carer")
        )
        record = made.offset(_FENCE).lateral("made")
        pupils_from: Any = asked.join(pupil, literal_column("true")).outerjoin(
            carer, literal_column("true")
        )
        records_from: Any = asked_purpose.join(asked, literal_column("true")).join(
            record, literal_column("true")
        )
    else:
        pupil = on_roll.subquery("pupil")
        carer = (
            select(GuardianLink.pupil_id, GuardianLink.guardian_id)
            .where(responsible)
            .subquery("carer")
        )
        record = made.subquery("made")
        pupils_from = pupil.outerjoin(carer, carer.c.pupil_id == pupil.c.id)
        records_from = record
    p, r = pupil.c, record.c
    pupils = select(
        literal_column(str(_PUPIL_ROW), Integer()),
        uid(p.id),
        no_uuid,
        uid(carer.c.guardian_id),
        no_text,
        no_text,
        time(p.archived_at),
        no_time,
        no_time,
        p.restricted,
        no_flag,
    ).select_from(pupils_from)
    records = select(
        literal_column(str(_RECORD_ROW), Integer()),
        uid(r.pupil_id),
        uid(r.id),
        uid(r.guardian_id),
        type_coerce(r.given_by, String()),
        type_coerce(r.decision, String()),
        time(r.recorded_at),
        time(r.valid_from),
        time(r.valid_until),
        no_flag,
        no_flag,
    ).select_from(records_from)
    return union_all(purpose, pupils, records)


_FACTS = {dialect: _facts_statement(dialect) for dialect in ("postgresql", "sqlite")}
_GIVEN_BY = {member.value: member for member in GivenBy}
_DECISION = {member.value: member for member in Decision}


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What one decision batch reads: the purpose's rule (None: no such purpose in the school),
    each known pupil's standing, and their records for the purpose.

    Keyed by the pupil's ``UUID.int``: a thousand-pupil batch looks pupils up some ten thousand
    times, and an int hashes in C where a ``UUID`` calls Python code every time.
    """

    rule: PurposeRule | None
    standing: dict[int, Standing]
    records: dict[int, list[RecordView]]
    # The school's roster version as this batch read it (the roster's ETag is built from it);
    # 0 when there is no such purpose, and so no purpose row to carry it.
    roster_version: int = 0


def decision_facts(
    connection: Connection,
    school_id: str,
    purpose_code: str,
    pupil_ids: Sequence[uuid.UUID],
    at: dt.datetime,
) -> DecisionFacts:
    """The purpose, the pupils as they stood at ``at`` and their records, in one statement.

    The same reading as ``standings`` and ``record_views`` (roll and restriction as at ``at``,
    parental responsibility as now), so the verdicts are those ``evaluate`` gives.
    """
    native = connection.dialect.name == "postgresql"
    asked = (
        "{" + ",".join([pupil.hex for pupil in pupil_ids]) + "}"
        if native
        else "[" + ",".join([f'"{pupil.hex}"' for pupil in pupil_ids]) + "]"
    )
    rows = connection.execute(
        _FACTS["postgresql" if native else "sqlite"],
        {"school": school_id, "purpose": purpose_code, "pupil_ids": asked, "at": at},
    ).all()
    rule: PurposeRule | None = None
    roster_version = 0
    flags: dict[int, tuple[bool, bool]] = {}
    guardians: defaultdict[int, set[uuid.UUID]] = defaultdict(set)
    records: defaultdict[int, list[RecordView]] = defaultdict(list)
    given_by, decision = _GIVEN_BY, _DECISION
    # Two copies of one loop, so that PostgreSQL's values (UUIDs and aware datetimes already)
    # go through no conversion call at all; SQLite's text is a UUID as 32 hex digits and an
    # instant in ISO format with its zone.
    if native:
        for part, pupil, row_id, party, word, said, t1, t2, t3, flag, agreement in rows:
            if part == _RECORD_ROW:
                records[pupil.int].append(
                    RecordView(row_id, given_by[word], party, decision[said], t1, t2, t3)
                )
            elif part == _PUPIL_ROW:
                key = pupil.int
                flags[key] = (t1 is None or t1 > at, bool(flag))
                if party is not None:
                    guardians[key].add(party)
            else:
                rule = PurposeRule(purpose_code, Basis(word), bool(flag), bool(agreement))
                roster_version = int(said)
    else:
        id_of, time_of = _uuid_of_hex, dt.datetime.fromisoformat
        # A carer comes back in every row of theirs (their pupils' standing and records): one
        # UUID each, so the rules' set lookups also match them by identity, not by __eq__.
        carers: dict[str, uuid.UUID] = {}
        carer_of = carers.get
        for part, pupil, row_id, party, word, said, t1, t2, t3, flag, agreement in rows:
            if part == _RECORD_ROW:
                if party is not None:
                    party = carer_of(party) or carers.setdefault(party, id_of(party))
                records[int(pupil, 16)].append(
                    RecordView(
                        id_of(row_id),
                        given_by[word],
                        party,
                        decision[said],
                        time_of(t1),
                        time_of(t2),
                        None if t3 is None else time_of(t3),
                    )
                )
            elif part == _PUPIL_ROW:
                key = int(pupil, 16)
                flags[key] = (t1 is None or time_of(t1) > at, bool(flag))
                if party is not None:
                    guardians[key].add(carer_of(party) or carers.setdefault(party, id_of(party)))
            else:
                rule = PurposeRule(purpose_code, Basis(word), bool(flag), bool(agreement))
                roster_version = int(said)
    standing = {
        key: Standing(on_roll, restricted, frozenset(guardians.get(key, ())))
        for key, (on_roll, restricted) in flags.items()
    }
    for views in records.values():
        if len(views) > 1:
            views.sort(key=_record_order)
    return DecisionFacts(rule, standing, records, roster_version)
