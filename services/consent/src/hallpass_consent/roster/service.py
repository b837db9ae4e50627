"""The roster of pupil names that name detection (media) matches against, versioned so a reader
that holds the current version is answered without the names."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from hallpass_consent.roster import repository
from hallpass_consent.roster.schemas import Roster
from hallpass_consent.schools.repository import get_school
from hallpass_kit.auth import Principal


@dataclass(frozen=True, slots=True)
class RosterAnswer:
    """The roster's ETag, and the roster itself unless the reader already holds this version."""

    etag: str
    roster: Roster | None


def _held(etag: str, if_none_match: str | None) -> bool:
    return if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}


def roster(session: Session, principal: Principal, if_none_match: str | None) -> RosterAnswer:
    school = get_school(session, principal.school)
    version = school.roster_version if school else 0
    etag = f'W/"roster-{principal.school}-{version}"'
    if _held(etag, if_none_match):
        return RosterAnswer(etag, None)
    return RosterAnswer(
        etag, Roster(version=version, pupils=repository.roster_pupils(session, principal.school))
    )
