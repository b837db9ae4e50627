# This module is about look-alike letters, so it has to spell them out.
# ruff: noqa: RUF001, RUF002, RUF003
"""Fold text into the form names are matched in, and map positions back to the original text.

Every character is folded on its own, so the folded text is the concatenation of the folds of the
original characters and any folded position can be traced back to the character it came from:

- NFKC first (fullwidth letters, ligatures such as "ﬁ", superscripts become plain letters);
- look-alike letters from other scripts become the Latin letter they imitate (Cyrillic "а" is "a",
  Greek "Ο" is "O"), because swapping one letter is the cheapest way round a name filter;
- case folding (so "ß" is "ss"), then accents dropped (NFD, combining marks removed) and the
  letters that carry no combining mark folded explicitly ("ø" is "o", "ł" is "l", "æ" is "ae");
- zero-width and other invisible formatting characters vanish, so "Em\u200bily" is "emily";
- everything that is not a letter (spaces, digits, apostrophes of every kind, hyphens and dashes,
  underscores, dots, emoji) becomes one space: names are compared letter by letter and the
  separators only mark where words may start and end.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

# Letters from other scripts that are drawn like a Latin letter. Upper and lower case are listed
# apart because they can imitate different letters (Greek "Η" looks like "H", "η" like "n").
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "Һ": "H", "Ӏ": "I", "Ү": "Y", "Ғ": "F",
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "х": "x", "у": "y", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "һ": "h", "ӏ": "l", "ү": "y", "ѵ": "v", "ь": "b", "ё": "e", "ї": "i", "г": "r", "п": "n",
    "и": "u", "л": "n", "ш": "w", "ц": "u", "ч": "y", "д": "d",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin letters outside the alphabet that read as one of its letters
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʟ": "l", "ᴀ": "a", "ʙ": "b", "ᴄ": "c",
    "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ᴍ": "m", "ɴ": "n",
    "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y",
    "ᴢ": "z",
}  # fmt: skip

# Letters that keep their accent through NFD (the stroke or ligature is part of the letter).
_LETTER_FOLDS: dict[str, str] = {
    "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ħ": "h",
    "ŧ": "t", "ƀ": "b", "ɨ": "i", "ƶ": "z", "ŋ": "n", "ĸ": "k", "ſ": "s", "ß": "ss", "ẞ": "ss",
    "ɲ": "n", "ʉ": "u", "ꝋ": "o",
}  # fmt: skip


def fold_character(character: str) -> str:
    """The folded form of one character: lower-case letters without accents, " " or ""."""
    folded: list[str] = []
    for part in unicodedata.normalize("NFKC", character):
        part = _CONFUSABLES.get(part, part).casefold()
        for letter in unicodedata.normalize("NFD", part):
            category = unicodedata.category(letter)
            if category in ("Mn", "Me", "Cf") or letter in "\u034f\u115f\u1160\u3164\uffa0":
                # Accents and invisible characters (zero-width space and joiners, soft hyphen,
                # word joiner, byte-order mark, fillers) add nothing a reader sees.
                continue
            letter = _LETTER_FOLDS.get(letter, letter)
            if letter.isalpha():
                folded.append(letter)
            elif not folded or folded[-1] != " ":
                folded.append(" ")
    return "".join(folded)


class _FoldTable(dict[int, str]):
    """A ``str.translate`` table filled on first use, so any character of Unicode is covered."""

    def __missing__(self, codepoint: int) -> str:
        folded = fold_character(chr(codepoint))
        self[codepoint] = folded
        return folded


FOLD_TABLE = _FoldTable()
for _codepoint in range(128):
    FOLD_TABLE[_codepoint] = fold_character(chr(_codepoint))

_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


# ASCII characters fold one to one, so pure-ASCII text (most captions) goes through
# ``bytes.translate``, many times faster than ``str.translate`` with a dictionary.
_ASCII_FOLDS = bytes(ord(FOLD_TABLE[codepoint]) for codepoint in range(128)) + bytes(128)


def fold(text: str) -> str:
    """The folded text alone: the concatenation of every character's fold."""
    return fold_with_shifts(text)[0]


def fold_with_shifts(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The folded text, and (position, width) of every character whose fold is not one character
    long: all that is needed to map folded positions back (see ``PositionMap``)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_FOLDS).decode("ascii"), []
    shifts: list[tuple[int, int]] = []

    def fold_one(match: re.Match[str]) -> str:
        folded = FOLD_TABLE[ord(match.group())]
        if len(folded) != 1:
            shifts.append((match.start(), len(folded)))
        return folded

    partly = _NOT_ASCII.sub(fold_one, text)
    if not partly.isascii():
        # Letters of scripts that stay as they are (Arabic, Chinese, most Cyrillic...).
        return text.translate(FOLD_TABLE), shifts
    return partly.encode("ascii").translate(_ASCII_FOLDS).decode("ascii"), shifts


class PositionMap:
    """Maps positions in ``fold(text)`` back to positions in ``text``.

    ASCII characters and most others fold to exactly one character; only those that fold to
    nothing (accents written apart, zero-width spaces) or to several ("ß", "æ") shift positions.
    """

    __slots__ = ("_folded_starts", "_original", "_shifts")

    def __init__(self, text: str, shifts: list[tuple[int, int]]) -> None:
        self._original = text
        # Where each shifting character's fold starts in the folded text; between two of them
        # the offset between folded and original positions is constant.
        self._folded_starts: list[int] = []
        self._shifts = shifts
        offset = 0
        for position, width in shifts:
            self._folded_starts.append(position + offset)
            offset += width - 1

    def original(self, folded_position: int) -> int:
        """The original position of the character whose fold holds ``folded_position``."""
        index = bisect.bisect_right(self._folded_starts, folded_position) - 1
        # Several characters can start at one folded position when some fold to nothing:
        # the last of them is the one that produced the folded character.
        if index < 0:
            return folded_position
        start = self._folded_starts[index]
        position, width = self._shifts[index]
        if folded_position < start + width:
            return position
        return position + 1 + (folded_position - start - width)

    def end(self, folded_end: int) -> int:
        """The original end (exclusive) of a span whose folded end (exclusive) is ``folded_end``.

        Characters that fold to nothing straight after the span (a combining accent on its last
        letter, a zero-width space) belong to it.
        """
        end = self.original(folded_end - 1) + 1
        text = self._original
        while end < len(text) and not text[end].isascii() and FOLD_TABLE[ord(text[end])] == "":
            end += 1
        return end


def normalise(text: str) -> tuple[str, list[int]]:
    """Fold ``text`` and give, for every folded position, the original position it came from."""
    folded, shifts = fold_with_shifts(text)
    positions = PositionMap(text, shifts)
    return folded, [positions.original(index) for index in range(len(folded))]
