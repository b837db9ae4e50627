"""Which renewal reminders to write, decided without I/O: one per carer per lapsing consent."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Lapsing:
    """A consent grant that lapses soon, as the consent service lists it."""

    record_id: uuid.UUID
    pupil_id: uuid.UUID
    purpose: str
    guardian_id: uuid.UUID
    email: str
    valid_until: dt.datetime


def due_reminders(
    lapsing: Iterable[Lapsing], already: Collection[tuple[uuid.UUID, uuid.UUID]]
) -> dict[uuid.UUID, list[Lapsing]]:
    """Per carer, the grants they have not been reminded about yet (``already`` holds
    (guardian id, record id) pairs), soonest first."""
    due: dict[uuid.UUID, list[Lapsing]] = {}
    for grant in lapsing:
        if (grant.guardian_id, grant.record_id) in already:
            continue
        due.setdefault(grant.guardian_id, []).append(grant)
    for grants in due.values():
        grants.sort(key=lambda g: (g.valid_until, g.purpose))
    return due


def purpose_words(code: str) -> str:
    return code.replace("_", " ")
