"""What media knows from the consent service, as plain values: read by the pure policy, built by
the consent client (``consent_link``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hallpass_media.names import NameDetector, RosterName


@dataclass(frozen=True)
class PupilDecision:
    pupil_id: uuid.UUID
    allowed: bool
    reason: str


@dataclass(frozen=True)
class DecisionBatch:
    """Verdicts for one purpose, and the oldest roster version they were decided against (None
    when consent did not say, so that the roster must be asked for)."""

    decisions: dict[uuid.UUID, PupilDecision]
    roster_version: int | None


@dataclass(frozen=True)
class Roster:
    etag: str
    detector: NameDetector
    names: dict[uuid.UUID, RosterName]
    # The school's roster version these names are (None: not said); a decision answer names
    # the version it was decided against, and a roster at least that new needs no asking.
    version: int | None = None

    def display_name(self, pupil_id: uuid.UUID) -> str | None:
        name = self.names.get(pupil_id)
        if name is None:
            return None
        return f"{name.preferred_name or name.given_name} {name.family_name}"
