"""Where a rendered message goes: an SMTP server, Microsoft Graph, the Gmail API, or .eml files.

Every transport sorts what goes wrong into the kinds the worker acts on: a transient failure
(server down, timeout, SMTP 4xx) is tried again later; throttling (the provider asking us to slow
down) is tried again later without counting against the envelope; a permanent one (SMTP 5xx, an
address the server will never take, a mailbox the app may not send from) is recorded and left
alone. This module holds the password SMTP and .eml transports and chooses among all of them;
the others live in ``smtp_sessions`` (XOAUTH2, relay), ``graph`` and ``gmail``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import smtplib
import tempfile
import threading
import time
from contextlib import AsyncExitStack, suppress
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib
from fastapi_mail import ConnectionConfig
from fastapi_mail.connection import Connection
from fastapi_mail.errors import ConnectionErrors
from pydantic import SecretStr

from hallpass_comms.delivery.headers import envelope, wire_bytes
from hallpass_comms.delivery.rendering import DELIVERY_HEADER
from hallpass_comms.settings import CommsSettings
from hallpass_kit.settings import CommonSettings, Environment, InsecureSettingsError


class TransientFailure(Exception):
    """Not sent this time; the same message may well go through later."""


class ServerUnavailable(TransientFailure):
    """The mail server could not be reached at all: nothing about this envelope is at fault."""


class Throttled(TransientFailure):
    """The provider asked us to slow down (SMTP 421 / 451 4.7.x, Graph or Gmail 429).

    Nothing is wrong with the envelope: it is tried again after ``retry_after`` (the provider's
    own ``Retry-After`` when it gave one) without using up an attempt, and the sender slows down.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """Not sent, and sending the same message again will not change that."""


class RecipientsRefused(Exception):
    """Accepted for some recipients and refused for others.

    The message is on its way to those who were accepted, so it counts as sent; sending it again
    would give them a second copy. ``refused`` maps each refused address to the server's answer.
    """

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__(
            "refused by the server: " + "; ".join(f"{a}: {r}" for a, r in refused.items())
        )
        self.refused = refused


