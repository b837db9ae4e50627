"""Header fields written by us, character for character: what staff typed is what carers see.

Python's ``email`` header registry parses every value it is given, decodes any RFC 2047 encoded
word in it, and on the versions our servers run (3.11.7, before the fix for CVE-2024-6923) writes
the decoded text back raw when it folds the header. A subject typed as
``=?utf-8?q?Trip=0D=0AReply-To:_x@evil.example?=`` then leaves as two headers. So no text from a
person or a record goes through that machinery: each header value here is built whole, and the
policy below stores it as it is and never folds it again.

- Text that is plain printable ASCII and holds no ``=?`` is written as it is, folded at spaces.
- Anything else (accents, symbols, tabs, text that looks like an encoded word) is written as
  encoded words of our own, each short and holding whole characters, so a mail client decodes
  exactly the characters typed and shows an encoded-word-like input literally.
- Line breaks never reach a header: a caller passes one line (``one_line`` turns any break into
  a space), and a value with a break in it is refused here as well.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Any

# Every character Python, RFC 5322 or a mail client may read as the end of a line.
LINE_BREAK_CHARACTERS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAKS = re.compile(f"[{LINE_BREAK_CHARACTERS}]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_RUNS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
# Characters that stand for themselves inside a q-encoded word in any position, a display
# name included (RFC 2047 section 5, rule 3); everything else is written as =XX.
_Q_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_WORD_START, _WORD_END = "=?utf-8?q?", "?="
_NAME_START = "=?utf-8?b?"
# A display name travels base64-encoded, 45 bytes a word: as few words as possible, because
# readers disagree on the space between two encoded words in a name (RFC 2047 drops it, Python's
# parser keeps it), while one word reads the same everywhere.
_NAME_BYTES = 45
# RFC 2047 allows 75 characters per encoded word and 76 per line; shorter words leave room for
# the field name on the first line ("Subject: ") whatever it is.
_MAX_WORD = 60
_MAX_LINE = 76
FOLD = "\r\n "


class HeaderRefused(ValueError):
    """A value that cannot be written as one header line of literal text."""


class HeaderValue(str):
    """A header value already written out (ASCII, folded): stored and sent exactly as it is."""

    __slots__ = ()


def one_line(text: str) -> str:
    """The text on one line: each run of line breaks and control characters becomes one space."""
    if _CONTROLS.search(text) is None:
        return text
    return _CONTROL_RUNS.sub(" ", text).strip()


def _q_encode(character: str) -> str:
    if character == " ":
        return "_"
    if character in _Q_LITERAL:
        return character
    return "".join(f"={byte:02X}" for byte in character.encode("utf-8"))


def encoded_words(text: str) -> list[str]:
    """``text`` as q-encoded words of at most ``_MAX_WORD`` characters, each holding whole
    characters, so any decoder gets back exactly ``text``."""
    words: list[str] = []
    room = _MAX_WORD - len(_WORD_START) - len(_WORD_END)
    current = ""
    for character in text:
        piece = _q_encode(character)
        if current and len(current) + len(piece) > room:
            words.append(f"{_WORD_START}{current}{_WORD_END}")
            current = ""
        current += piece
    if current or not words:
        words.append(f"{_WORD_START}{current}{_WORD_END}")
    return words


def name_words(name: str) -> list[str]:
    """A display name as base64 encoded words of whole characters, at most 45 bytes each."""
    words: list[str] = []
    current = b""
    for character in name:
        piece = character.encode("utf-8")
        if current and len(current) + len(piece) > _NAME_BYTES:
            words.append(_name_word(current))
            current = b""
        current += piece
    words.append(_name_word(current))
    return words


def _name_word(data: bytes) -> str:
    return f"{_NAME_START}{base64.b64encode(data).decode('ascii')}{_WORD_END}"


def _refuse_line_breaks(text: str) -> None:
    found = _LINE_BREAKS.search(text)
    if found is not None:
        raise HeaderRefused(
            f"a header holds a line break (U+{ord(found.group()):04X} at {found.start()})"
        )


def _plain(text: str) -> bool:
    # Printable ASCII a decoder leaves alone: no encoded-word opener anywhere in it.
    return bool(_PRINTABLE_ASCII.match(text)) and "=?" not in text


def _fold_at_spaces(words: Sequence[str], first_line_used: int) -> str:
    lines = [words[0]]
    used = first_line_used + len(words[0])
    for word in words[1:]:
        if used + 1 + len(word) > _MAX_LINE:
            lines.append(word)
            used = 1 + len(word)
        else:
            lines[-1] += " " + word
            used += 1 + len(word)
    return FOLD.join(lines)


def text_header(name: str, text: str) -> HeaderValue:
    """An unstructured header (Subject) whose readers see exactly ``text``."""
    _refuse_line_breaks(text)
    words = text.split(" ")
    # Plain words are folded only at a single space, which unfolding gives back; doubled or
    # edge spaces, long words and anything else travel encoded, where no space is lost.
    if _plain(text) and all(0 < len(word) <= _MAX_WORD for word in words):
        return HeaderValue(_fold_at_spaces(words, len(name) + 2))
    return HeaderValue(FOLD.join(encoded_words(text)))


_PHRASE_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*$")


def mailbox(address: Address) -> str:
    """One mailbox, its display name (if any) written so that it is shown literally."""
    addr_spec = f"{address.username}@{address.domain}"
    _refuse_line_breaks(addr_spec)
    if not _PRINTABLE_ASCII.match(addr_spec) or " " in addr_spec:
        raise HeaderRefused(f"not a plain address: {addr_spec!r}")
    name = address.display_name
    if not name:
        return addr_spec
    _refuse_line_breaks(name)
    if _PHRASE_ATOM.match(name):
        return f"{name} <{addr_spec}>"
    if _plain(name) and len(name) <= _MAX_WORD:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{addr_spec}>'
    return f"{FOLD.join(name_words(name))}{FOLD}<{addr_spec}>"


def address_header(addresses: Sequence[Address]) -> HeaderValue:
    """From, To or Cc: one mailbox per line, so no line is folded by anyone else."""
    if not addresses:
        raise HeaderRefused("an address header needs at least one address")
    return HeaderValue(f",{FOLD}".join(mailbox(address) for address in addresses))


def token_header(value: str) -> HeaderValue:
    """A header we make ourselves from no one's text (Message-ID, Date, delivery id)."""
    if not _PRINTABLE_ASCII.match(value) or len(value) > 900 or "=?" in value:
        raise HeaderRefused(f"not a plain header value: {value!r}")
    return HeaderValue(value)


class LiteralHeaders(EmailPolicy):
    """The SMTP policy, except that a ``HeaderValue`` is stored untouched and never refolded.

    ``refold_source="none"`` matters at sending: the generator then writes a stored string as
    it is instead of parsing it (decoding encoded words) and folding it again.
    """

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, HeaderValue):
            return (name, str(value))
        return super().header_store_parse(name, value)


RENDERING = LiteralHeaders(linesep="\r\n", refold_source="none")


def wire_bytes(email: EmailMessage, *, linesep: str = "\r\n") -> bytes:
    """The message as it leaves: our header values unchanged, lines ended by ``linesep``."""
    return email.as_bytes(policy=RENDERING.clone(linesep=linesep))


def envelope(email: EmailMessage) -> tuple[str, list[str]]:
    """The SMTP envelope (MAIL FROM, RCPT TO) of a rendered message: From, then To and Cc.

    Read back from the addresses we wrote, never from decoded display names.
    """
    sender = email["From"].addresses[0].addr_spec
    recipients: list[str] = []
    for field in ("To", "Cc"):
        for header in email.get_all(field, []):
            for address in header.addresses:
                if address.addr_spec not in recipients:
                    recipients.append(address.addr_spec)
    return sender, recipients
