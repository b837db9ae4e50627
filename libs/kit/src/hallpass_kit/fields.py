"""Field types every service's request schemas share."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

# Text as sent must fit the documented limits (a schema cannot say "after trimming") and show a
# character that is not white space; the white space around it is then dropped. The class spells
# out every character str.strip() removes (and U+FEFF), because \s means different things to
# ECMAScript (the schema's regex dialect), Python and the Rust engine pydantic validates with.
VISIBLE = (
    r"[^\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
TRIM = AfterValidator(str.strip)
_T = TypeVar("_T")

# U+0000 cannot be stored by PostgreSQL and is invisible everywhere else; a lone surrogate
# (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8 at all. Neither is ever meant.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def refuse_unstorable(value: _T) -> _T:
    """Refuse text no database, mail or file can hold as typed (NUL, lone surrogates).

    Anything but text passes untouched, so the guard can sit on an optional parameter.
    """
    if not isinstance(value, str):
        return value
    found = _UNSTORABLE.search(value)
    if found is not None:
        raise PydanticCustomError(
            "unstorable_character",
            "Text may not contain U+{codepoint} (NUL or a lone surrogate); found at {position}.",
            {"codepoint": f"{ord(found.group()):04X}", "position": found.start()},
        )
    return value


# Every free-text field of every request (body, query, form) carries STORABLE, so the refusal
# above happens in one place: ``Annotated[str, StringConstraints(max_length=500), STORABLE]``.
# The length limits go before it: placed after a validator, pydantic checks them as a generic
# "items after validation" rule with a confusing message.
STORABLE = AfterValidator(refuse_unstorable)
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE), STORABLE, TRIM
]


def json_kinds(description: str, *kinds: type) -> BeforeValidator:
    """Let through only the JSON kinds the schema documents, before the type's own validation.

    FastAPI validates JSON bodies in Python mode, where pydantic's lax mode would read `true` or
    "3" as an integer, 1700000000 as a date-time or 28800 as a date.
    """

    def check(value: Any) -> Any:
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ValueError(f"Input should be {description}")
        return value

    return BeforeValidator(check)


JsonInteger = json_kinds("an integer", int, float)  # 3.0 is an integer in JSON; 3.5 still fails
