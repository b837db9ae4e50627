"""The roster of pupil names that name detection (media) matches against."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.concurrency import run_in_threadpool

from hallpass_consent.common import PUPIL_READERS
from hallpass_consent.context import ConsentContextDep
from hallpass_consent.roster import service
from hallpass_consent.roster.schemas import Roster
from hallpass_kit.app import require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.errors import problem_responses
from hallpass_kit.fields import STORABLE

router = APIRouter(prefix="/v1", tags=["roster"], responses=problem_responses(403))


# async, with the read in one trip to the thread pool: every publish check revalidates the
# roster, and a sync endpoint with a session dependency made three (open, handle, commit).
@router.get(
    "/roster",
    response_model=Roster,
    responses={304: {"description": "Unchanged since the ETag you hold"}},
)
async def roster(
    context: ConsentContextDep,
    if_none_match: Annotated[str | None, Header(max_length=200), STORABLE] = None,
    principal: Principal = require_roles(*PUPIL_READERS),
) -> Response:
    """Every pupil's names, leavers included (their names still must not be published).

    Versioned: send the ETag back in If-None-Match and an unchanged roster answers 304.
    """
    answer = await run_in_threadpool(
        service.roster, context.database, principal.school, if_none_match
    )
    if answer.roster is None:
        return Response(status_code=304, headers={"ETag": answer.etag})
    return Response(
        answer.roster.model_dump_json(),
        media_type="application/json",
        headers={"ETag": answer.etag, "Cache-Control": "private, no-cache"},
    )
