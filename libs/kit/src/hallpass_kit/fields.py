"""Field types every service's request schemas share."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# Text as sent must fit the documented limits (a schema cannot say "after trimming") and show a
# character that is not white space; the white space around it is then dropped. The class spells
# out every character str.strip() removes (and U+FEFF), because \s means different things to
# ECMAScript (the schema's regex dialect), Python and the Rust engine pydantic validates with.
_BLANK = r"\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# Anchored so that the same pattern also says "no U+0000 anywhere": a schema has one pattern, and
# clients and fuzzers should read from it everything the server will refuse.
VISIBLE = rf"^[^\x00]*[^\x00{_BLANK}][^\x00]*$"
# For text with no other pattern.
NO_NUL = r"^[^\x00]*$"
TRIM = AfterValidator(str.strip)
_T = TypeVar("_T")

# U+0000 cannot be stored by PostgreSQL and is invisible everywhere else; a lone surrogate
# (``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8 at all. Neither is ever meant.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text_error(value: str) -> PydanticCustomError | None:
    """The refusal for ``value`` when it holds a character no store can keep (see below)."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return PydanticCustomError(
        "unstorable_character",
        "Text may not contain U+{codepoint} (NUL or a lone surrogate); found at {position}.",
        {"codepoint": f"{ord(found.group()):04X}", "position": found.start()},
    )


def refuse_unstorable(value: _T) -> _T:
    """Refuse text no database, mail or file can hold as typed (NUL, lone surrogates).

    Anything but text passes untouched, so the guard can sit on an optional parameter.
    """
    if not isinstance(value, str):
        return value
    error = unstorable_text_error(value)
    if error is not None:
        raise error
    return value


class Storable:
    """Annotation for request text: refuses NUL and lone surrogates, and says so in the schema
    (a ``pattern`` excluding U+0000 where the field has no pattern of its own)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(refuse_unstorable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        document = handler(schema)
        target = handler.resolve_ref_schema(document)
        for option in [target, *target.get("anyOf", [])]:
            if option.get("type") == "string" and "pattern" not in option:
                option["pattern"] = NO_NUL
        return document


# Every free-text field of every request (body, query, form, header) carries STORABLE, so the
# refusal above happens in one place: ``Annotated[str, StringConstraints(max_length=500),
# STORABLE]``. The length limits go before it: placed after a validator, pydantic checks them as
# a generic "items after validation" rule with a confusing message.
STORABLE = Storable()
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
