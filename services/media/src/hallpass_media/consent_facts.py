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
class Roster:
    etag: str
    detector: NameDetector
    names: dict[uuid.UUID, RosterName]

    def display_name(self, pupil_id: uuid.UUID) -> str | None:
        name = self.names.get(pupil_id)
        if name is None:
            return None
        return f"{name.preferred_name or name.given_name} {name.family_name}"
