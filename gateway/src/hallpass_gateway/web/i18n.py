"""The console's words in English and Welsh.

Every string a page shows is looked up by key in ``locales/<language>/*.json`` (one file per
part of the console, merged; keys start with the file's name); a key missing from the Welsh
files is a test failure, never an English word left on a Welsh page. The language is the
one the person chose (``?lang=cy``, kept in a cookie), else the first of English and Welsh their
browser asks for, else English.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal

from starlette.requests import Request

Language = Literal["en", "cy"]
LANGUAGES: tuple[Language, ...] = ("en", "cy")
LANGUAGE_COOKIE = "hallpass_lang"
_LOCALES = Path(__file__).parent / "locales"


@cache
def catalogue(language: Language) -> Mapping[str, str]:
    words: dict[str, str] = {}
    for part in sorted((_LOCALES / language).glob("*.json")):
        loaded = json.loads(part.read_text(encoding="utf-8"))
        assert isinstance(loaded, dict), part
        clashing = words.keys() & loaded.keys()
        assert not clashing, f"{part} repeats {sorted(clashing)[:3]}"
        words.update(loaded)
    return words


class Translator:
    """``t("parents.children.title")`` in one language; ``{name}`` fields filled from keywords."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self._words = catalogue(language)

    def __call__(self, key: str, **fields: object) -> str:
        text = self._words.get(key)
        if text is None:
            # A missing word is a bug the catalogue test finds; the page still says something.
            text = catalogue("en").get(key, key)
        return text.format(**fields) if fields else text


def language_of(request: Request) -> Language:
    asked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(",")[:20]:
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("cy"):
            return "cy"
        if tag.startswith("en"):
            return "en"
    return "en"
