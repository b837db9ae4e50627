"""The console's words: every English string has its Welsh one, with the same fields."""

from __future__ import annotations

import string

from hallpass_gateway.web.i18n import catalogue


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_english_string_has_a_welsh_one_and_no_more() -> None:
    english, welsh = catalogue("en"), catalogue("cy")

    assert sorted(english.keys() - welsh.keys()) == []
    assert sorted(welsh.keys() - english.keys()) == []


def test_each_welsh_string_fills_the_same_fields_as_the_english() -> None:
    english, welsh = catalogue("en"), catalogue("cy")

    differing = [key for key in english if _fields(english[key]) != _fields(welsh[key])]

    assert differing == []


def test_no_welsh_string_is_left_empty() -> None:
    assert [key for key, text in catalogue("cy").items() if not text.strip()] == []
