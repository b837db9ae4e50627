"""The roster of pupil names that name detection (media) matches against, versioned so a reader
that holds the current version is answered without the names."""

from __future__ import annotations

from dataclasses import dataclass

from hallpass_consent.roster import repository
from hallpass_consent.roster.schemas import Roster
from hallpass_kit.db import Database


@dataclass(frozen=True, slots=True)
class RosterAnswer:
    """The roster's ETag, and the roster itself unless the reader already holds this version."""

    etag: str
    roster: Roster | None


def etag(school_id: str, version: int) -> str:
    return f'W/"roster-{school_id}-{version}"'


def _held(etag: str, if_none_match: str | None) -> bool:
    return if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}


def roster(database: Database, school_id: str, if_none_match: str | None) -> RosterAnswer:
    """One read-only statement when the reader holds the current version (the answer of nearly
    every call); the names only when it does not."""
    with database.reading() as connection:
        version = repository.roster_version(connection, school_id)
        tag = etag(school_id, version)
        if _held(tag, if_none_match):
            return RosterAnswer(tag, None)
        # Read after the version: on PostgreSQL each statement sees its own snapshot, so the
        # names are at least as new as the version they are sent under, never older.
        pupils = repository.roster_pupils(connection, school_id)
    return RosterAnswer(tag, Roster(version=version, pupils=pupils))
