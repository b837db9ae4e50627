"""Files stored before their rows commit are removed again if the transaction does not commit.

"Nothing is stored" on a refusal or a failure: the object is put first (so no row ever points at
a missing file), and a rollback of the session that was to record it deletes it again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from hallpass_media.storage import Storage

logger = logging.getLogger("hallpass.media.storage")


def delete_on_rollback(session: Session, storage: Storage, key: str) -> None:
    # Listeners cannot be removed while the session dispatches them; a flag retires this one
    # instead (the session lives for one request).
    settled = False

    def compensate(_session: Session, previous: SessionTransaction, *_args: Any) -> None:
        nonlocal settled
        # A savepoint rolled back inside the request is not the request failing.
        if settled or previous.nested or previous.parent is not None:
            return
        settled = True
        try:
            storage.delete(key)
        except Exception:
            logger.exception("could not remove %s after a failed transaction", key)

    def committed(_session: Session) -> None:
        nonlocal settled
        settled = True

    event.listen(session, "after_soft_rollback", compensate)
    event.listen(session, "after_commit", committed)
