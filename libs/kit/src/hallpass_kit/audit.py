"""The append-only, hash-chained audit log each service keeps in its own database.

Each entry's hash covers its content and the previous entry's hash, so editing, deleting or
re-ordering any entry breaks every hash after it; ``verify`` finds the first broken entry. The
migrations also install triggers that refuse UPDATE and DELETE on the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.db import utcnow

GENESIS_HASH = "0" * 64
# Any constant works: it names the one lock all appenders queue on.
_PG_AUDIT_LOCK = 0x4A11_9A55


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


@dataclass(frozen=True)
class ChainVerdict:
    intact: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None


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


class AuditChain:
    def __init__(self, table: Table) -> None:
        self.table = table

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
        if session.get_bind().dialect.name == "postgresql":
            # Serialises appenders until commit; under READ COMMITTED the next statement then
            # sees the previous appender's committed head.
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})
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
            )
        )
        return seq

    def verify(self, session: Session, *, batch_size: int = 5000) -> ChainVerdict:
        """Recompute every hash from the first entry; name the first entry that does not fit."""
        t = self.table
        expected_prev = GENESIS_HASH
        expected_seq = 1
        count = 0
        last_seq = 0
        while True:
            rows = session.execute(
                select(t).where(t.c.seq > last_seq).order_by(t.c.seq).limit(batch_size)
            ).all()
            if not rows:
                return ChainVerdict(intact=True, entries=count)
            for row in rows:
                if row.seq != expected_seq:
                    return ChainVerdict(
                        False, count, expected_seq, f"entry {expected_seq} is missing"
                    )
                if row.prev_hash != expected_prev:
                    return ChainVerdict(
                        False, count, row.seq, "does not follow the entry before it"
                    )
                digest = entry_hash(
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
                if digest != row.hash:
                    return ChainVerdict(False, count, row.seq, "content differs from its hash")
                expected_prev = row.hash
                expected_seq += 1
                count += 1
                last_seq = row.seq

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
        query = select(t).where(t.c.school == school)
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