class MailTransport(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand ``message`` over for delivery, or raise TransientFailure / PermanentFailure."""
        ...


# --------------------------------------------------------------------------------------------
# What a provider's answer means

# Enhanced status codes (RFC 3463) in a reply: "451 4.7.500 Server busy".
_ENHANCED_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Daily sending quotas answered with a 5xx: Exchange Online ("554 5.2.0 STOREDRV.Submission.
# Exception:SubmissionQuotaExceededException") and Gmail ("550 5.4.5 Daily user sending limit
# exceeded"). The message is fine; the mailbox may send again tomorrow.
_QUOTA_REPLIES = re.compile(
    r"SubmissionQuotaExceeded|sending (?:quota|limit) exceeded|5\.4\.5 Daily", re.IGNORECASE
)
QUOTA_RETRY_AFTER_SECONDS = 3600.0


def enhanced_status(reply: str) -> tuple[int, int, int] | None:
    found = _ENHANCED_STATUS.match(reply)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3))


def smtp_reply_failure(code: int, reply: str) -> Exception:
    """The failure a reply to the connection, MAIL FROM or DATA stands for.

    Not for replies to one RCPT: a greylisting ``451 4.7.1`` there is about that recipient and
    is retried like any 4xx. Providers throttle with ``421`` (Gmail "421 4.7.0 Try again
    later"), ``451 4.7.x`` (Exchange "451 4.7.500 Server busy"), ``432 4.3.2`` (Exchange's
    concurrent connection limit) and, for a daily quota, a 5xx naming the quota.
    """
    text = f"{code} {reply}".strip()
    status = enhanced_status(reply)
    if code == 421 or code == 432 or (400 <= code < 500 and status is not None and status[1] == 7):
        return Throttled(f"the server asked to slow down: {text}")
    if _QUOTA_REPLIES.search(reply):
        return Throttled(
            f"the mailbox reached its sending quota: {text}",
            retry_after=QUOTA_RETRY_AFTER_SECONDS,
        )
    if 500 <= code < 600:
        return PermanentFailure(text)
    return TransientFailure(text)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """An HTTP ``Retry-After`` (seconds, or an HTTP date) as seconds from now, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with suppress(TypeError, ValueError, IndexError):
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        current = time.time() if now is None else now
        return max(0.0, moment.timestamp() - current)
    return None


# --------------------------------------------------------------------------------------------
# SMTP through fastapi-mail


class SmtpTransport:
    """Sends over SMTP with fastapi-mail's connection handling (TLS, login, timeouts).

    fastapi-mail's ``FastMail.send_message`` builds its own MIME from a ``MessageSchema``: it adds a
    second ``Message-ID`` header when one is given in ``headers``, invents display names for bare
    addresses and wraps the alternatives in ``multipart/related``. The message we rendered is the
    one we keep (and the one the .eml transport writes), so it goes unchanged through the
    fastapi-mail ``Connection``'s SMTP session.

    fastapi-mail is asyncio code; each sending thread gets an event loop and a connection of its
    own, so several worker threads send side by side. A connection stays open between envelopes:
    a bulk send pays for one TLS handshake and login per thread, not one per family.
    """

    # A connection idle longer than this is probed with NOOP before use: the server may have
    # closed it (restart, idle timeout) and a send on a dead connection fails for nothing.
    PROBE_AFTER_IDLE_SECONDS = 1.0

    def __init__(self, settings: CommsSettings) -> None:
        if not settings.smtp_host:
            raise ValueError("SmtpTransport needs HALLPASS_COMMS_SMTP_HOST")
        # model_construct: fastapi-mail's settings class would otherwise also read MAIL_* variables
        # from the environment and insist on a default From that our messages never use.
        self._config = ConnectionConfig.model_construct(
            MAIL_USERNAME=settings.smtp_username or "",
            MAIL_PASSWORD=SecretStr(settings.smtp_password or ""),
            MAIL_PORT=settings.smtp_port,
            MAIL_SERVER=settings.smtp_host,
            MAIL_STARTTLS=settings.smtp_starttls,
            MAIL_SSL_TLS=settings.smtp_ssl_tls,
            USE_CREDENTIALS=settings.smtp_username is not None,
            VALIDATE_CERTS=True,
            TIMEOUT=settings.smtp_timeout_seconds,
            SUPPRESS_SEND=0,
        )
        self.address = f"{settings.smtp_host}:{settings.smtp_port}"
        self._server = (settings.smtp_host, settings.smtp_port, settings.smtp_ssl_tls)
        self._local = threading.local()
        self._sessions: list[_SmtpSession] = []
        self._sessions_lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        session: _SmtpSession | None = getattr(self._local, "session", None)
        if session is None:
            session = _SmtpSession(self._config, self.address)
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        session.send(message)

    # A readiness probe must be answered within seconds (hallpass_kit.readiness).
    READY_TIMEOUT_SECONDS = 2.0

    def ready(self) -> None:
        """Raise ServerUnavailable unless the relay answers EHLO and NOOP now (``/readyz``).

        A connection of its own, not a sending thread's: a probe never waits behind a send. No
        login: the relay answering is what readiness means; a refused login shows in deliveries.
        """
        host, port, ssl_tls = self._server
        connect = smtplib.SMTP_SSL if ssl_tls else smtplib.SMTP
        try:
            with connect(host, port, timeout=self.READY_TIMEOUT_SECONDS) as smtp:
                code, answer = smtp.ehlo()
                if code != 250:
                    raise ServerUnavailable(f"{self.address} answered EHLO with {code} {answer!r}")
                code, answer = smtp.noop()
                if code != 250:
                    raise ServerUnavailable(f"{self.address} answered NOOP with {code} {answer!r}")
        except (smtplib.SMTPException, OSError) as exc:
            raise ServerUnavailable(f"cannot reach {self.address}: {exc}") from exc

    def close(self) -> None:
        """Say QUIT on every thread's connection and release their event loops.

        A later send opens a new loop and connection for its thread.
        """
        with self._sessions_lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close()


class _SmtpSession:
    """One thread's event loop and SMTP connection."""

    def __init__(self, config: ConnectionConfig, address: str) -> None:
        self._config = config
        self._address = address
        self._lock = threading.Lock()  # close() may come from another thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Connection | None = None
        self._exits: AsyncExitStack | None = None
        self._last_used = 0.0

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._send(message))

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            if loop is None:
                return
            try:
                loop.run_until_complete(self._disconnect())
            finally:
                loop.close()

    async def _send(self, message: EmailMessage) -> None:
        try:
            connection = await self._connect()
            # Our bytes and our envelope: aiosmtplib's send_message would flatten the message
            # again with the email package's folding and read recipients from decoded headers.
            sender, recipients = envelope(message)
            refused, _reply = await connection.session.sendmail(
                sender, recipients, wire_bytes(message)
            )
        except ConnectionErrors as exc:
            # fastapi-mail wraps every connect and login error; the cause is in the context.
            await self._disconnect()
            raise ServerUnavailable(
                f"cannot reach or log in to {self._address}: {exc.__context__ or exc.expression}"
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            answer = "; ".join(
                f"{refusal.recipient}: {refusal.code} {refusal.message}"
                for refusal in exc.recipients
            )
            if all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"every recipient refused: {answer}") from exc
            raise TransientFailure(f"recipients refused for now: {answer}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            failure = smtp_reply_failure(exc.code, exc.message)
            if not isinstance(failure, PermanentFailure):
                await self._disconnect()
            raise failure from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise PermanentFailure(str(exc)) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Disconnected or timed out mid-conversation; a fresh connection will be tried later.
            await self._disconnect()
            raise ServerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # an address aiosmtplib will not put in an envelope
            raise PermanentFailure(str(exc)) from exc
        finally:
            self._last_used = time.monotonic()
        if refused:
            raise RecipientsRefused(
                {address: f"{answer.code} {answer.message}" for address, answer in refused.items()}
            )

    async def _connect(self) -> Connection:
        connection = self._connection
        if connection is not None:
            idle = time.monotonic() - self._last_used
            if not connection.session.is_connected:
                await self._disconnect()
            elif idle > SmtpTransport.PROBE_AFTER_IDLE_SECONDS:
                try:
                    await connection.session.noop()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    await self._disconnect()
            if self._connection is not None:
                return self._connection
        exits = AsyncExitStack()
        connection = Connection(self._config)
        try:
            self._connection = await exits.enter_async_context(connection)
        except BaseException:
            # A refused login leaves fastapi-mail's session connected, and nobody else holds it.
            session: aiosmtplib.SMTP | None = getattr(connection, "session", None)
            if session is not None:
                session.close()
            raise
        self._exits = exits
        return self._connection

    async def _disconnect(self) -> None:
        exits, connection = self._exits, self._connection
        self._exits = self._connection = None
        if exits is None or connection is None:
            return
        try:
            await exits.aclose()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            # The server went first; drop our end without ceremony.
            connection.session.close()


# --------------------------------------------------------------------------------------------
# .eml files (embedded default)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class EmlFolderTransport:
    """Writes each envelope as ``<utc-time>-<delivery-id>.eml`` in one folder a person can open.

    The write is atomic (temporary file, then rename), so a reader never sees half a message. A
    resend of the same envelope replaces its file instead of adding a second one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def file_name(self, message: EmailMessage) -> str:
        key = message.get(DELIVERY_HEADER) or message.get("Message-ID")
        if not key:
            raise PermanentFailure(f"message has neither {DELIVERY_HEADER} nor Message-ID")
        stem = _SAFE_NAME.sub("_", str(key).strip("<>")).strip("._") or "message"
        existing = sorted(self.folder.glob(f"*-{stem}.eml"))
        if existing:
            return existing[0].name
        return f"{_timestamp(message)}-{stem}.eml"

    def send(self, message: EmailMessage) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / self.file_name(message)
            data = wire_bytes(message, linesep="\n")
            descriptor, temporary = tempfile.mkstemp(prefix=".sending-", dir=self.folder)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise
            _sync_directory(self.folder)
        except OSError as exc:  # disk full, permissions: may be fixed without touching the row
            raise TransientFailure(f"cannot write to {self.folder}: {exc}") from exc


def _timestamp(message: EmailMessage) -> str:
    moment: dt.datetime | None = None
    date = message.get("Date")
    if date:
        with suppress(TypeError, ValueError):
            moment = parsedate_to_datetime(str(date))
    if moment is None or moment.tzinfo is None:
        moment = dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _sync_directory(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class MailSettingsError(InsecureSettingsError):
    """The mail settings cannot work; raised at start-up, naming the setting to change.

    An InsecureSettingsError so that ``hallpass serve`` reports it like the other settings it
    refuses, with the message and no traceback.
    """


def transport_from_settings(settings: CommsSettings, common: CommonSettings) -> MailTransport:
    """The transport HALLPASS_COMMS_MAIL_TRANSPORT names (docs/mail-delivery.md).

    Unset: SMTP with a password when a host is configured, otherwise the .eml outbox under the
    data dir. Imports are local: a deployment sending over SMTP never loads the HTTP transports.
    """
    name = settings.resolved_mail_transport()
    if common.env is Environment.production:
        _refuse_in_production(settings, name)
    try:
        return _transport(settings, common, name)
    except (OSError, ValueError) as exc:
        # A key or certificate file that is missing or not what it should be.
        raise MailSettingsError(
            f"HALLPASS_COMMS_MAIL_TRANSPORT={name} cannot start: {exc}"
        ) from exc


def _transport(settings: CommsSettings, common: CommonSettings, name: str) -> MailTransport:
    if name == "eml":
        return EmlFolderTransport(common.data_dir / "outbox")
    if name == "smtp":
        return SmtpTransport(settings)
    if name in {"smtp_oauth2", "smtp_relay"}:
        from hallpass_comms.delivery.smtp_sessions import RelayTransport, XOAuth2Transport

        if name == "smtp_relay":
            return RelayTransport(settings)
        return XOAuth2Transport(settings)
    if name == "graph":
        from hallpass_comms.delivery.graph import GraphTransport

        return GraphTransport(settings)
    from hallpass_comms.delivery.gmail import GmailTransport

    return GmailTransport(settings)


def _refuse_in_production(settings: CommsSettings, name: str) -> None:
    # Loopback stand-ins and plain HTTP are for trying things out; in production a token or a
    # message sent in clear would be readable on the path.
    urls = {
        "graph": ("microsoft_login_url", "microsoft_graph_url"),
        "gmail": ("google_token_url", "google_gmail_url"),
        "smtp_oauth2": ("microsoft_login_url", "google_token_url"),
    }.get(name, ())
    for field in urls:
        url: str = getattr(settings, field)
        if not url.startswith("https://"):
            raise MailSettingsError(
                f"production mode refuses HALLPASS_COMMS_{field.upper()}={url}: it must be https"
            )
