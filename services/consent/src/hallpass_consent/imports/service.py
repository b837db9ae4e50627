"""Background imports: the office uploads an MIS export, the job engine imports it, and the
progress bar reads how far it has got.

The file is queued as an outbox event of the service's own (``pupils.import_queued``, never a
webhook: it is not one of the announced events), so the job engine's claims and leases carry it:
a worker that dies mid-import leaves a lease that lapses, and the next claim finds the import
still ``running`` and ends it ``failed`` (the import writes all rows or none, so nothing was
changed and the office can upload again). An import is never tried twice by itself: a second try
of a file that stopped a worker might stop the next one too.

Progress and the SQLite write lock. Progress is written in short transactions of its own, apart
from the import's, so the page sees it while the import runs. The import's own transaction holds
the database's one write lock on SQLite (the kit serialises writers), and a progress write from
the same thread would wait for that lock, i.e. for itself. So the work is split in two steps:

1. *checking*: every row is read and checked with no transaction open; progress is committed as
   it goes, on every database;
2. *importing*: the rows are written in one transaction. On PostgreSQL progress is committed
   beside it (row locks: the import never touches its own progress row). On SQLite the stage
   changes to ``importing`` before the write transaction begins and stays at 0 of n until the
   end: the page says "saving" and the bar goes indeterminate.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from hallpass_consent.common import audit, record_audit, require_school
from hallpass_consent.imports import repository
from hallpass_consent.imports.schemas import ImportView
from hallpass_consent.models import ImportStatus, PupilImport, kit_tables
from hallpass_consent.pupils import importer
from hallpass_consent.pupils.schemas import ImportSummary
from hallpass_kit.auth import Principal
from hallpass_kit.db import Database
from hallpass_kit.errors import HallpassError, NotFound, ProblemDetail
from hallpass_kit.outbox import Event, emit

logger = logging.getLogger("hallpass.consent.imports")

IMPORT_QUEUED = "pupils.import_queued"
# About this many progress writes per stage, however long the file: enough for a bar to move
# smoothly, few enough that a 10,000-row file is not slowed by its own progress.
PROGRESS_STEPS = 50

Observer = Callable[[], None]


def _nothing() -> None:
    return None


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


def view(pupil_import: PupilImport) -> ImportView:
    return ImportView(
        id=pupil_import.id,
        status=pupil_import.status,
        dry_run=pupil_import.dry_run,
        stage=pupil_import.stage,
        done=pupil_import.done,
        total=pupil_import.total,
        summary=ImportSummary.model_validate(pupil_import.summary)
        if pupil_import.summary is not None
        else None,
        problems=[ProblemDetail.model_validate(p) for p in pupil_import.problems or []],
        created_at=pupil_import.created_at,
        finished_at=pupil_import.finished_at,
    )


def queue_import(
    session: Session, principal: Principal, data: bytes, *, dry_run: bool, now: dt.datetime
) -> ImportView:
    """Store the file and queue its import, in the request's transaction (audited)."""
    require_school(session, principal.school)
    pupil_import = PupilImport(
        id=uuid.uuid4(),
        school_id=principal.school,
        status=ImportStatus.queued,
        dry_run=dry_run,
        stage="queued",
        done=0,
        total=0,
        content=data,
        summary=None,
        problems=None,
        created_by=principal.actor,
        created_at=now,
        finished_at=None,
    )
    repository.add(session, pupil_import)
    emit(
        session,
        kit_tables,
        type=IMPORT_QUEUED,
        school=principal.school,
        payload={"import_id": str(pupil_import.id)},
        now=now,
    )
    record_audit(
        session,
        principal,
        "pupils.import_queued",
        f"import:{pupil_import.id}",
        {"bytes": len(data), "dry_run": dry_run},
    )
    return view(pupil_import)


def read_import(session: Session, principal: Principal, import_id: uuid.UUID) -> ImportView:
    pupil_import = repository.get(session, principal.school, import_id)
    if pupil_import is None:
        raise NotFound("No such import in this school.", code="unknown_import")
    return view(pupil_import)


