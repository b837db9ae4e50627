"""A real SMTP server on loopback for mail tests and benchmarks (aiosmtpd).

It records every message it accepts, parsed with ``email.policy.default``, with the envelope it
came in; it can refuse recipients (4xx or 5xx) one by one or all at once, and it can be stopped and
started again on the same port to play a relay that goes down for a while.

    with SmtpServer() as smtp:
        ...  # send to 127.0.0.1:smtp.port
        smtp.stop(); ...; smtp.start()
        assert smtp.count_by_message_id()[message_id] == 1
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    logged_in_as: str | None = None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def addresses(self, header: str) -> list[str]:
        """The bare addresses in ``header`` (display names dropped), lower-cased."""
        values = [str(value) for value in self.message.get_all(header, [])]
        return [address.lower() for _name, address in getaddresses(values) if address]


class RecordingHandler:
    """aiosmtpd handler: accepts, refuses on demand, and keeps what it accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._refused_recipients: dict[str, str] = {}
        self._refuse_all: str | None = None
        self._refuse_data: str | None = None
        self._throttle: tuple[str, int] | None = None
        self.refusals = 0

    # Configuration -------------------------------------------------------------------------

    def refuse(self, reply: str, *recipients: str) -> None:
        """Answer ``reply`` (e.g. "451 4.7.1 try later") to RCPT for ``recipients``, or for all."""
        with self._lock:
            if recipients:
                for recipient in recipients:
                    self._refused_recipients[recipient.lower()] = reply
            else:
                self._refuse_all = reply

    def refuse_data(self, reply: str) -> None:
        """Answer ``reply`` to DATA, after the recipients were accepted."""
        with self._lock:
            self._refuse_data = reply

    def throttle(self, reply: str, times: int = 1) -> None:
        """Answer ``reply`` (e.g. "451 4.7.0 too many messages, slow down") to the next
        ``times`` messages at DATA, as a provider does when a mailbox sends too fast."""
        with self._lock:
            self._throttle = (reply, times)

    def accept_all(self) -> None:
        with self._lock:
            self._refused_recipients.clear()
            self._refuse_all = None
            self._refuse_data = None
            self._throttle = None

    # What arrived ---------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    # aiosmtpd hooks -------------------------------------------------------------------------

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            reply = self._refuse_all or self._refused_recipients.get(address.lower())
            if reply is not None:
                self.refusals += 1
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self._refuse_data is not None:
                self.refusals += 1
                return self._refuse_data
            if self._throttle is not None:
                reply, times = self._throttle
                self._throttle = (reply, times - 1) if times > 1 else None
                self.refusals += 1
                return reply
        raw = bytes(envelope.original_content or envelope.content)
        parsed = BytesParser(policy=default_policy).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        with self._lock:
            self._received.append(
                Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, parsed, login)
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    """The loopback server: one port for its whole life, across stops and starts.

    With ``credentials`` it offers AUTH (over plain text: loopback only) and accepts only that
    login and password; a client may still send without logging in.
    """

    def __init__(self, port: int | None = None, credentials: tuple[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.credentials = credentials
        self._controller: Controller | None = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        login, password = self.credentials
        ok = isinstance(auth_data, LoginPassword) and auth_data == (
            login.encode(),
            password.encode(),
        )
        # handled=False: aiosmtpd answers 535 itself when the login is refused.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> None:
        if self._controller is not None:
            return
        options: dict[str, Any] = {}
        if self.credentials is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = Controller(self.handler, hostname=HOST, port=self.port, **options)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Close the listening socket and every open connection: the relay is down."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def count_by_message_id(self) -> Counter[str]:
        return Counter(item.message_id for item in self.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages arrived (for a worker running in a thread)."""
        deadline = time.monotonic() + timeout
        while len(received := self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return received

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
