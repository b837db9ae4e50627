"""Where consent finds the records of a carer who signed in with their own account."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from sqlalchemy.exc import IntegrityError

from hallpass_consent.carers import policy, service
from hallpass_kit.auth import CarerLink, Principal
from hallpass_kit.db import Database, utcnow


class LocalCarerDirectory:
    """Consent's own tables as the kit's ``CarerDirectory``: the account's links, plus a link to
    each record holding the person's verified address that is not linked yet.

    Runs before the request's own transaction (while the caller is being identified): it reads
    in a read-only session and writes each new link in a short transaction of its own, so one
    school's link is kept even if the request that follows fails, and a read never waits on it.
    """

    def __init__(self, database: Database, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.database = database
        self.clock = clock

    def links(self, principal: Principal, token: str) -> Sequence[CarerLink]:
        with self.database.session(read_only=True) as session:
            links, known = service.account_links(session, principal)
            found = service.guardians_for_address(session, principal)
        raced = False
        for guardian in policy.guardians_to_link(found, known):
            try:
                with self.database.session() as session:
                    links.append(
                        service.link_by_email(session, principal, guardian, now=self.clock())
                    )
            except IntegrityError:
                # Another request of the same person linked it a moment ago.
                raced = True
        if raced:
            with self.database.session(read_only=True) as session:
                links, _known = service.account_links(session, principal)
        return links
