"""Reading a delivery status notification (RFC 3464) with the standard library's email package.

A DSN is ``multipart/report; report-type=delivery-status``: a human-readable part, a
``message/delivery-status`` part (one block of fields about the report, then one block per
recipient: ``Final-Recipient``, ``Action``, ``Status``, ``Diagnostic-Code``) and the returned
message (``message/rfc822``) or just its headers (``text/rfc822-headers``), whose Message-ID is
the envelope's own. Exchange Online and Gmail both send this shape.

Everything here is hostile input: a message too large is refused before parsing, and any
error of the parser is an ``Unreadable`` report, never an exception that stops the reader.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser
from typing import Any

from hallpass_comms.delivery.rendering import DELIVERY_HEADER

# RFC 3464 2.3.3: what happened to the message for this recipient.
ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
# Longest text kept of a diagnostic: the server's words, not a whole transcript.
DIAGNOSTIC_LIMIT = 1000


class Unreadable(Exception):
    """Says it is a DSN (or cannot even be parsed) but cannot be read as one."""


@dataclass(frozen=True)
class RecipientReport:
    recipient: str
    action: str
    status: str
    diagnostic: str | None

    @property
    def failed(self) -> bool:
        """A permanent failure: 5.x.x with Action failed (RFC 3463, RFC 3464)."""
        return self.action == "failed" and self.status.startswith("5")


@dataclass(frozen=True)
class DeliveryReport:
    report_id: str  # the DSN's own Message-ID, or a digest of its bytes when it has none
    original_message_id: str | None  # the Message-ID of the returned message: our envelope's
    delivery_key: str | None  # our X-Hallpass-Delivery header, when the headers came back
    recipients: tuple[RecipientReport, ...]


def parse_report(raw: bytes, *, max_bytes: int) -> DeliveryReport | None:
    """The report in ``raw``; None when it is not a delivery status notification."""
    if len(raw) > max_bytes:
        raise Unreadable(f"{len(raw)} bytes, more than the {max_bytes} a report may have")
    try:
        return _parse(raw)
    except Unreadable:
        raise
    except Exception as exc:  # the email package on hostile input: anything can go wrong
        raise Unreadable(f"{type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes) -> DeliveryReport | None:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    parts = message.get_payload()
    if not isinstance(parts, list):
        raise Unreadable("a multipart/report with no parts")
    status_part = _first(parts, "message/delivery-status")
    if status_part is None:
        raise Unreadable("no message/delivery-status part")
    blocks = status_part.get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise Unreadable("the delivery-status part has no per-recipient fields")
    recipients = tuple(report for block in blocks[1:] if (report := _recipient(block)) is not None)
    if not recipients:
        raise Unreadable("no recipient with an Action and a Status")
    returned = _returned_headers(parts)
    original = _message_id(returned.get("Message-ID") if returned is not None else None)
    key = None
    if returned is not None:
        key = str(returned.get(DELIVERY_HEADER) or "").strip() or None
    own = _message_id(message.get("Message-ID"))
    report_id = own or "sha256:" + hashlib.sha256(raw).hexdigest()
    return DeliveryReport(report_id, original, key, recipients)


def _first(parts: list[Any], content_type: str) -> Message | None:
    for part in parts:
        if isinstance(part, Message) and part.get_content_type() == content_type:
            return part
    return None


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


def _typed(value: str) -> str:
    """``rfc822; carer@example.org`` → ``carer@example.org`` (RFC 3464 2.1.2 address-type)."""
    _kind, separator, rest = value.partition(";")
    return (rest if separator else value).strip()


def _recipient(block: Any) -> RecipientReport | None:
    if not isinstance(block, Message):
        return None
    action = _field(block, "Action").lower()
    status = _field(block, "Status").split(" ")[0]
    recipient = _typed(_field(block, "Final-Recipient") or _field(block, "Original-Recipient"))
    if action not in ACTIONS or not _STATUS.match(status) or "@" not in recipient:
        return None
    diagnostic = _typed(_field(block, "Diagnostic-Code")) or None
    return RecipientReport(
        recipient=recipient.lower()[:320],
        action=action,
        status=status,
        diagnostic=diagnostic[:DIAGNOSTIC_LIMIT] if diagnostic else None,
    )


def _returned_headers(parts: list[Any]) -> Message | None:
    """The headers of the message that could not be delivered, as the report returned them."""
    returned = _first(parts, "message/rfc822")
    if returned is not None:
        inner = returned.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0]
    headers = _first(parts, "text/rfc822-headers")
    if headers is not None:
        text = headers.get_payload(decode=True)
        if isinstance(text, bytes):
            return HeaderParser(policy=policy.default).parsestr(text.decode("utf-8", "replace"))
    return None


def _message_id(value: object) -> str | None:
    if value is None:
        return None
    found = _MESSAGE_ID.search(str(value))
    return found.group(0) if found else None


__all__ = [
    "DeliveryReport",
    "RecipientReport",
    "Unreadable",
    "parse_report",
]
