"""Background imports: ``POST /v1/imports`` queues an MIS export, ``GET /v1/imports/{id}`` shows
how far it has got and, at the end, what it changed or every bad row."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from hallpass_consent.common import REGISTRARS
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.imports import service
from hallpass_consent.imports.schemas import ImportView
from hallpass_consent.models import kit_tables
from hallpass_kit.app import SessionDep, require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import PayloadTooLarge, UnsupportedMediaType, problem_responses
from hallpass_kit.idempotency import IdempotencyDep, run_idempotent

router = APIRouter(prefix="/v1", tags=["imports"], responses=problem_responses(403, 404, 422))


async def _csv_body(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType("Send the file as text/csv.")
    if int(request.headers.get("content-length") or 0) > limit:
        raise PayloadTooLarge(f"The file is larger than {limit} bytes.")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise PayloadTooLarge(f"The file is larger than {limit} bytes.")
    return bytes(data)


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportView,
    responses=problem_responses(409, 413, 415),
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def create_import(
    request: Request,
    response: Response,
    session: SessionDep,
    context: ConsentContextDep,
    idempotency: IdempotencyDep,
    dry_run: bool = False,
    principal: Principal = require_roles(*REGISTRARS),
) -> object:
    """Queue an MIS CSV export for import in the background; all rows land or none do.

    The answer (202) names the import; ``GET /v1/imports/{id}`` (the ``Location``) shows its
    progress and, when it ends, the summary or every bad row. Columns as for
    ``POST /v1/pupils:import`` (docs/import.md)."""
    data = await _csv_body(request, context.settings.max_import_bytes)
    answer = await run_in_threadpool(
        run_idempotent,
        session,
        kit_tables,
        principal,
        idempotency,
        lambda: service.queue_import(
            session, principal, data, dry_run=dry_run, now=context.clock()
        ),
        status_code=202,
    )
    if isinstance(answer, ImportView):
        root = request.scope.get("root_path", "")
        response.headers["Location"] = f"{root}/v1/imports/{answer.id}"
    return answer


@router.get("/imports/{import_id:uuid}")
def read_import(
    import_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_roles(*REGISTRARS),
) -> ImportView:
    """An import's status, stage and progress (``done`` of ``total`` rows), and at the end the
    summary or every bad row (row, column, problem)."""
    return service.read_import(session, principal, import_id)
