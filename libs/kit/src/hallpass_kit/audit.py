"""The append-only, hash-chained audit log each service keeps in its own database.

Each entry's hash covers its content and the previous entry's hash, so editing, deleting or
re-ordering any entry breaks every hash after it; ``verify`` finds the first broken entry. The
migrations also install triggers that refuse UPDATE and DELETE on the table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, Row, Table, func, insert, select, text
from sqlalchemy.engine.base import OptionEngine
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.checkpoints import (
    AuditNotary,
    Checkpoint,
    CheckpointInvalid,
    notary_from_settings,
)
from hallpass_kit.db import Database, utcnow
from hallpass_kit.outbox import Dispatcher
from hallpass_kit.settings import CommonSettings

logger = logging.getLogger("hallpass.audit")

GENESIS_HASH = "0" * 64
# Any constant works: it names the one lock all appenders queue on.
_PG_AUDIT_LOCK = 0x4A11_9A55
# The entry a service appends when it has stored a checkpoint (school-less: no school sees it).
CHECKPOINT_ACTION = "audit.checkpointed"


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    recorded_at: dt.datetime
    actor: str
    school: str | None
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class Finding(StrEnum):
    """What ``verify`` found, in words an auditor can act on."""

    missing = "missing"  # a gap: an entry removed from the middle or the start
    out_of_order = "out_of_order"  # an entry that does not follow the one before it
    edited = "edited"  # content that no longer matches its own hash
    forged = "forged"  # an entry the service did not write
    truncated = "truncated"  # the chain is gone though checkpoints vouch for entries
    rows_missing_after_checkpoint = "rows_missing_after_checkpoint"
    checkpoint_signature_invalid = "checkpoint_signature_invalid"
    checkpoint_missing = "checkpoint_missing"


@dataclass(frozen=True)
class ChainVerdict:
    intact: bool
    # Entries checked before the verdict, counting only ``school``'s when one was asked about.
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    finding: Finding | None = None
    checkpoints: int = 0
    latest_checkpoint_seq: int | None = None
    # Entries (of ``school``) without the service's seal that a checkpoint vouches for.
    unsealed: int = 0


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    *,
    seq: int,
    recorded_at: dt.datetime,
    actor: str,
    school: str | None,
    action: str,
    target: str | None,
    outcome: str,
    details: str,
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "recorded_at": recorded_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "school": school,
            "action": action,
            "target": target,
            "outcome": outcome,
            "details": details,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _row_hash(row: Row[Any]) -> str:
    return entry_hash(
        seq=row.seq,
        recorded_at=row.recorded_at,
        actor=row.actor,
        school=row.school,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        details=row.details,
        prev_hash=row.prev_hash,
    )


@dataclass(frozen=True)
class _CheckpointRecord:
    seq: int
    details: dict[str, Any]
    recorded_at: dt.datetime


def _due(notary: AuditNotary, last: _CheckpointRecord | None, since: int, now: dt.datetime) -> bool:
    if since <= 0:
        return False
    if last is None or since >= notary.every_entries:
        return True
    return now - last.recorded_at >= notary.every


def _load_checkpoints(notary: AuditNotary) -> tuple[list[Checkpoint], tuple[Finding, str] | None]:
    """The stored series, checked: numbered from 1 without gaps, each signed by the service."""
    found: list[Checkpoint] = []
    expected = 1
    for number in notary.store.numbers():
        if number != expected:
            return found, (Finding.checkpoint_missing, f"checkpoint {expected} missing")
        try:
            checkpoint = notary.read(number)
        except CheckpointInvalid as exc:
            return found, (Finding.checkpoint_signature_invalid, str(exc))
        if checkpoint is None:
            return found, (Finding.checkpoint_missing, f"checkpoint {number} missing")
        found.append(checkpoint)
        expected += 1
    return found, None


class AuditChain:
    def __init__(self, table: Table) -> None:
        self.table = table
        # Each database the chain writes to has its own notary (key and checkpoint store), bound
        # when the service that owns that database is built.
        self._notaries: weakref.WeakKeyDictionary[Engine, AuditNotary] = weakref.WeakKeyDictionary()

    def bind(self, database: Database, notary: AuditNotary) -> None:
        """Seal entries written to ``database`` and checkpoint them with ``notary``."""
        self._notaries[database.engine] = notary

    def notary_for(self, session: Session) -> AuditNotary | None:
        bind = session.get_bind()
        engine = bind if isinstance(bind, Engine) else bind.engine
        # A session made with execution options is bound to an OptionEngine over the same one.
        while isinstance(engine, OptionEngine):
            engine = engine._proxied
        return self._notaries.get(engine)

    def record(
        self,
        session: Session,
        principal: Principal,
        action: str,
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
        outcome: str = "ok",
    ) -> int:
        """Append what ``principal`` did, in the caller's transaction."""
        return self.append(
            session,
            actor=principal.actor,
            school=principal.school,
            action=action,
            target=target,
            details=details,
            outcome=outcome,
        )

    def append(
        self,
        session: Session,
        *,
        actor: str,
        school: str | None,
        action: str,
        outcome: str = "ok",
        target: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one entry in the caller's transaction; it lands or vanishes with the change."""
        t = self.table
        self._lock(session)
        head = session.execute(select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
        recorded_at = utcnow()
        details_text = canonical_json(dict(details or {}))
        digest = entry_hash(
            seq=seq,
            recorded_at=recorded_at,
            actor=actor,
            school=school,
            action=action,
            target=target,
            outcome=outcome,
            details=details_text,
            prev_hash=prev_hash,
        )
        notary = self.notary_for(session)
        session.execute(
            insert(t).values(
                seq=seq,
                recorded_at=recorded_at,
                actor=actor,
                school=school,
                action=action,
                target=target,
                outcome=outcome,
                details=details_text,
                prev_hash=prev_hash,
                hash=digest,
                seal=notary.key.seal(digest) if notary else None,
            )
        )
        return seq

    @staticmethod
    def _lock(session: Session) -> None:
        if session.get_bind().dialect.name == "postgresql":
            # Serialises appenders until commit; under READ COMMITTED the next statement then
            # sees the previous appender's committed head. (SQLite sessions begin IMMEDIATE.)
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})

    # --- checkpoints ---------------------------------------------------------------------------

    def checkpoint(
        self, database: Database, *, force: bool = False, now: dt.datetime | None = None
    ) -> Checkpoint | None:
        """Sign the chain's head and store it outside the database, when one is due.

        Due when ``every_entries`` entries arrived since the last checkpoint, or any arrived and
        ``every`` has passed. The segment since the last checkpoint is checked first: a broken
        chain is never signed, so a checkpoint cannot vouch for an edit.
        """
        moment = now or utcnow()
        with database.session() as session:
            notary = self.notary_for(session)
            if notary is None:
                return None
            self._lock(session)
            t = self.table
            head = session.execute(
                select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)
            ).first()
            if head is None:
                return None
            last = self._last_checkpoint_record(session)
            since = head.seq - (last.seq if last else 0)
            if not force and not _due(notary, last, since, moment):
                return None
            if last is not None and since == 0:
                return None
            covered_from = last.details["seq"] if last else 0
            unsealed = self._check_segment(session, notary, covered_from, head.seq)
            if unsealed is None:
                logger.error("audit chain broken after seq %s: no checkpoint signed", covered_from)
                return None
            stored = notary.store.numbers()
            number = max([last.details["number"] if last else 0, *stored]) + 1
            checkpoint = Checkpoint(
                service=notary.service,
                number=number,
                seq=head.seq,
                hash=head.hash,
                made_at=moment,
                unsealed=unsealed,
                token="",
            )
            token = notary.key.sign(checkpoint.payload())
            notary.store.put(number, token)
            # The chain itself records the checkpoint, so a checkpoint later removed from the
            # store is missed by verify even when it was the latest.
            self.append(
                session,
                actor=f"service:{notary.service}",
                school=None,
                action=CHECKPOINT_ACTION,
                details={"number": number, "seq": head.seq, "hash": head.hash},
            )
            return dataclasses.replace(checkpoint, token=token)

    def _last_checkpoint_record(self, session: Session) -> _CheckpointRecord | None:
        t = self.table
        row = session.execute(
            select(t.c.seq, t.c.details, t.c.recorded_at)
            .where(t.c.action == CHECKPOINT_ACTION, t.c.school.is_(None))
            .order_by(t.c.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return _CheckpointRecord(row.seq, json.loads(row.details), row.recorded_at)

    def _check_segment(
        self, session: Session, notary: AuditNotary, after_seq: int, up_to: int
    ) -> int | None:
        """Unsealed entries in (after_seq, up_to], or None when the segment is broken."""
        t = self.table
        unsealed = 0
        previous = None
        if after_seq > 0:
            previous = session.execute(select(t.c.hash).where(t.c.seq == after_seq)).scalar()
            if previous is None:
                return None
        expected_prev, expected_seq = previous or GENESIS_HASH, after_seq + 1
        for row in self._rows(session, after_seq, up_to):
            if row.seq != expected_seq or row.prev_hash != expected_prev:
                return None
            if _row_hash(row) != row.hash:
                return None
            if row.seal is not None and not notary.key.seal_fits(row.hash, row.seal):
                return None
            unsealed += row.seal is None
            expected_prev, expected_seq = row.hash, row.seq + 1
        return unsealed if expected_seq == up_to + 1 else None

    def _rows(
        self, session: Session, after_seq: int, up_to: int | None = None, batch_size: int = 5000
    ) -> Iterator[Row[Any]]:
        t = self.table
        last = after_seq
        while True:
            query = select(t).where(t.c.seq > last)
            if up_to is not None:
                query = query.where(t.c.seq <= up_to)
            rows = session.execute(query.order_by(t.c.seq).limit(batch_size)).all()
            yield from rows
            if len(rows) < batch_size:
                return
            last = rows[-1].seq

    def checkpoints(self, session: Session) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first; raises CheckpointInvalid on a bad one."""
        notary = self.notary_for(session)
        if notary is None:
            return []
        return _load_checkpoints(notary)[0]

    # --- verification --------------------------------------------------------------------------

    def verify(
        self, session: Session, *, school: str | None = None, batch_size: int = 5000
    ) -> ChainVerdict:
        """Recompute the chain from seq 1 and hold it against every checkpoint.

        Names the first entry that does not fit, or the checkpoint that does not. ``entries``
        counts only ``school``'s entries when a school is given.
        """
        return _Verification(self, session, school, batch_size).run()

    def page(
        self,
        session: Session,
        *,
        school: str,
        after_seq: int | None,
        limit: int,
        action: str | None = None,
        target: str | None = None,
    ) -> Sequence[AuditRecord]:
        """Newest first, one school only."""
        t = self.table
        # seq below 1 is outside the chain (the database refuses it; a row put there by hand is
        # reported by verify, never shown as part of the trail).
        query = select(t).where(t.c.school == school, t.c.seq >= 1)
        if after_seq is not None:
            query = query.where(t.c.seq < after_seq)
        if action is not None:
            query = query.where(t.c.action == action)
        if target is not None:
            query = query.where(t.c.target == target)
        rows = session.execute(query.order_by(t.c.seq.desc()).limit(limit)).all()
        return [
            AuditRecord(
                seq=r.seq,
                recorded_at=r.recorded_at,
                actor=r.actor,
                school=r.school,
                action=r.action,
                target=r.target,
                outcome=r.outcome,
                details=json.loads(r.details),
                prev_hash=r.prev_hash,
                hash=r.hash,
            )
            for r in rows
        ]

    def count(self, session: Session) -> int:
        return int(session.execute(select(func.count()).select_from(self.table)).scalar_one())


def keep_checkpoints(
    chain: AuditChain,
    database: Database,
    dispatcher: Dispatcher,
    common: CommonSettings,
    service: str,
) -> AuditNotary:
    """Seal ``service``'s entries and checkpoint its chain from the dispatcher's thread."""
    notary = notary_from_settings(common, service)
    chain.bind(database, notary)

    def checkpoint() -> None:
        made = chain.checkpoint(database)
        if made is not None:
            logger.info("audit checkpoint %s signed at seq %s", made.number, made.seq)

    # Looked at often (two cheap queries) so that "every N entries" is kept closely; the first
    # look is at start-up, which vouches for entries tools wrote while the service was down.
    dispatcher.every(
        min(notary.every, dt.timedelta(seconds=30)), f"{service}-audit-checkpoint", checkpoint
    )
    return notary


def append_only_triggers(dialect: str, table: str = "audit_entry") -> list[str]:
    """DDL that makes the database itself refuse edits to the audit table (used by migrations)."""
    if dialect == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql""",
            f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_append_only()""",
        ]
    if dialect == "sqlite":
        return [
            f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
            f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
        ]
    return []


def contiguous_triggers(dialect: str, table: str = "audit_entry") -> list[str]:
    """DDL that makes the database refuse any entry but the next one: seq is the last seq + 1
    (1 for the first) and prev_hash is the last entry's hash. TRUNCATE fires no row trigger."""
    if dialect == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION {table}_contiguous() RETURNS trigger AS $$
            DECLARE head record;
            BEGIN
                SELECT seq, hash INTO head FROM {table} ORDER BY seq DESC LIMIT 1;
                IF NOT FOUND THEN
                    IF NEW.seq <> 1 OR NEW.prev_hash <> '{GENESIS_HASH}' THEN
                        RAISE EXCEPTION USING MESSAGE = '{table} starts at seq 1, not ' || NEW.seq;
                    END IF;
                ELSIF NEW.seq <> head.seq + 1 OR NEW.prev_hash <> head.hash THEN
                    RAISE EXCEPTION USING MESSAGE =
                        '{table} entries must follow the last one: seq ' || (head.seq + 1)
                        || ' after ' || head.seq || ', not ' || NEW.seq;
                END IF;
                RETURN NEW;
            END; $$ LANGUAGE plpgsql""",  # noqa: S608 - names are our constants
            f"""CREATE TRIGGER {table}_contiguous BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_contiguous()""",
        ]
    if dialect == "sqlite":
        return [
            f"""CREATE TRIGGER {table}_contiguous BEFORE INSERT ON {table}
            WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM {table})
              OR NEW.prev_hash IS NOT coalesce(
                  (SELECT hash FROM {table} ORDER BY seq DESC LIMIT 1), '{GENESIS_HASH}')
            BEGIN SELECT RAISE(ABORT, '{table} entries must follow the last one'); END""",  # noqa: S608
        ]
    return []


def drop_contiguous_triggers(dialect: str, table: str = "audit_entry") -> list[str]:
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {table}_contiguous ON {table}",
            f"DROP FUNCTION IF EXISTS {table}_contiguous()",
        ]
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_contiguous"]
    return []


class _Verification:
    """One pass over the chain, batch by batch, against the stored checkpoints."""

    def __init__(self, chain: AuditChain, session: Session, school: str | None, batch: int) -> None:
        self.chain = chain
        self.session = session
        self.school = school
        self.batch = batch
        self.entries = 0
        self.unsealed = 0
        self.checkpoints: list[Checkpoint] = []

    def _verdict(
        self, first_bad_seq: int | None = None, finding: Finding | None = None, reason: str = ""
    ) -> ChainVerdict:
        return ChainVerdict(
            intact=finding is None,
            entries=self.entries,
            first_bad_seq=first_bad_seq,
            reason=reason or None,
            finding=finding,
            checkpoints=len(self.checkpoints),
            latest_checkpoint_seq=self.checkpoints[-1].seq if self.checkpoints else None,
            unsealed=self.unsealed,
        )

    def _counts(self, row: Row[Any]) -> bool:
        return self.school is None or row.school == self.school

    def run(self) -> ChainVerdict:
        t = self.chain.table
        notary = self.chain.notary_for(self.session)
        if notary is not None:
            self.checkpoints, problem = _load_checkpoints(notary)
            if problem is not None:
                return self._verdict(None, *problem)
        stray = self.session.execute(
            select(t.c.seq).where(t.c.seq < 1).order_by(t.c.seq).limit(1)
        ).scalar()
        if stray is not None:
            return self._verdict(
                stray, Finding.forged, f"a forged entry: seq {stray} is outside the chain (from 1)"
            )
        by_seq = {c.seq: c for c in self.checkpoints}
        numbers = {c.number for c in self.checkpoints}
        latest = self.checkpoints[-1] if self.checkpoints else None
        expected_seq, expected_prev = 1, GENESIS_HASH
        for row in self.chain._rows(self.session, 0, batch_size=self.batch):
            if row.seq != expected_seq:
                return self._verdict(
                    expected_seq, Finding.missing, f"entry {expected_seq} is missing"
                )
            if row.prev_hash != expected_prev:
                return self._verdict(
                    row.seq, Finding.out_of_order, "does not follow the entry before it"
                )
            if _row_hash(row) != row.hash:
                return self._verdict(row.seq, Finding.edited, "content differs from its hash")
            if notary is not None:
                problem = self._seal_and_record(notary, row, latest, numbers)
                if problem is not None:
                    return self._verdict(row.seq, *problem)
            checkpoint = by_seq.get(row.seq)
            if checkpoint is not None and checkpoint.hash != row.hash:
                return self._verdict(
                    row.seq,
                    Finding.forged,
                    f"a forged entry: the chain at seq {row.seq} is not what checkpoint "
                    f"{checkpoint.number} signed (entries up to it were rewritten)",
                )
            self.entries += self._counts(row)
            expected_seq, expected_prev = row.seq + 1, row.hash
        head = expected_seq - 1
        if latest is not None and head < latest.seq:
            if head == 0:
                return self._verdict(
                    1,
                    Finding.truncated,
                    f"truncated: the audit table is empty, but checkpoint {latest.number} "
                    f"vouches for entries up to seq {latest.seq}",
                )
            kept = [c for c in self.checkpoints if c.seq <= head]
            after = f" after checkpoint {kept[-1].number}" if kept else ""
            return self._verdict(
                head + 1,
                Finding.rows_missing_after_checkpoint,
                f"rows missing{after}: the chain ends at seq {head}, but checkpoint "
                f"{latest.number} vouches for entries up to seq {latest.seq}",
            )
        return self._verdict()

    def _seal_and_record(
        self,
        notary: AuditNotary,
        row: Row[Any],
        latest: Checkpoint | None,
        numbers: set[int],
    ) -> tuple[Finding, str] | None:
        if row.seal is None:
            if latest is None or row.seq > latest.seq:
                return (
                    Finding.forged,
                    f"a forged entry: entry {row.seq} carries no service seal and no checkpoint "
                    "vouches for it",
                )
            self.unsealed += self._counts(row)
        elif not notary.key.seal_fits(row.hash, row.seal):
            return (
                Finding.forged,
                f"a forged entry: entry {row.seq} carries a seal not the service's",
            )
        if row.action == CHECKPOINT_ACTION and row.school is None:
            number = json.loads(row.details).get("number")
            if number not in numbers:
                return (
                    Finding.checkpoint_missing,
                    f"checkpoint {number} missing: entry {row.seq} records that it was stored",
                )
        return None
