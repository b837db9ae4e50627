"""Find the roster's pupils named in a piece of text.

A name is compared letter by letter after folding (see ``normalise``): the separators between and
inside names do not count, so "Emily-Rose O'Brien", "emily rose obrien", "EMILY_ROSE.O-BRIEN" and
"EmilyRose OBrien" are all the letters "emilyroseobrien". What separators do decide is where a name
may start and end: a match must begin where a word begins and end where a word ends (or before a
possessive "s"), so "Isla" is not found in "Islamabad" nor "Ava Reid" in "Java Reid".

The text is folded with one ``str.translate``, split into words, and the words' letters are joined
into one string; a single Aho-Corasick automaton over the roster's folded names (built once per
roster) then finds every candidate in one pass in C. Word boundaries are checked only for the few
candidates it returns, and positions are mapped back to the original text only for real hits.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ahocorasick
import numpy as np

from hallpass_media.names.normalise import PositionMap, fold, fold_with_shifts


@dataclass(frozen=True)
class RosterName:
    """A pupil as the roster names them."""

    pupil_id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None = None


@dataclass(frozen=True)
class NameHit:
    """A pupil's name found in a text; the span is in the original text."""

    pupil_id: uuid.UUID
    start: int
    end: int
    matched: str
    full_name: bool


# Given names that are also everyday English words. Alone (the school's first-name option) they
# count only when written with a capital, as a name is: "we will" is not Will, "Will said" is.
# Full names are matched whatever the case.
# fmt: off
EVERYDAY_WORD_NAMES: frozenset[str] = frozenset({
    "will", "bill", "mark", "pat", "sue", "joy", "hope", "grace", "faith", "rose", "may", "june",
    "april", "summer", "autumn", "sky", "river", "jack", "rob", "bob", "ray", "dawn", "eve", "guy",
    "max", "jay", "drew", "lily", "daisy", "ivy", "holly", "poppy", "iris", "pearl", "ruby",
    "amber", "hazel", "heather", "violet", "rain", "storm", "sunny", "star", "brook", "brooke",
    "dale", "glen", "miles", "frank", "earl", "rich", "art", "don", "chase", "hunter", "mason",
    "tanner", "page", "reed", "wade", "cliff", "dean", "grant", "royal", "sage", "blue", "harmony",
    "honey", "precious", "lucky", "angel", "bay", "ash", "rowan", "cole", "penny", "ginger",
    "sandy", "rusty", "august",
})
# fmt: on

# (pupil, full name?, counts only when written with a capital?)
_Candidate = tuple[uuid.UUID, bool, bool]


@dataclass(frozen=True)
class _Key:
    letters: str
    full_name: bool
    needs_capital: bool


def _letters(name: str) -> str:
    return "".join(fold(name).split())


def _keys(pupil: RosterName) -> Iterator[_Key]:
    family = _letters(pupil.family_name)
    given_names = {_letters(pupil.given_name)}
    if pupil.preferred_name:
        given_names.add(_letters(pupil.preferred_name))
    given_names.discard("")
    for given in given_names:
        if family:
            yield _Key(given + family, True, False)
            # Family name first, as class lists and file names often have it ("O'Brien, Emily",
            # "OBrien_Emily.jpg"), counts when the family name starts with a capital: many are
            # everyday words ("hall Priya" in "...the hall Priya painted" is not Priya Hall).
            yield _Key(family + given, True, True)
        yield _Key(given, False, given in EVERYDAY_WORD_NAMES)


