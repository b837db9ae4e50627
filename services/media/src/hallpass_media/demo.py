"""Demo data for the media side: one registered school camera, so uploads work at once (M4)."""

from __future__ import annotations

from sqlalchemy import select

from hallpass_kit.auth import Principal, Role
from hallpass_kit.db import Database
from hallpass_media.devices import service as devices
from hallpass_media.devices.schemas import DeviceRegistration
from hallpass_media.models import Device

DEMO_SERIAL = "DEMO-CAMERA-1"


def seed_demo(database: Database, school: str = "demo") -> str:
    """Register the demo camera once; returns its device id (the same on every later call)."""
    with database.session() as session:
        existing = session.execute(
            select(Device.id).where(Device.school_id == school, Device.serial == DEMO_SERIAL)
        ).scalar_one_or_none()
        if existing is not None:
            return str(existing)
        office = Principal(sub="demo-seed", school=school, roles=frozenset({Role.office}))
        device = devices.register(
            session, office, DeviceRegistration(name="Demo school camera", serial=DEMO_SERIAL)
        )
        return str(device.id)
