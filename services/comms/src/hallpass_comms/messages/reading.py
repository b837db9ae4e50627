"""Text as a carer's mail client may show it, for the checks that read what staff wrote (E6).

A check that reads only the characters as typed is easy to walk around: ``forward this to ten
people`` in full-width letters, with a zero-width space in each word, with Cyrillic look-alike
letters, as an RFC 2047 encoded word (``=?utf-8?b?...?=``) or as quoted-printable (``=20``) reads
the same on a screen. Rendering makes sure encoded words typed by staff are shown literally, but
a check cannot rely on every client and every copy-and-paste agreeing; so it reads every way the
text may be shown, and a phrase found in any of them counts.

Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import quopri
import re
import unicodedata

import nh3

# Characters that show nothing: format characters (zero-width spaces and joiners, soft hyphen,
# direction marks, word joiner, BOM, tags) are found by category; these show nothing either.
_BLANK_LETTERS = "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
# Latin look-alikes from Cyrillic and Greek that a chain phrase can be spelt with.
_LOOK_ALIKES = str.maketrans(
    "АВЕКМНОРСТХУЅІЈаеорсухѕіјԁһԛԝӏΑΒΕΖΗΙΚΜΝΟΡΤΥΧαιονρτυχ",
    "ABEKMHOPCTXYSIJaeopcyxsijdhqwlABEZHIKMNOPTYXaiovptux",
)
_QUOTES = str.maketrans("\u2018\u2019\u201b\u2032", "''''")
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?\s]*)\?=")
_SPACE_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")
_QUOTED_PRINTABLE = re.compile(r"=(?:[0-9A-Fa-f]{2}|\r?\n)")
_ROUNDS = 4  # an encoded word inside an encoded word inside ...: decoded this many times


def _invisible(character: str) -> bool:
    return unicodedata.category(character) == "Cf" or character in _BLANK_LETTERS


def _plain_letters(text: str, invisible: str) -> str:
    """Compatibility forms folded (NFKC: full-width, ligatures, styled letters), marks and
    invisible characters taken away, look-alikes read as the Latin letters they mimic."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(
        invisible if _invisible(c) else c
        for c in decomposed
        if unicodedata.category(c) not in ("Mn", "Me")
    )
    return unicodedata.normalize("NFKC", kept).translate(_LOOK_ALIKES)


def _charset(name: str) -> str:
    try:
        return codecs.lookup(name.split("*", 1)[0] or "utf-8").name
    except LookupError:
        return "utf-8"


def _decode_word(found: re.Match[str]) -> str:
    charset, encoding, encoded = found.groups()
    try:
        if encoding in "bB":
            data = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False)
        else:
            data = quopri.decodestring(encoded.replace("_", " ").encode("ascii", "replace"))
    except (binascii.Error, ValueError):
        return found.group(0)
    return data.decode(_charset(charset), errors="replace")


def decode_encoded_words(text: str) -> str:
    """RFC 2047 encoded words decoded wherever they are, again while more turn up."""
    for _ in range(_ROUNDS):
        joined = _SPACE_BETWEEN_WORDS.sub(r"\1\2", text)
        decoded = _ENCODED_WORD.sub(_decode_word, joined)
        if decoded == text:
            break
        text = decoded
    return text


def decode_quoted_printable(text: str) -> str:
    if not _QUOTED_PRINTABLE.search(text):
        return text
    return quopri.decodestring(text.encode("utf-8")).decode("utf-8", errors="replace")


def html_words(html_body: str | None) -> list[str]:
    """The words of an HTML body as shown: tags gone, entities read (``&#32;`` is a space).

    Twice: tags dropped, for a word split by inline tags (``for<b>ward</b>``); and tags read as
    spaces, for words a line break or paragraph keeps apart (``forward<br>this``).
    """
    if not html_body:
        return []
    return [
        html.unescape(nh3.clean(html_body, tags=set())),
        html.unescape(nh3.clean(re.sub(r"<", " <", html_body), tags=set())),
    ]


def readings(text: str) -> list[str]:
    """Every way ``text`` may be shown, lower-cased with white space made single spaces."""
    shown: list[str] = []
    for decoded in dict.fromkeys((text, decode_quoted_printable(text))):
        # An invisible character may stand inside a word ("for\u200bward") or for the space
        # between two ("forward\u200bthis"): read it both ways.
        for invisible in ("", " "):
            letters = _plain_letters(decoded, invisible)
            letters = _plain_letters(decode_encoded_words(letters), invisible)
            reading = " ".join(letters.casefold().translate(_QUOTES).split())
            if reading not in shown:
                shown.append(reading)
    return shown
