"""One Delivery row becomes one RFC 5322 message: our headers, our MIME, nothing added on the way.

Addresses are parsed and checked here rather than trusted: a value that smuggles a second header or
a second address through a line break or a comma cannot reach the wire (E9 depends on an envelope
holding exactly the addresses on its row).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses

from hallpass_comms.models import Delivery, Message, Sensitivity

# A host name as mail systems accept it: dot-separated labels of letters, digits and hyphens.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$", re.IGNORECASE)
# RFC 5322 dot-atom local part; quoted local parts are legal but no school or carer needs one.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SENSITIVE_SUBJECT = "A secure message from school is waiting for you"
DELIVERY_HEADER = "X-Hallpass-Delivery"
# Quoted-printable keeps the text legible to a person opening the .eml file (base64 would not)
# and is 7-bit clean for any relay.
READABLE = "quoted-printable"


class RenderError(ValueError):
    """A row that cannot become a well-formed message; sending it again would not help."""


def new_message_id_header(delivery_id: uuid.UUID, domain: str) -> str:
    """The Message-ID of one envelope: stable, so a resend after a crash carries the same one."""
    domain = domain.strip().lower()
    if not _DOMAIN.match(domain):
        raise RenderError(f"not a domain name for a Message-ID: {domain!r}")
    return f"<{delivery_id}@{domain}>"


def parse_address(value: str) -> Address:
    """One mailbox from a stored value (``a@b`` or ``Name <a@b>``), or RenderError."""
    if not isinstance(value, str) or _CONTROL.search(value):
        raise RenderError(f"address holds a control character or line break: {value!r}")
    parsed = getaddresses([value])
    if len(parsed) != 1:
        raise RenderError(f"one address expected, found {len(parsed)}: {value!r}")
    display_name, addr_spec = parsed[0]
    local, at, domain = addr_spec.rpartition("@")
    domain = _ascii_domain(domain)
    if not at or not _LOCAL_PART.match(local) or not _DOMAIN.match(domain):
        raise RenderError(f"not an email address: {value!r}")
    try:
        return Address(display_name=display_name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:  # the stdlib parser's own objections
        raise RenderError(f"not an email address: {value!r}") from exc


def _ascii_domain(domain: str) -> str:
    # An accented domain (école.fr) travels in its IDNA form (xn--cole-9oa.fr), which every mail
    # server accepts; an accented local part would need SMTPUTF8 and is refused above.
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain  # not a domain: the pattern check refuses it


def one_line(text: str) -> str:
    """A header value on one line: line breaks become a space, never a new header."""
    return " ".join(_LINE_BREAKS.sub(" ", _CONTROL.sub(" ", text)).split())


def secure_view_url(public_base_url: str, message_id: uuid.UUID) -> str:
    return f"{public_base_url.rstrip('/')}/comms/v1/messages/{message_id}/secure-view"


def origination_date(message: Message) -> dt.datetime:
    """When the message was ready to go: written, approved (E4) or released at the morning (E8).

    Derived from the row, not the clock, so a resend renders the same Date as the first try.
    """
    moments = [message.created_at, message.approved_at, message.scheduled_for]
    return max(moment for moment in moments if moment is not None)


def render(message: Message, delivery: Delivery, *, public_base_url: str) -> EmailMessage:
    """The email for one envelope; a sensitive message carries only a notice and a link (E5)."""
    if delivery.message_id != message.id:
        raise RenderError("delivery belongs to another message")
    to = [parse_address(value) for value in delivery.to_addresses]
    if not to:
        raise RenderError("delivery has no To address")
    cc = [parse_address(value) for value in delivery.cc_addresses]
    sender = parse_address(message.sender_address)

    email = EmailMessage(policy=SMTP)
    email["From"] = sender
    email["To"] = to
    if cc:
        email["Cc"] = cc
    email["Message-ID"] = _checked_message_id(delivery.message_id_header)
    email["Date"] = format_datetime(origination_date(message).astimezone(dt.UTC))
    email[DELIVERY_HEADER] = str(delivery.id)

    if message.sensitivity is Sensitivity.sensitive:
        # E5: neither the text nor the subject travels; the carer signs in to read both.
        email["Subject"] = SENSITIVE_SUBJECT
        email.set_content(
            _sensitive_notice(secure_view_url(public_base_url, message.id)), cte=READABLE
        )
        return email

    email["Subject"] = one_line(message.subject) or "(no subject)"
    email.set_content(message.body_text, cte=READABLE)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html", cte=READABLE)
    return email


def _checked_message_id(value: str) -> str:
    inner = value[1:-1] if value.startswith("<") and value.endswith(">") else ""
    local, at, domain = inner.rpartition("@")
    if not at or not local or _CONTROL.search(value) or " " in value or not _DOMAIN.match(domain):
        raise RenderError(f"malformed Message-ID on the delivery row: {value!r}")
    return value


def _sensitive_notice(url: str) -> str:
    return (
        "The school has sent you a message that contains personal information, so it is not\n"
        "included in this email.\n\n"
        "Sign in to read it securely:\n"
        f"{url}\n\n"
        "The link works only for you and only for a limited time. If it has expired, please\n"
        "contact the school office.\n"
    )
