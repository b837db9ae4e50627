"""Idempotency-Key for writes that clients retry.

Same key and same request → the first response again, nothing done twice. Same key with another
request → 409. The record is written in the same transaction as the change it describes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import and_, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.db import utcnow
from hallpass_kit.errors import BadRequest, Conflict
from hallpass_kit.fields import STORABLE
from hallpass_kit.tables import KitTables

KEY_RETENTION = dt.timedelta(days=8)  # the contract promises at least seven days
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    fingerprint: str


async def idempotency_key(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Any unique string of visible ASCII (a UUID is best); retrying with the "
            "same key and body returns the first response instead of acting twice.",
            max_length=200,
            # The accepted keys, stated in the schema (visible ASCII, no blanks around it) so a
            # client can know them; the check below stays for keys that arrive other ways.
            pattern=KEY_PATTERN,
        ),
        STORABLE,
    ] = None,
) -> IdempotencyKey | None:
    if idempotency_key is None:
        return None
    key = idempotency_key.strip()
    if not key or not key.isprintable():
        raise BadRequest(
            "Idempotency-Key must be a non-empty printable string.", code="invalid_idempotency_key"
        )
    body = await request.body()
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0" + request.url.path.encode() + b"\0")
    digest.update(body)
    return IdempotencyKey(key=key, fingerprint=digest.hexdigest())


IdempotencyDep = Annotated[IdempotencyKey | None, Depends(idempotency_key)]


def run_idempotent(
    session: Session,
    tables: KitTables,
    principal: Principal,
    key: IdempotencyKey | None,
    action: Callable[[], BaseModel],
    *,
    status_code: int,
) -> Any:
    """Run ``action`` once per key; a retry gets the stored response back."""
    if key is None:
        return action()
    t = tables.idempotency_record
    where = and_(t.c.school == principal.school, t.c.actor == principal.sub, t.c.key == key.key)
    stored = session.execute(select(t).where(where)).first()
    if stored is not None:
        if stored.fingerprint != key.fingerprint:
            raise Conflict(
                "This Idempotency-Key was already used for a different request.",
                code="idempotency_key_reused",
            )
        return JSONResponse(
            stored.response, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
        )
    result = action()
    body = jsonable_encoder(result)
    try:
        with session.begin_nested():
            session.execute(
                insert(t).values(
                    school=principal.school,
                    actor=principal.sub,
                    key=key.key,
                    fingerprint=key.fingerprint,
                    status_code=status_code,
                    response=body,
                    created_at=utcnow(),
                )
            )
    except IntegrityError as exc:
        # A concurrent request with the same key won the race; ours must not land as well.
        raise Conflict(
            "A request with this Idempotency-Key is already being processed.",
            code="idempotency_key_in_flight",
        ) from exc
    return result


def purge_expired(session: Session, tables: KitTables, *, now: dt.datetime | None = None) -> int:
    t = tables.idempotency_record
    cutoff = (now or utcnow()) - KEY_RETENTION
    return session.execute(delete(t).where(t.c.created_at < cutoff)).rowcount  # type: ignore[attr-defined, no-any-return]
