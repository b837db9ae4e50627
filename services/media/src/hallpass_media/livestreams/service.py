"""C3: who may appear in a livestream, asked of the consent service (livestream purpose)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from hallpass_kit.auth import Principal
from hallpass_kit.errors import Unprocessable
from hallpass_media.common import record_audit
from hallpass_media.context import MediaContext
from hallpass_media.livestreams.schemas import LivestreamCheck, LivestreamVerdict, OnCamera

PURPOSE = "livestream"


def _pupils_asked(
    media: MediaContext, principal: Principal, body: LivestreamCheck
) -> list[uuid.UUID]:
    """The pupils named, then every pupil on roll in the class, each once."""
    if not body.pupil_ids and body.class_id is None:
        raise Unprocessable("Give pupil_ids or a class_id.", code="nobody_to_check")
    pupils = list(dict.fromkeys(body.pupil_ids))
    if body.class_id is not None:
        pupils.extend(
            p
            for p in media.consent.pupils_of_class(principal.school, body.class_id)
            if p not in pupils
        )
    return pupils


def check(
    session: Session, media: MediaContext, principal: Principal, body: LivestreamCheck
) -> LivestreamVerdict:
    """Who must stay off camera; fails closed when consent cannot answer. Audited."""
    pupils = _pupils_asked(media, principal, body)
    decisions = media.consent.decisions(principal.school, PURPOSE, pupils)
    answers = [
        OnCamera(pupil_id=p, allowed=decisions[p].allowed, reason=decisions[p].reason)
        for p in pupils
    ]
    off = [a.pupil_id for a in answers if not a.allowed]
    record_audit(
        session,
        principal,
        "livestream.checked",
        str(body.class_id) if body.class_id else None,
        {"pupils": len(answers), "off_camera": len(off)},
    )
    return LivestreamVerdict(purpose=PURPOSE, pupils=answers, off_camera=off)