class ImportRunner:
    """Runs one queued import (the job engine calls ``handle`` with the queued event).

    ``observe`` is called after each progress write has committed; tests watch the progress
    move with it, step by step, instead of racing the worker.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_rows: int,
        clock: Callable[[], dt.datetime],
        observe: Observer = _nothing,
    ) -> None:
        self.database = database
        self.max_rows = max_rows
        self.clock = clock
        self.observe = observe
        # See the module's docstring: only PostgreSQL lets progress be written beside the import.
        self.progress_while_writing = database.dialect == "postgresql"

    def handle(self, event: Event) -> None:
        self.run(uuid.UUID(str(event.payload["import_id"])))

    def run(self, import_id: uuid.UUID) -> None:
        started = self._start(import_id)
        if started is None:
            return
        school_id, data, dry_run, actor = started
        try:
            rows = importer.parse(data, max_rows=self.max_rows, progress=self._progress(import_id))
            self._stage(import_id, "importing", 0, len(rows))
            with self.database.session() as session:
                summary = importer.import_rows(
                    session,
                    school_id,
                    rows,
                    dry_run=dry_run,
                    progress=self._progress(import_id)
                    if self.progress_while_writing
                    else _no_progress,
                    now=self.clock(),
                )
                if not dry_run:
                    audit.append(
                        session,
                        actor=actor,
                        school=school_id,
                        action="pupils.imported",
                        target=f"import:{import_id}",
                        details=summary.model_dump(),
                    )
                # In the import's own transaction: the rows and "done" land together, and an
                # import already ended as failed (its lease lapsed) rolls its rows back.
                finished = repository.change_if(
                    session,
                    import_id,
                    ImportStatus.running,
                    self._finished(
                        ImportStatus.done, done=len(rows), total=len(rows), summary=summary
                    ),
                )
                if not finished:
                    raise _Superseded
        except _Superseded:
            logger.warning("import %s was ended elsewhere; its rows were not kept", import_id)
        except HallpassError as refusal:
            problems = refusal.problems or [
                ProblemDetail(code=refusal.code, detail=refusal.detail, where="file")
            ]
            self._fail(import_id, problems)
        except Exception as exc:
            # A bug or a lost database: the transaction rolled back, so nothing was imported.
            logger.exception("import %s stopped", import_id)
            self._fail(
                import_id,
                [
                    ProblemDetail(
                        code="import_stopped",
                        detail=f"The import stopped ({type(exc).__name__}); nothing was "
                        "imported. Try again.",
                    )
                ],
            )

    def _start(self, import_id: uuid.UUID) -> tuple[str, bytes, bool, str] | None:
        """Mark the import running; None when there is nothing to run."""
        with self.database.session() as session:
            pupil_import = repository.by_id(session, import_id)
            if pupil_import is None or pupil_import.status in (
                ImportStatus.done,
                ImportStatus.failed,
            ):
                return None
            if pupil_import.status == ImportStatus.running:
                # A claim whose worker died (its lease lapsed): end it rather than try the
                # same file on the next worker.
                repository.change_if(
                    session,
                    import_id,
                    ImportStatus.running,
                    self._finished(
                        ImportStatus.failed,
                        problems=[
                            ProblemDetail(
                                code="import_interrupted",
                                detail="The import was interrupted (the server stopped); "
                                "nothing was imported. Upload the file again.",
                            )
                        ],
                    ),
                )
                return None
            pupil_import.status = ImportStatus.running
            pupil_import.stage = "checking"
            session.flush()
            return (
                pupil_import.school_id,
                pupil_import.content or b"",
                pupil_import.dry_run,
                pupil_import.created_by,
            )

    def _progress(self, import_id: uuid.UUID) -> importer.Progress:
        last_written: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            step = max(1, total // PROGRESS_STEPS)
            if done == total or done - last_written.get(stage, 0) >= step:
                last_written[stage] = done
                self._stage(import_id, stage, done, total)

        return progress

    def _stage(self, import_id: uuid.UUID, stage: str, done: int, total: int) -> None:
        with self.database.session() as session:
            repository.change_if(
                session,
                import_id,
                ImportStatus.running,
                {"stage": stage, "done": done, "total": total},
            )
        self.observe()

    def _fail(self, import_id: uuid.UUID, problems: list[ProblemDetail]) -> None:
        with self.database.session() as session:
            repository.change_if(
                session,
                import_id,
                ImportStatus.running,
                self._finished(ImportStatus.failed, problems=problems),
            )

    def _finished(
        self,
        status: ImportStatus,
        *,
        done: int | None = None,
        total: int | None = None,
        summary: ImportSummary | None = None,
        problems: list[ProblemDetail] | None = None,
    ) -> dict[str, Any]:
        # The file is emptied once the import ends, whatever the end: it holds carers' details.
        values: dict[str, Any] = {
            "status": status,
            "stage": "finished",
            "content": None,
            "finished_at": self.clock(),
            "summary": summary.model_dump() if summary is not None else None,
            "problems": [p.model_dump() for p in problems] if problems is not None else None,
        }
        if done is not None:
            values["done"] = done
        if total is not None:
            values["total"] = total
        return values


class _Superseded(Exception):
    """The import was ended by another worker while this one was writing."""
