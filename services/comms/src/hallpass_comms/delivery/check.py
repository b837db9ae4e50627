"""``hallpass comms check-transport``: send one test message and say exactly what is missing.

The steps are the ones every envelope goes through, one at a time so a failure names its step:
the settings, a token for the sender's mailbox (OAuth transports), the connection and the send.
Each failure is put in the words of what to change (the app's secret, a mailbox permission, the
relay's TLS), since the person running this is setting the school's tenant up.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime

from hallpass_comms.delivery.headers import (
    RENDERING,
    HeaderRefused,
    address_header,
    text_header,
    token_header,
)
from hallpass_comms.delivery.oauth import TokenSource
from hallpass_comms.delivery.rendering import RenderError, parse_address
from hallpass_comms.delivery.transports import (
    MailTransport,
    PermanentFailure,
    RecipientsRefused,
    TransientFailure,
)
from hallpass_kit.db import utcnow

SUBJECT = "Hallpass test message"


@dataclass
class CheckReport:
    """What was tried, in order, and whether the test message was sent."""

    lines: list[str] = field(default_factory=list)
    sent: bool = False


def test_message(sender: str, recipient: str) -> EmailMessage:
    """A message shaped like every envelope (our own From, To, Message-ID, Date, Subject)."""
    sender_address = parse_address(sender)
    recipient_address = parse_address(recipient)
    message = EmailMessage(policy=RENDERING)
    message["From"] = address_header([sender_address])
    message["To"] = address_header([recipient_address])
    message["Subject"] = text_header("Subject", SUBJECT)
    message["Date"] = token_header(format_datetime(utcnow()))
    message["Message-ID"] = token_header(f"<check-{uuid.uuid4()}@{sender_address.domain}>")
    message.set_content(
        "This is a test message from Hallpass (hallpass comms check-transport).\n\n"
        f"It was sent as {sender} to {recipient}. If it reached you, Hallpass can send mail "
        "from that address.\n",
        cte="quoted-printable",
    )
    return message


def check_transport(
    transport: MailTransport, sender: str, recipient: str, *, name: str
) -> CheckReport:
    """Try each step of sending as ``sender`` to ``recipient`` through ``transport``."""
    report = CheckReport()
    try:
        message = test_message(sender, recipient)
    except (HeaderRefused, RenderError) as exc:
        report.lines.append(f"not an address Hallpass can send with: {exc}")
        return report
    where = getattr(transport, "address", None) or getattr(transport, "folder", "")
    report.lines.append(f"transport: {name} ({where})" if where else f"transport: {name}")
    tokens: TokenSource | None = getattr(transport, "tokens", None)
    if tokens is not None and not _step(
        report, f"token for {sender} from {tokens.description}", tokens.token, sender
    ):
        return report
    try:
        transport.send(message)
    except RecipientsRefused as exc:
        report.lines.append(f"sent, but not to everyone: {exc}")
        report.sent = True
        return report
    except (TransientFailure, PermanentFailure) as exc:
        report.lines.append(f"not sent: {explain(str(exc), sender)}")
        return report
    report.lines.append(f"sent: {SUBJECT} from {sender} to {recipient} ({message['Message-ID']})")
    report.sent = True
    return report


def _step(report: CheckReport, what: str, action: Callable[[str], object], argument: str) -> bool:
    try:
        action(argument)
    except (TransientFailure, PermanentFailure) as exc:
        report.lines.append(f"{what}: failed: {explain(str(exc), argument)}")
        return False
    report.lines.append(f"{what}: ok")
    return True


def explain(failure: str, sender: str) -> str:
    """A provider's refusal with what to change added, where the answer alone does not say."""
    if "SendAsDenied" in failure or "5.7.60" in failure:
        return (
            f"Exchange refused SendAs for {sender}: the app needs SendAs on that mailbox "
            f"(Add-RecipientPermission -Identity {sender} -Trustee <service principal id> "
            f"-AccessRights SendAs) ({failure})"
        )
    return failure
