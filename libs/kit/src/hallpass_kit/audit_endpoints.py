"""GET /v1/audit and /v1/audit:verify, the same in every service."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.audit import AuditChain
from hallpass_kit.auth import Principal, Role
from hallpass_kit.errors import problem_responses
from hallpass_kit.pagination import Page, decode_cursor, encode_cursor


class AuditEntryView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    recorded_at: dt.datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    hash: str


class ChainReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intact: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None


def audit_router(chain: AuditChain, roles: tuple[Role, ...] = (Role.head, Role.dsl)) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["audit"], responses=problem_responses(400, 403))

    @router.get("/audit")
    def list_audit(
        session: SessionDep,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        action: Annotated[str | None, Query(max_length=100)] = None,
        target: Annotated[str | None, Query(max_length=200)] = None,
        principal: Principal = require_roles(*roles),
    ) -> Page[AuditEntryView]:
        """This school's audit trail, newest first."""
        after = None
        if cursor is not None:
            (raw,) = decode_cursor(cursor, 1)
            after = raw if isinstance(raw, int) else None
        entries = chain.page(
            session,
            school=principal.school,
            after_seq=after,
            limit=limit + 1,
            action=action,
            target=target,
        )
        more = len(entries) > limit
        entries = list(entries[:limit])
        return Page[AuditEntryView](
            items=[
                AuditEntryView(
                    seq=e.seq,
                    recorded_at=e.recorded_at,
                    actor=e.actor,
                    action=e.action,
                    target=e.target,
                    outcome=e.outcome,
                    details=e.details,
                    hash=e.hash,
                )
                for e in entries
            ],
            next_cursor=encode_cursor(entries[-1].seq) if more and entries else None,
        )

    @router.get("/audit:verify")
    def verify_audit(
        session: SessionDep, principal: Principal = require_roles(*roles)
    ) -> ChainReport:
        """Recompute the whole hash chain; name the first entry that was altered or removed."""
        verdict = chain.verify(session)
        return ChainReport(
            intact=verdict.intact,
            entries=verdict.entries,
            first_bad_seq=verdict.first_bad_seq,
            reason=verdict.reason,
        )

    return router