class NameDetector:
    """Matches text against one version of a school's roster; build once, use from any thread."""

    def __init__(self, roster: Iterable[RosterName]) -> None:
        full: dict[str, set[_Candidate]] = {}
        first: dict[str, set[_Candidate]] = {}
        for pupil in roster:
            for key in _keys(pupil):
                table = full if key.full_name else first
                table.setdefault(key.letters, set()).add(
                    (pupil.pupil_id, key.full_name, key.needs_capital)
                )
        self._full = self._automaton(full)
        self._first = self._automaton(first)
        self.size = len(full) + len(first)

    @staticmethod
    def _automaton(keys: dict[str, set[_Candidate]]) -> ahocorasick.Automaton | None:
        if not keys:
            return None
        automaton = ahocorasick.Automaton()
        for letters, candidates in keys.items():
            automaton.add_word(letters, (letters, tuple(sorted(candidates))))
        automaton.make_automaton()
        return automaton

    def find(self, text: str, *, first_names: bool = False) -> list[NameHit]:
        """Every roster pupil named in ``text``: full names always, lone first names on request.

        A first name inside a full name that was found is not reported again on its own.
        """
        folded, shifts = fold_with_shifts(text)
        letters = folded.replace(" ", "")
        candidates: list[tuple[int, str, tuple[_Candidate, ...]]] = []
        for automaton in (self._full, self._first if first_names else None):
            if automaton is not None:
                candidates.extend(
                    (last, key, pupils) for last, (key, pupils) in automaton.iter(letters)
                )
        if not candidates:
            return []
        return self._hits(text, folded, shifts, letters, candidates)

    def _hits(
        self,
        text: str,
        folded: str,
        shifts: list[tuple[int, int]],
        letters: str,
        candidates: list[tuple[int, str, tuple[_Candidate, ...]]],
    ) -> list[NameHit]:
        # Where each letter sits in the folded text: a word starts at a letter with a space (or
        # nothing) before it and ends at one with a space (or nothing) after it.
        codepoints = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32)
        letter_at = np.flatnonzero(codepoints != ord(" "))
        count = len(letter_at)

        def word_starts(index: int) -> bool:
            return index == 0 or letter_at[index] != letter_at[index - 1] + 1

        def word_ends(end: int) -> bool:
            return end == count or letter_at[end] != letter_at[end - 1] + 1

        spans: list[tuple[int, int, tuple[_Candidate, ...]]] = []
        for last, key, pupils in candidates:
            start, end = last - len(key) + 1, last + 1
            if not word_starts(start):
                continue
            # A possessive "s" may follow without its apostrophe ("Emily OBriens mum").
            if word_ends(end) or (letters[end] == "s" and word_ends(end + 1)):
                spans.append((start, end, pupils))
        if not spans:
            return []
        positions = PositionMap(text, shifts)
        found: dict[tuple[uuid.UUID, int, int], NameHit] = {}
        full_spans: list[tuple[int, int]] = []
        # Full names first (their automaton's candidates come first), so that a first name inside
        # a full name that counts is not reported again on its own.
        for start, end, pupils in spans:
            full_name = pupils[0][1]
            if not full_name and any(s <= start and end <= e for s, e in full_spans):
                continue
            original_start = positions.original(int(letter_at[start]))
            original_end = positions.end(int(letter_at[end - 1]) + 1)
            matched = text[original_start:original_end]
            capital = _starts_with_capital(matched)
            for pupil_id, _, needs_capital in pupils:
                if needs_capital and not capital:
                    continue
                if full_name:
                    full_spans.append((start, end))
                found.setdefault(
                    (pupil_id, original_start, original_end),
                    NameHit(pupil_id, original_start, original_end, matched, full_name),
                )
        return sorted(found.values(), key=lambda hit: (hit.start, hit.end, str(hit.pupil_id)))


def _starts_with_capital(text: str) -> bool:
    first_letter = next((c for c in text if c.isalpha()), "")
    return first_letter.isupper()


_CAMEL = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def filename_words(filename: str) -> str:
    """The words of a file name: "EmilyRose_OBrien-sports.day.JPG" -> "Emily Rose O Brien sports
    day JPG". Splits on ``_``, ``-``, ``.``, between lower and upper case ("EmilyRose"), before the
    last capital of a run followed by a lower-case letter ("OBrien") and between letters and digits.
    """
    spaced = re.sub(r"[_\-.]", " ", filename)
    spaced = _CAMEL.sub(" ", spaced)
    out: list[str] = []
    for index, character in enumerate(spaced):
        if index and character.isupper():
            previous = spaced[index - 1]
            following = spaced[index + 1] if index + 1 < len(spaced) else ""
            if previous.islower() or (previous.isupper() and following.islower()):
                out.append(" ")
        out.append(character)
    return "".join(out)


__all__ = ["EVERYDAY_WORD_NAMES", "NameDetector", "NameHit", "RosterName", "filename_words"]
