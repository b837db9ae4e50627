from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from hallpass_consent.models import ImportStatus
from hallpass_consent.pupils.schemas import ImportSummary
from hallpass_kit.errors import ProblemDetail


class ImportView(BaseModel):
    """A background import and how far it has got.

    ``stage`` is ``queued``, ``checking`` (every row read and checked; nothing written yet),
    ``importing`` (the rows being saved, all or none) or ``finished``. ``done`` of ``total``
    counts rows in the current stage.
    """

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    status: ImportStatus
    dry_run: bool
    stage: str
    done: int
    total: int
    summary: ImportSummary | None = Field(description="When done: what was (or would be) changed.")
    problems: list[ProblemDetail] = Field(
        description="When failed: every bad row (row, column, problem) or why the import stopped; "
        "nothing was imported."
    )
    created_at: dt.datetime
    finished_at: dt.datetime | None
