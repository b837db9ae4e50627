"""One Delivery row becomes one RFC 5322 message: our headers, our MIME, nothing added on the way.

Addresses are parsed and checked here rather than trusted: a value that smuggles a second header or
a second address through a line break or a comma cannot reach the wire (E9 depends on an envelope
holding exactly the addresses on its row). Every header value is written by ``headers``, never by
the email package's folding, so text in it is shown literally (see that module for why).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from hallpass_comms.delivery.headers import (
    RENDERING,
    HeaderRefused,
    address_header,
    one_line,
    text_header,
    token_header,
)
from hallpass_comms.models import Delivery, Message, Sensitivity

# A host name as mail systems accept it: dot-separated labels of letters, digits and hyphens.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$", re.IGNORECASE)
# RFC 5322 dot-atom local part; quoted local parts are legal but no school or carer needs one.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# "addr" or "Display Name <addr>" (the name optionally in double quotes); nothing else. Written
# out rather than left to email.utils.getaddresses, whose reading of odd input changed across
# Python releases (CVE-2023-27043).
_MAILBOX = re.compile(r"^(?:(?P<name>[^<>]*?)\s*<(?P<angled>[^<>\s]+)>|(?P<bare>[^<>\s]+))$")

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
    found = _MAILBOX.match(value.strip())
    if found is None:
        raise RenderError(f"one address expected: {value!r}")
    addr_spec = found.group("angled") or found.group("bare")
    display_name = _unquoted(found.group("name") or "")
    local, at, domain = addr_spec.rpartition("@")
    domain = _ascii_domain(domain)
    if not at or not _LOCAL_PART.match(local) or not _DOMAIN.match(domain):
        raise RenderError(f"not an email address: {value!r}")
    try:
        return Address(display_name=display_name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:  # the stdlib's own objections
        raise RenderError(f"not an email address: {value!r}") from exc


def _unquoted(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _ascii_domain(domain: str) -> str:
    # An accented domain (école.fr) travels in its IDNA form (xn--cole-9oa.fr), which every mail
    # server accepts; an accented local part would need SMTPUTF8 and is refused above.
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain  # not a domain: the pattern check refuses it


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

    try:
        return _email(message, delivery, sender, to, cc, public_base_url)
    except HeaderRefused as exc:
        raise RenderError(str(exc)) from exc


def _email(
    message: Message,
    delivery: Delivery,
    sender: Address,
    to: list[Address],
    cc: list[Address],
    public_base_url: str,
) -> EmailMessage:
    email = EmailMessage(policy=RENDERING)
    email["From"] = address_header([sender])
    email["To"] = address_header(to)
    if cc:
        email["Cc"] = address_header(cc)
    email["Message-ID"] = token_header(_checked_message_id(delivery.message_id_header))
    email["Date"] = token_header(format_datetime(origination_date(message).astimezone(dt.UTC)))
    email[DELIVERY_HEADER] = token_header(str(delivery.id))

    if message.sensitivity is Sensitivity.sensitive:
        # E5: neither the text nor the subject travels; the carer signs in to read both.
        email["Subject"] = text_header("Subject", SENSITIVE_SUBJECT)
        email.set_content(
            _sensitive_notice(secure_view_url(public_base_url, message.id)), cte=READABLE
        )
        return email

    # The API refuses a subject with a line break; a row written before that rule (or by a
    # feature building its own subject) still never gets one into the header.
    email["Subject"] = text_header("Subject", one_line(message.subject) or "(no subject)")
    # A body line that looks like a MIME boundary cannot end the part: the generator picks the
    # boundary when writing and makes sure it appears in none of the parts.
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
