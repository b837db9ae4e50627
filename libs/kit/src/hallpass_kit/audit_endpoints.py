"""GET /v1/audit, /v1/audit:verify and the audit checkpoints, the same in every service."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from joserfc import jws
from joserfc.errors import JoseError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.audit import AuditChain, Finding
from hallpass_kit.auth import Principal, Role
from hallpass_kit.checkpoints import AuditNotary, CheckpointInvalid
from hallpass_kit.errors import NotFound, problem_responses
from hallpass_kit.fields import STORABLE
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
    # This school's entries checked before the verdict (never the whole table's count).
    entries: int
    first_bad_seq: int | None
    reason: str | None
    finding: Finding | None
    checkpoints: int
    latest_checkpoint_seq: int | None
    # This school's entries written without the service's seal (by a command-line tool, or
    # straight into the database) that a signed checkpoint vouches for.
    unsealed: int


class CheckpointView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    # The checkpoint as stored: a compact JWS (Ed25519) over the fields below. Keep it; check it
    # with the key from /v1/audit:checkpoint-keys.
    token: str
    signature_valid: bool
    service: str | None
    seq: int | None
    hash: str | None
    made_at: dt.datetime | None
    unsealed: int | None


class AuditKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # JWKS: the public keys that sign this service's checkpoints.
    keys: list[dict[str, Any]]


def _notary(chain: AuditChain, session: Session) -> AuditNotary:
    notary = chain.notary_for(session)
    if notary is None:
        raise NotFound("This service keeps no audit checkpoints.", code="no_audit_checkpoints")
    return notary


def _checkpoint_view(notary: AuditNotary, number: int) -> CheckpointView | None:
    token = notary.store.get(number)
    if token is None:
        return None
    token = token.strip()
    try:
        checkpoint = notary.read(number)
    except CheckpointInvalid:
        checkpoint = None
    if checkpoint is not None:
        return CheckpointView(
            number=number,
            token=token,
            signature_valid=True,
            service=checkpoint.service,
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            made_at=checkpoint.made_at,
            unsealed=checkpoint.unsealed,
        )
    # Shown as stored, so whoever keeps copies sees what is wrong with it.
    claims: dict[str, Any] = {}
    try:
        claims = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError):
        claims = {}
    if not isinstance(claims, dict):
        claims = {}

    def text_claim(name: str) -> str | None:
        value = claims.get(name)
        return value if isinstance(value, str) else None

    def int_claim(name: str) -> int | None:
        value = claims.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    made_at = text_claim("made_at")
    try:
        when = dt.datetime.fromisoformat(made_at) if made_at else None
    except ValueError:
        when = None
    return CheckpointView(
        number=number,
        token=token,
        signature_valid=False,
        service=text_claim("service"),
        seq=int_claim("seq"),
        hash=text_claim("hash"),
        made_at=when if when is None or when.tzinfo else None,
        unsealed=int_claim("unsealed"),
    )


def audit_router(chain: AuditChain, roles: tuple[Role, ...] = (Role.head, Role.dsl)) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["audit"], responses=problem_responses(400, 403))

    @router.get("/audit")
    def list_audit(
        session: SessionDep,
        cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        action: Annotated[str | None, Query(max_length=100), STORABLE] = None,
        target: Annotated[str | None, Query(max_length=200), STORABLE] = None,
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
        """Recompute the whole hash chain from seq 1 and hold it against every signed checkpoint.

        Names what it found: the first entry that was edited, removed, re-ordered or forged; rows
        missing after a checkpoint; a truncated table; a checkpoint missing or not signed by the
        service. Counts are of this school's entries only.
        """
        verdict = chain.verify(session, school=principal.school)
        return ChainReport(
            intact=verdict.intact,
            entries=verdict.entries,
            first_bad_seq=verdict.first_bad_seq,
            reason=verdict.reason,
            finding=verdict.finding,
            checkpoints=verdict.checkpoints,
            latest_checkpoint_seq=verdict.latest_checkpoint_seq,
            unsealed=verdict.unsealed,
        )

    @router.get("/audit:checkpoint", responses=problem_responses(404))
    def get_audit_checkpoint(
        session: SessionDep,
        number: Annotated[int | None, Query(ge=1, le=10**12)] = None,
        principal: Principal = require_roles(*roles),
    ) -> CheckpointView:
        """The latest signed checkpoint of the audit chain, or checkpoint ``number``.

        Keep copies outside the school's systems (a trust, an auditor): a later rewrite of the
        chain cannot match a checkpoint signed before it.
        """
        notary = _notary(chain, session)
        if number is None:
            numbers = notary.store.numbers()
            number = numbers[-1] if numbers else None
        view = _checkpoint_view(notary, number) if number is not None else None
        if view is None:
            raise NotFound("No such audit checkpoint.", code="audit_checkpoint_not_found")
        return view

    @router.get("/audit/checkpoints", responses=problem_responses(404))
    def list_audit_checkpoints(
        session: SessionDep,
        cursor: Annotated[str | None, Query(max_length=200), STORABLE] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        principal: Principal = require_roles(*roles),
    ) -> Page[CheckpointView]:
        """Every signed checkpoint, oldest first."""
        notary = _notary(chain, session)
        after = 0
        if cursor is not None:
            (raw,) = decode_cursor(cursor, 1)
            after = raw if isinstance(raw, int) else 0
        numbers = [n for n in notary.store.numbers() if n > after]
        views = [v for v in (_checkpoint_view(notary, n) for n in numbers[:limit]) if v]
        more = len(numbers) > limit
        return Page[CheckpointView](
            items=views, next_cursor=encode_cursor(numbers[limit - 1]) if more else None
        )

    @router.get("/audit:checkpoint-keys", responses=problem_responses(404))
    def get_audit_checkpoint_keys(
        session: SessionDep, principal: Principal = require_roles(*roles)
    ) -> AuditKeys:
        """The public key (JWK, Ed25519) that signs this service's audit checkpoints."""
        return AuditKeys(keys=[_notary(chain, session).key.public_jwk()])

    return router
