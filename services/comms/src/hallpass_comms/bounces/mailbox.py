"""The mailbox bounces arrive at, read over IMAP (imaplib) by a periodic job.

Each pass logs in (TLS, or STARTTLS; with a password, or XOAUTH2 with a token from the school's
Microsoft app registration or Google service account), lists the unseen messages, and for each:
asks its size (larger than ``bounce_max_message_bytes`` is left alone), fetches it without marking
it read (``BODY.PEEK[]``), parses it (parsing.py) and records the report in a transaction of its
own; only then is the message flagged ``\\Seen``, so a report is recorded once and a crash in
between means it is read again (and its lines, already kept, change nothing). A message that is not
a DSN, or cannot be read as one, is left unseen for a person and logged; it is not fetched again
while this process runs. A pass stops after ``MESSAGES_PER_PASS`` messages or ``PASS_SECONDS``,
whichever comes first; the socket has a timeout, so a silent server cannot hold the job either.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import ipaddress
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hallpass_comms.bounces.parsing import Unreadable, parse_report
from hallpass_comms.bounces.service import record_report
from hallpass_comms.delivery.oauth import (
    GOOGLE_SMTP_SCOPE,
    MICROSOFT_SMTP_SCOPE,
    TokenSource,
    google_tokens,
    microsoft_tokens,
    xoauth2_initial_response,
)
from hallpass_comms.delivery.transports import TransientFailure
from hallpass_comms.settings import CommsSettings
from hallpass_kit.db import Database, utcnow

logger = logging.getLogger("hallpass.comms.bounces")

MESSAGES_PER_PASS = 200
PASS_SECONDS = 60.0
SOCKET_TIMEOUT_SECONDS = 30.0
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class BounceMailboxError(Exception):
    """The mailbox could not be reached, logged in to or opened; the next pass tries again."""


@dataclass(frozen=True)
class PassReport:
    reports: int = 0  # DSNs recorded (and flagged seen)
    bounced: int = 0
    delayed: int = 0
    unmatched: int = 0  # DSNs about no envelope of ours (flagged seen all the same)
    left: int = 0  # not DSNs, unreadable or too large: left unseen


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BounceMailbox:
    def __init__(
        self,
        settings: CommsSettings,
        database: Database,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        ssl_context: ssl.SSLContext | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        host = settings.bounce_imap_host
        if not host:
            raise ValueError("BounceMailbox needs HALLPASS_COMMS_BOUNCE_IMAP_HOST")
        if settings.bounce_imap_security == "none" and not _loopback(host):
            raise ValueError(
                "HALLPASS_COMMS_BOUNCE_IMAP_SECURITY=none is only for a loopback address; "
                "use tls or starttls"
            )
        if not settings.bounce_imap_username:
            raise ValueError("the bounce mailbox needs HALLPASS_COMMS_BOUNCE_IMAP_USERNAME")
        if settings.bounce_imap_auth == "password" and settings.bounce_imap_password is None:
            raise ValueError(
                "the bounce mailbox needs HALLPASS_COMMS_BOUNCE_IMAP_PASSWORD, or "
                "HALLPASS_COMMS_BOUNCE_IMAP_AUTH=microsoft or google for a token"
            )
        if tokens is None and settings.bounce_imap_auth == "microsoft":
            # The same app registration that sends; Exchange Online reads IMAP with the
            # outlook.office365.com scope too (IMAP.AccessAsApp and FullAccess on the mailbox).
            tokens = microsoft_tokens(settings, MICROSOFT_SMTP_SCOPE)
        elif tokens is None and settings.bounce_imap_auth == "google":
            tokens = google_tokens(settings, GOOGLE_SMTP_SCOPE)
        self.tokens = tokens
        self.host = host
        self.settings = settings
        self.database = database
        self.clock = clock
        self.ssl_context = ssl_context or ssl.create_default_context()
        # Messages left for a person (not DSNs, unreadable, too large): not fetched again.
        self._left: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        connection: imaplib.IMAP4 | None = None
        try:
            if s.bounce_imap_security == "tls":
                connection = imaplib.IMAP4_SSL(
                    self.host,
                    s.bounce_imap_port,
                    ssl_context=self.ssl_context,
                    timeout=SOCKET_TIMEOUT_SECONDS,
                )
            else:
                connection = imaplib.IMAP4(
                    self.host, s.bounce_imap_port, timeout=SOCKET_TIMEOUT_SECONDS
                )
                if s.bounce_imap_security == "starttls":
                    connection.starttls(ssl_context=self.ssl_context)
            self._log_in(connection)
            kind, _ = connection.select(_quoted(s.bounce_imap_folder))
            if kind != "OK":
                raise BounceMailboxError(f"cannot open folder {s.bounce_imap_folder!r}")
        except (imaplib.IMAP4.error, OSError, ssl.SSLError) as exc:
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.shutdown()
            raise BounceMailboxError(
                f"bounce mailbox {self.host}:{s.bounce_imap_port}: {exc}"
            ) from exc
        return connection

    def _log_in(self, connection: imaplib.IMAP4) -> None:
        s = self.settings
        user = s.bounce_imap_username or ""
        if self.tokens is None:
            password = s.bounce_imap_password.get_secret_value() if s.bounce_imap_password else ""
            connection.login(user, password)
            return
        try:
            token = self.tokens.token(user)
        except TransientFailure as exc:
            raise BounceMailboxError(f"no token for the bounce mailbox: {exc}") from exc
        try:
            connection.authenticate(
                "XOAUTH2", lambda _challenge: xoauth2_initial_response(user, token).encode()
            )
        except imaplib.IMAP4.error:
            # Refused: the next pass asks for a fresh token.
            self.tokens.forget(user, token)
            raise

    def read_once(self) -> PassReport:
        """One pass over the unseen messages; one at a time per process."""
        with self._lock:
            connection = self._connect()
            try:
                return self._read(connection)
            except (imaplib.IMAP4.error, OSError) as exc:
                raise BounceMailboxError(f"bounce mailbox {self.host}: {exc}") from exc
            finally:
                try:
                    connection.logout()
                except (imaplib.IMAP4.error, OSError):
                    logger.debug("bounce mailbox: logout failed", exc_info=True)

    def _read(self, connection: imaplib.IMAP4) -> PassReport:
        folder = self.settings.bounce_imap_folder
        kind, data = connection.uid("SEARCH", "UNSEEN")
        if kind != "OK":
            raise BounceMailboxError(f"SEARCH UNSEEN refused: {data!r}")
        uids = [uid.decode("ascii") for uid in (data[0] or b"").split()] if data else []
        deadline = time.monotonic() + PASS_SECONDS
        totals = {"reports": 0, "bounced": 0, "delayed": 0, "unmatched": 0, "left": 0}
        handled = 0
        for uid in uids:
            if handled >= MESSAGES_PER_PASS or time.monotonic() > deadline:
                break  # the rest waits for the next pass
            if (folder, uid) in self._left:
                continue
            handled += 1
            outcome = self._one(connection, uid)
            totals[outcome[0]] += 1
            totals["bounced"] += outcome[1]
            totals["delayed"] += outcome[2]
        return PassReport(**totals)

    def _leave(self, uid: str, why: str) -> tuple[str, int, int]:
        logger.warning("bounce mailbox: message %s left unread: %s", uid, why)
        self._left.add((self.settings.bounce_imap_folder, uid))
        return ("left", 0, 0)

    def _one(self, connection: imaplib.IMAP4, uid: str) -> tuple[str, int, int]:
        limit = self.settings.bounce_max_message_bytes
        kind, data = connection.uid("FETCH", uid, "(RFC822.SIZE)")
        size = _size(data) if kind == "OK" else None
        if size is None:
            return self._leave(uid, "the server did not say its size")
        if size > limit:
            return self._leave(uid, f"{size} bytes, more than {limit}")
        kind, data = connection.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = _body(data) if kind == "OK" else None
        if raw is None:
            return self._leave(uid, "the server sent no body")
        try:
            report = parse_report(raw, max_bytes=limit)
        except Unreadable as exc:
            return self._leave(uid, f"not readable as a delivery status notification: {exc}")
        if report is None:
            return self._leave(uid, "not a delivery status notification")
        with self.database.session() as session:
            recorded = record_report(session, report, self.clock())
        connection.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        if not recorded.matched:
            logger.info("bounce mailbox: report %s is about no envelope here", report.report_id)
            return ("unmatched", 0, 0)
        return ("reports", recorded.bounced, recorded.delayed)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _size(data: list[object]) -> int | None:
    for item in data:
        text = item[0] if isinstance(item, tuple) else item
        if isinstance(text, bytes) and (found := _SIZE.search(text)):
            return int(found.group(1))
    return None


def _body(data: list[object]) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None
