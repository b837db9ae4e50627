from __future__ import annotations

import asyncio
import weakref

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from hallpass_consent.common import DECIDERS
from hallpass_consent.consents import service
from hallpass_consent.consents.schemas import DecisionRequest, DecisionResponse
from hallpass_consent.context import ConsentContextDep
from hallpass_kit.app import require_roles
from hallpass_kit.auth import Principal
from hallpass_kit.db import Database
from hallpass_kit.errors import problem_responses
from hallpass_kit.metrics import count_decisions

router = APIRouter(prefix="/v1", tags=["decisions"], responses=problem_responses(403, 422))

# Decisions that need the database wait for it here, on the event loop, no more at a time than
# the pool keeps connections open: past that the pool opens connections only to close them on
# their return, and opening a PostgreSQL connection costs more than a decision (measured: 30 new
# connections a second doubled PostgreSQL's CPU). One gate per database and event loop.
_gates: weakref.WeakKeyDictionary[
    Database, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _gate(database: Database) -> asyncio.Semaphore:
    per_loop = _gates.setdefault(database, weakref.WeakKeyDictionary())
    loop = asyncio.get_running_loop()
    gate = per_loop.get(loop)
    if gate is None:
        gate = per_loop[loop] = asyncio.Semaphore(max(1, database.options.pool_size))
    return gate


ROSTER_VERSION = "Hallpass-Roster-Version"


# async, with the database work in one trip to the thread pool: a sync endpoint with a session
# dependency makes three (open, handle, commit), and on a busy server each waits its turn.
@router.post(
    "/decisions",
    response_model=DecisionResponse,
    responses={
        200: {
            "headers": {
                ROSTER_VERSION: {
                    "description": "The school's roster version these verdicts were decided "
                    "against, read in the same statement as the consent records: the version "
                    "in the roster's ETag (GET /v1/roster). A reader holding that version's "
                    "names needs no roster call to match names as of this answer.",
                    "schema": {"type": "integer"},
                }
            }
        }
    },
)
async def decide(
    body: DecisionRequest,
    context: ConsentContextDep,
    principal: Principal = require_roles(*DECIDERS),
) -> Response:
    """May these pupils appear for this purpose? One verdict per pupil, with the record behind it.

    Fails closed: an unknown purpose or pupil answers 422 and decides nothing; absence of a
    record is "no" for opt-in purposes (C2); a restriction is always "no" (C12).
    """
    async with _gate(context.database):
        decided = await run_in_threadpool(
            service.decisions,
            context.database,
            principal,
            body,
            max_batch=context.settings.max_decision_batch,
            now=context.clock(),
        )
    count_decisions(decided.reasons)
    return Response(
        decided.json,
        media_type="application/json",
        headers={ROSTER_VERSION: str(decided.roster_version)},
    )
