"""Field types every service's request schemas share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

# Text as sent must fit the documented limits (a schema cannot say "after trimming") and show a
# character that is not white space; the white space around it is then dropped. The class spells
# out every character str.strip() removes (and U+FEFF), because \s means different things to
# ECMAScript (the schema's regex dialect), Python and the Rust engine pydantic validates with.
VISIBLE = (
    r"[^\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
TRIM = AfterValidator(str.strip)
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=VISIBLE), TRIM]


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
