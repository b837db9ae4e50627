"""Registering and retiring the school's own devices (M4)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.errors import BadRequest, Conflict, NotFound
from hallpass_kit.pagination import Page, decode_cursor, encode_cursor
from hallpass_media.common import record_audit
from hallpass_media.devices import repository
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


def register(
    session: Session, principal: Principal, body: DeviceRegistration, now: dt.datetime
) -> DeviceView:
    if repository.find_by_serial(session, principal.school, body.serial) is not None:
        raise Conflict(
            "A device with this serial number is already registered.", code="device_exists"
        )
    device = Device(
        id=uuid.uuid4(),
        school_id=principal.school,
        name=body.name,
        serial=body.serial,
        registered_by=principal.actor,
        registered_at=now,
        retired_at=None,
        retired_by=None,
    )
    repository.add(session, device)
    record_audit(session, principal, "device.registered", str(device.id), {"serial": body.serial})
    return view(device)


def get(session: Session, principal: Principal, device_id: uuid.UUID) -> Device:
    device = repository.find(session, principal.school, device_id)
    if device is None:
        raise NotFound("No such device in this school.", code="device_not_found")
    return device


def active_device(session: Session, school: str, device_id: uuid.UUID | None) -> Device | None:
    """The school's device if it may still bring media in (M4): registered and not retired."""
    if device_id is None:
        return None
    device = repository.find(session, school, device_id)
    if device is None or device.retired_at is not None:
        return None
    return device


def retire(
    session: Session, principal: Principal, device_id: uuid.UUID, now: dt.datetime
) -> DeviceView:
    device = get(session, principal, device_id)
    if device.retired_at is None:
        device.retired_at = now
        device.retired_by = principal.actor
        repository.save(session)
        record_audit(session, principal, "device.retired", str(device.id))
    return view(device)


def _after(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    (after,) = decode_cursor(cursor, 1)
    try:
        return uuid.UUID(str(after))
    except ValueError:
        raise BadRequest("The cursor is not one this API issued.", code="invalid_cursor") from None


def list_devices(
    session: Session, principal: Principal, *, cursor: str | None, limit: int
) -> Page[DeviceView]:
    rows = repository.page(session, principal.school, after=_after(cursor), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[DeviceView](
        items=[view(d) for d in rows],
        next_cursor=encode_cursor(str(rows[-1].id)) if more and rows else None,
    )


def demo_camera(session: Session, principal: Principal, serial: str, now: dt.datetime) -> str:
    """The demo camera's id, registered on first use (so uploads work at once in a demo)."""
    existing = repository.find_by_serial(session, principal.school, serial)
    if existing is not None:
        return str(existing)
    registration = DeviceRegistration(name="Demo school camera", serial=serial)
    return str(register(session, principal, registration, now).id)
