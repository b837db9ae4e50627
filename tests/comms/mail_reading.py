"""Reading delivered mail the way a strict mail client would, for the literal-text tests.

Every header is parsed with ``email.policy.strict`` and must parse without a defect; the header
set of a school email is fixed, so an extra header smuggled in by text shows up as a difference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import strict
from email.utils import getaddresses

# Every header a school email has, each exactly once; Cc only when leadership is copied.
SCHOOL_HEADERS = Counter(
    {
        "from": 1,
        "to": 1,
        "subject": 1,
        "message-id": 1,
        "date": 1,
        "x-hallpass-delivery": 1,
        "mime-version": 1,
        "content-type": 1,
    }
)


def parse_strictly(raw: bytes) -> EmailMessage:
    """The message as a strict parser reads it; any defect fails the test."""
    parsed = BytesParser(policy=strict).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects, parsed.defects
    for part in parsed.walk():
        assert not part.defects, part.defects
        for name, value in part.items():
            assert not getattr(value, "defects", ()), (name, value.defects)
    return parsed


def header_names(mail: EmailMessage) -> Counter[str]:
    return Counter(name.lower() for name in mail)


def expected_headers(*, cc: bool, multipart: bool) -> Counter[str]:
    names = Counter(SCHOOL_HEADERS)
    if cc:
        names["cc"] = 1
    if not multipart:
        names["content-transfer-encoding"] = 1
    return names


def addresses(mail: EmailMessage, field: str) -> list[str]:
    return [a.addr_spec for header in mail.get_all(field, []) for a in header.addresses]


def shown_text(mail: EmailMessage, subtype: str = "plain") -> str:
    """A body part as a client shows it: decoded, lines ended by ``\\n``."""
    part = mail.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def as_typed(text: str) -> str:
    """What a typed body looks like after the trip: its lines, each ended by ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n") + "\n"


def assert_school_mail(
    mail: EmailMessage,
    *,
    sender: str,
    to: Iterable[str],
    cc: Iterable[str],
    subject: str,
    multipart: bool = False,
) -> None:
    """Exactly the school's headers, once each; the system's addresses; the subject as typed."""
    copied = list(cc)
    assert header_names(mail) == expected_headers(cc=bool(copied), multipart=multipart)
    assert addresses(mail, "From") == [sender]
    assert addresses(mail, "To") == list(to)
    assert addresses(mail, "Cc") == copied
    assert str(mail["Subject"]) == subject


def display_names(mail: EmailMessage, field: str) -> list[str]:
    """The display names in ``field`` decoded the way RFC 2047 (6.2) and mail clients read
    them: white space between two encoded words is dropped.

    Python's own parser keeps that space inside a name, so it is not the reader used here.
    """
    raw = [value for name, value in mail.raw_items() if name.lower() == field.lower()]
    return [
        str(make_header(decode_header(name))) if name else ""
        for name, _address in getaddresses([str(value) for value in raw])
    ]
