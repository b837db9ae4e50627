from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE
from hallpass_kit.pagination import Page
from hallpass_media.common import DEVICE_REGISTRARS, STAFF
from hallpass_media.context import MediaContextDep
from hallpass_media.devices import service
from hallpass_media.devices.schemas import DeviceRegistration, DeviceView

router = APIRouter(prefix="/v1", tags=["devices"], responses=problem_responses(403))


@router.post("/devices", status_code=201, responses=problem_responses(409))
def register_device(
    body: DeviceRegistration,
    session: SessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*DEVICE_REGISTRARS),
) -> DeviceView:
    """Register a school device; only media taken on a registered device can be uploaded (M4)."""
    return service.register(session, principal, body, media.clock())


@router.get("/devices", responses=problem_responses(400))
def list_devices(
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=500), STORABLE] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    principal: Principal = require_roles(*STAFF),
) -> Page[DeviceView]:
    """The school's devices, retired ones included."""
    return service.list_devices(session, principal, cursor=cursor, limit=limit)


@router.post("/devices/{device_id}:retire", responses=problem_responses(404))
def retire_device(
    device_id: uuid.UUID,
    session: SessionDep,
    media: MediaContextDep,
    principal: Principal = require_roles(*DEVICE_REGISTRARS),
) -> DeviceView:
    """Retire a lost, sold or broken device: uploads naming it are refused from now on (M4)."""
    return service.retire(session, principal, device_id, media.clock())
