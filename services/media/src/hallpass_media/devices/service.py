"""Registering and retiring the school's own devices (M4)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.db import utcnow
from hallpass_kit.errors import BadRequest, Conflict, NotFound
from hallpass_kit.pagination import Page, decode_cursor, encode_cursor
from hallpass_media.common import record_audit
from hallpass_media.devices.schemas import DeviceRegistration, DeviceView
from hallpass_media.models import Device


def view(device: Device) -> DeviceView:
    return DeviceView(
        id=device.id,
        name=device.name,
        serial=device.serial,
        active=device.retired_at is None,
        registered_by=device.registered_by,
        registered_at=device.registered_at,
        retired_at=device.retired_at,
    )


def register(session: Session, principal: Principal, body: DeviceRegistration) -> DeviceView:
    taken = session.execute(
        select(Device.id).where(Device.school_id == principal.school, Device.serial == body.serial)
    ).first()
    if taken is not None:
        raise Conflict(
            "A device with this serial number is already registered.", code="device_exists"
        )
    device = Device(
        id=uuid.uuid4(),
        school_id=principal.school,
        name=body.name,
        serial=body.serial,
        registered_by=principal.actor,
        registered_at=utcnow(),
        retired_at=None,
        retired_by=None,
    )
    session.add(device)
    session.flush()
    record_audit(session, principal, "device.registered", str(device.id), {"serial": body.serial})
    return view(device)


def get(session: Session, principal: Principal, device_id: uuid.UUID) -> Device:
    device = session.get(Device, device_id)
    if device is None or device.school_id != principal.school:
        raise NotFound("No such device in this school.", code="device_not_found")
    return device


def retire(session: Session, principal: Principal, device_id: uuid.UUID) -> DeviceView:
    device = get(session, principal, device_id)
    if device.retired_at is None:
        device.retired_at = utcnow()
        device.retired_by = principal.actor
        session.flush()
        record_audit(session, principal, "device.retired", str(device.id))
    return view(device)


def list_devices(
    session: Session, principal: Principal, *, cursor: str | None, limit: int
) -> Page[DeviceView]:
    query = select(Device).where(Device.school_id == principal.school)
    if cursor is not None:
        (after,) = decode_cursor(cursor, 1)
        try:
            query = query.where(Device.id > uuid.UUID(str(after)))
        except ValueError:
            raise BadRequest(
                "The cursor is not one this API issued.", code="invalid_cursor"
            ) from None
    rows = list(session.scalars(query.order_by(Device.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[DeviceView](
        items=[view(d) for d in rows],
        next_cursor=encode_cursor(str(rows[-1].id)) if more and rows else None,
    )
