"""Opaque cursors for list endpoints."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from hallpass_kit.errors import BadRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(extra="forbid")

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not one this API issued.", code="invalid_cursor") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("The cursor is not one this API issued.", code="invalid_cursor")
    return values


# Where a newest-first list stopped: the last row's timestamp and id (the id breaks ties).
Position = tuple[dt.datetime, uuid.UUID]


def encode_position(at: dt.datetime, ident: uuid.UUID) -> str:
    return encode_cursor(at.isoformat(), str(ident))


def decode_position(cursor: str | None) -> Position | None:
    """The position a newest-first cursor points after; None for the first page."""
    if cursor is None:
        return None
    at, ident = decode_cursor(cursor, 2)
    try:
        position = dt.datetime.fromisoformat(str(at)), uuid.UUID(str(ident))
    except ValueError:
        position = None
    # The API only issues aware timestamps; a naive one cannot be compared with the stored ones.
    if position is None or position[0].tzinfo is None:
        raise BadRequest("The cursor is not one this API issued.", code="invalid_cursor")
    return position


def older_than(
    at_column: InstrumentedAttribute[dt.datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    position: Position,
) -> ColumnElement[bool]:
    """Rows after ``position`` in newest-first order (timestamp descending, then id)."""
    at, ident = position
    return or_(at_column < at, and_(at_column == at, id_column < ident))
