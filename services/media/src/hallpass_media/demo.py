"""Demo data for the media side: one registered school camera, so uploads work at once (M4)."""

from __future__ import annotations

from hallpass_kit.auth import Principal, Role
from hallpass_kit.db import Database, utcnow
from hallpass_media.devices import service as devices

DEMO_SERIAL = "DEMO-CAMERA-1"


def seed_demo(database: Database, school: str = "demo") -> str:
    """Register the demo camera once; returns its device id (the same on every later call)."""
    office = Principal(sub="demo-seed", school=school, roles=frozenset({Role.office}))
    with database.session() as session:
        # A command at the edge of the service: the wall clock is its clock.
        return devices.demo_camera(session, office, DEMO_SERIAL, utcnow())
