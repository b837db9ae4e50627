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

# Decisions that need the database wait for it here, on the event loop, DECIDING_AT_ONCE at a
# time (never more than the pool keeps connections open: past that the pool opens connections
# only to close them on their return, and opening a PostgreSQL connection costs more than a
# decision; 30 new connections a second doubled PostgreSQL's CPU). One gate per database and
# event loop.
#
# Two, not the pool's ten: a decision is mostly Python, which one process runs one thread at a
# time, so more in flight only take turns for the GIL (and, on SQLite, run their statements side
# by side on the same CPUs). Two keeps one deciding while the other waits for its rows. Measured
# with bench/decisions.py, 1 worker, 16 connections, same minutes (docs/benchmarks.md):
# SQLite 5.13 -> 3.37 ms of server CPU a decision, p99 137 -> 90 ms; PostgreSQL 2.28 -> 2.23 ms
# and 0.67 -> 0.57 ms of PostgreSQL CPU, p99 89 -> 58 ms, for the same throughput.
DECIDING_AT_ONCE = 2
_gates: weakref.WeakKeyDictionary[
    Database, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _gate(database: Database) -> asyncio.Semaphore:
    per_loop = _gates.setdefault(database, weakref.WeakKeyDictionary())
    loop = asyncio.get_running_loop()
    gate = per_loop.get(loop)
    if gate is None:
        gate = per_loop[loop] = asyncio.Semaphore(
            max(1, min(DECIDING_AT_ONCE, database.options.pool_size))
        )
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
