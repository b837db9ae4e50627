"""Every SQL statement about the school's devices (M4)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from hallpass_media.models import Device


def add(session: Session, device: Device) -> None:
    session.add(device)
    session.flush()


def find(session: Session, school: str, device_id: uuid.UUID) -> Device | None:
    """The school's device, retired or not; another school's is as good as missing."""
    device = session.get(Device, device_id)
    if device is None or device.school_id != school:
        return None
    return device


def find_by_serial(session: Session, school: str, serial: str) -> uuid.UUID | None:
    return session.scalars(
        select(Device.id).where(Device.school_id == school, Device.serial == serial)
    ).first()


def page(session: Session, school: str, *, after: uuid.UUID | None, limit: int) -> list[Device]:
    """Up to ``limit`` devices in id order, after ``after``."""
    query = select(Device).where(Device.school_id == school)
    if after is not None:
        query = query.where(Device.id > after)
    return list(session.scalars(query.order_by(Device.id).limit(limit)))


def save(session: Session) -> None:
    session.flush()
