"""SMTP without a password: XOAUTH2 with a provider's token, or a relay that needs no login.

fastapi-mail (the password transport) cannot log in with XOAUTH2, so these speak SMTP through
the standard library's ``smtplib``, with the same delivery semantics as the password transport:
the envelope is the From, To and Cc the service wrote; some recipients refused means sent;
every recipient refused with 5xx, or a 5xx to MAIL FROM or DATA, is permanent; other 4xx are
tried again; throttling replies raise Throttled; an unreachable server raises ServerUnavailable.
Each sending thread keeps one connection open between envelopes.

Both refuse to talk in clear: after EHLO the server must offer STARTTLS (or the connection is TLS
from the first byte), and the server's certificate is checked.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from email.message import EmailMessage

from hallpass_comms.delivery.headers import envelope, wire_bytes
from hallpass_comms.delivery.oauth import (
    GOOGLE_SMTP_SCOPE,
    MICROSOFT_SMTP_SCOPE,
    TokenSource,
    google_tokens,
    microsoft_tokens,
    xoauth2_initial_response,
)
from hallpass_comms.delivery.transports import (
    PermanentFailure,
    RecipientsRefused,
    ServerUnavailable,
    Throttled,
    TransientFailure,
    smtp_reply_failure,
)
from hallpass_comms.settings import CommsSettings

# The password transport's rule: a connection idle this long is probed with NOOP before use.
PROBE_AFTER_IDLE_SECONDS = 1.0


class _Connection:
    def __init__(self, smtp: smtplib.SMTP, mailbox: str | None) -> None:
        self.smtp = smtp
        self.mailbox = mailbox
        self.last_used = time.monotonic()
        self.lock = threading.Lock()  # close() may come from another thread

    def drop(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


class _SmtplibTransport:
    """Connections, TLS and reply codes; a subclass says how (and as whom) to log in."""

    def __init__(self, settings: CommsSettings) -> None:
        if not settings.smtp_host:
            raise ValueError("an SMTP transport needs HALLPASS_COMMS_SMTP_HOST")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.address = f"{self.host}:{self.port}"
        self._implicit_tls = settings.smtp_ssl_tls
        self._timeout = float(settings.smtp_timeout_seconds)
        self._tls = ssl.create_default_context()
        if settings.smtp_ca_file is not None:
            self._tls.load_verify_locations(cafile=str(settings.smtp_ca_file))
        if settings.smtp_client_certificate_file is not None:
            key = settings.smtp_client_key_file
            self._tls.load_cert_chain(
                str(settings.smtp_client_certificate_file), str(key) if key else None
            )
        self._local = threading.local()
        self._open: list[_Connection] = []
        self._open_lock = threading.Lock()

    # What a subclass decides ------------------------------------------------------------------

    def _login_as(self, sender: str) -> str | None:
        """Which mailbox the connection must be logged in as to send from ``sender`` (or None)."""
        return None

    def _login(self, smtp: smtplib.SMTP, mailbox: str) -> None:
        """Log ``smtp`` in as ``mailbox``, or raise a failure saying what is missing."""

    # Sending -----------------------------------------------------------------------------------

    def send(self, message: EmailMessage) -> None:
        try:
            sender, recipients = envelope(message)
            data = wire_bytes(message)
        except (ValueError, IndexError, TypeError) as exc:
            raise PermanentFailure(f"the message has no usable envelope: {exc}") from exc
        connection = self._connection(self._login_as(sender))
        with connection.lock:
            try:
                refused = connection.smtp.sendmail(sender, recipients, data)
            except smtplib.SMTPRecipientsRefused as exc:
                answers = {
                    address: (code, reply.decode("utf-8", "replace"))
                    for address, (code, reply) in exc.recipients.items()
                }
                text = "; ".join(f"{a}: {c} {r}" for a, (c, r) in answers.items())
                if all(500 <= code < 600 for code, _ in answers.values()):
                    raise PermanentFailure(f"every recipient refused: {text}") from exc
                raise TransientFailure(f"recipients refused for now: {text}") from exc
            except smtplib.SMTPResponseException as exc:
                failure = smtp_reply_failure(exc.smtp_code, _text(exc.smtp_error))
                if not isinstance(failure, PermanentFailure):
                    self._discard(connection)
                raise failure from exc
            except (smtplib.SMTPException, OSError) as exc:
                self._discard(connection)
                raise ServerUnavailable(f"{self.address}: {type(exc).__name__}: {exc}") from exc
            finally:
                connection.last_used = time.monotonic()
        if refused:
            raise RecipientsRefused(
                {address: f"{code} {_text(reply)}" for address, (code, reply) in refused.items()}
            )

    def _connection(self, mailbox: str | None) -> _Connection:
        current: _Connection | None = getattr(self._local, "connection", None)
        if current is not None:
            if current.mailbox != mailbox:
                # An SMTP session logs in once: another sender needs a session of its own.
                self._discard(current)
            elif time.monotonic() - current.last_used > PROBE_AFTER_IDLE_SECONDS:
                try:
                    code, _ = current.smtp.noop()
                    if code != 250:
                        self._discard(current)
                except (smtplib.SMTPException, OSError):
                    self._discard(current)
            kept: _Connection | None = getattr(self._local, "connection", None)
            if kept is not None:
                return kept
        smtp = self._connect()
        try:
            if mailbox is not None:
                self._login(smtp, mailbox)
        except BaseException:
            smtp.close()
            raise
        connection = _Connection(smtp, mailbox)
        self._local.connection = connection
        with self._open_lock:
            self._open.append(connection)
        return connection

    def _connect(self, timeout: float | None = None) -> smtplib.SMTP:
        timeout = self._timeout if timeout is None else timeout
        smtp: smtplib.SMTP | None = None
        try:
            if self._implicit_tls:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=self._tls)
                smtp.ehlo()
                return smtp
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise PermanentFailure(
                    f"the server {self.address} did not offer STARTTLS: Hallpass does not send "
                    "mail or credentials in clear (turn on TLS at the server, or use port 465 "
                    "with HALLPASS_COMMS_SMTP_SSL_TLS=true)"
                )
            smtp.starttls(context=self._tls)
            smtp.ehlo()
            return smtp
        except PermanentFailure:
            if smtp is not None:
                smtp.close()
            raise
        except ssl.SSLCertVerificationError as exc:
            if smtp is not None:
                smtp.close()
            raise ServerUnavailable(
                f"the certificate of {self.address} is not trusted: {exc.verify_message} "
                "(HALLPASS_COMMS_SMTP_CA_FILE names extra authorities to trust)"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if smtp is not None:
                smtp.close()
            failure = smtp_reply_failure(exc.smtp_code, _text(exc.smtp_error))
            if isinstance(failure, Throttled):
                raise failure from exc
            # A refused greeting or STARTTLS is about the server, not the envelope.
            raise ServerUnavailable(f"{self.address} refused the connection: {failure}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None:
                smtp.close()
            raise ServerUnavailable(f"cannot reach {self.address}: {exc}") from exc

    def _discard(self, connection: _Connection) -> None:
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._open_lock:
            if connection in self._open:
                self._open.remove(connection)
        connection.drop()

    # Readiness and shutdown ----------------------------------------------------------------------

    READY_TIMEOUT_SECONDS = 2.0

    def ready(self) -> None:
        """Raise ServerUnavailable unless the server answers and offers TLS now (``/readyz``)."""
        try:
            smtp = self._connect(self.READY_TIMEOUT_SECONDS)
        except PermanentFailure as exc:
            raise ServerUnavailable(str(exc)) from exc
        _Connection(smtp, None).drop()

    def close(self) -> None:
        """Say QUIT on every open connection; a later send opens a new one."""
        with self._open_lock:
            connections, self._open = list(self._open), []
        for connection in connections:
            with connection.lock:
                connection.drop()
        self._local = threading.local()


class _XOAuth2Answer:
    """smtplib's authobject: the initial response, then an empty line to any challenge.

    After a refusal the server sends a 334 challenge (a JSON error document); the client answers
    with an empty line and the server ends with 535.
    """

    def __init__(self, mailbox: str, token: str) -> None:
        self._initial = xoauth2_initial_response(mailbox, token)

    def __call__(self, challenge: bytes | None = None) -> str:
        return self._initial if challenge is None else ""


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


class RelayTransport(_SmtplibTransport):
    """An SMTP relay that knows the school by its address or certificate (no login).

    Microsoft 365's inbound connector and Google Workspace's SMTP relay service; STARTTLS is
    required and the client certificate, if configured, is shown during the handshake.
    """


class XOAuth2Transport(_SmtplibTransport):
    """SMTP AUTH XOAUTH2: each member of staff's mail is sent logged in as their own mailbox.

    Microsoft (``smtp.office365.com``): the app's token is good for every mailbox on which its
    service principal has FullAccess. Google (``smtp.gmail.com``): one delegated token per mailbox.
    A refused login is retried once with a fresh token (the cached one may have been revoked).
    """

    def __init__(self, settings: CommsSettings, tokens: TokenSource | None = None) -> None:
        super().__init__(settings)
        provider = settings.resolved_oauth_provider()
        self.provider = provider or "microsoft"
        if tokens is None:
            if provider == "google":
                tokens = google_tokens(settings, GOOGLE_SMTP_SCOPE)
            else:
                tokens = microsoft_tokens(settings, MICROSOFT_SMTP_SCOPE)
        self.tokens = tokens

    def _login_as(self, sender: str) -> str | None:
        return sender

    def close(self) -> None:
        super().close()
        self.tokens.close()

    def _login(self, smtp: smtplib.SMTP, mailbox: str) -> None:
        if not smtp.has_extn("auth") or "XOAUTH2" not in smtp.esmtp_features["auth"].upper():
            raise ServerUnavailable(f"{self.address} does not offer AUTH XOAUTH2")
        for attempt in range(2):
            token = self.tokens.token(mailbox)
            try:
                smtp.auth("XOAUTH2", _XOAuth2Answer(mailbox, token), initial_response_ok=True)
                return
            except smtplib.SMTPAuthenticationError as exc:
                reply = _text(exc.smtp_error)
                if attempt == 0:
                    self.tokens.forget(mailbox, token)
                    continue
                raise self._login_refused(mailbox, exc.smtp_code, reply) from exc
            except smtplib.SMTPResponseException as exc:
                raise smtp_reply_failure(exc.smtp_code, _text(exc.smtp_error)) from exc
            except (smtplib.SMTPException, OSError) as exc:
                raise ServerUnavailable(f"{self.address}: {type(exc).__name__}: {exc}") from exc

    def _login_refused(self, mailbox: str, code: int, reply: str) -> Exception:
        said = f"{code} {reply}"
        if "5.7.139" in reply:
            # Tenant-wide: every mailbox meets the same refusal, so mail waits rather than fails.
            return ServerUnavailable(
                f"Exchange has SMTP AUTH turned off for the tenant ({said}): turn on "
                "authenticated SMTP (Set-TransportConfig -SmtpClientAuthenticationDisabled "
                "$false, or per mailbox with Set-CASMailbox -SmtpClientAuthenticationDisabled "
                "$false)"
            )
        if self.provider == "google":
            return PermanentFailure(
                f"Gmail refused XOAUTH2 for {mailbox} ({said}): the service account's "
                f"domain-wide delegation must include {GOOGLE_SMTP_SCOPE} and the user must "
                "have Gmail turned on"
            )
        return PermanentFailure(
            f"Exchange refused XOAUTH2 for {mailbox} ({said}): the app needs FullAccess on that "
            f"mailbox (Add-MailboxPermission -Identity {mailbox} -User <service principal id> "
            "-AccessRights FullAccess) and SMTP AUTH allowed for it"
        )
