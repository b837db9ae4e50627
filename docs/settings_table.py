"""The table of every setting in docs/deploy.md, written from the settings classes themselves.

    .tools/bin/uv run --frozen python docs/settings_table.py           # rewrite the table
    .tools/bin/uv run --frozen python docs/settings_table.py --check   # exit 1 if it is stale

tests/deploy/test_settings_doc.py runs the check, so a setting added to a class and not to the
doc fails the build. The meaning column is the comment written above (or beside) the field in
its class: the one place a setting is explained.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

DOC = Path(__file__).with_name("deploy.md")
START = "<!-- settings-table:start (docs/settings_table.py writes this part) -->"
END = "<!-- settings-table:end -->"

# Who reads which settings class, as "module:Class". Every service process (and the gateway)
# reads the shared ones; the gateway in all-in-one mode builds every service, so it reads all.
SHARED = ("hallpass_kit.settings:CommonSettings", "hallpass_kit.webhooks:WebhookSettings")
OWN: dict[str, tuple[str, ...]] = {
    "consent": ("hallpass_consent.settings:ConsentSettings",),
    "media": ("hallpass_media.settings:MediaSettings",),
    "comms": ("hallpass_comms.settings:CommsSettings",),
    "gateway": ("hallpass_gateway.settings:GatewaySettings",),
}


@dataclass(frozen=True)
class Setting:
    env_name: str
    default: str
    meaning: str


def settings_class(path: str) -> type[BaseSettings]:
    module_name, class_name = path.split(":")
    found = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(found, type) and issubclass(found, BaseSettings)):
        raise TypeError(f"{path} is not a settings class")
    return found


def classes_read_by(service: str) -> list[type[BaseSettings]]:
    """The settings classes one process reads: ``consent``, ``media``, ``comms`` or ``gateway``."""
    if service == "gateway":
        paths = [*SHARED, *(path for own in OWN.values() for path in own)]
    else:
        paths = [*SHARED, *OWN[service]]
    return [settings_class(path) for path in paths]


def env_name(cls: type[BaseSettings], field_name: str) -> str:
    field = cls.model_fields[field_name]
    alias = field.validation_alias or field.alias
    if isinstance(alias, str):
        return alias.upper()
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


def env_names(cls: type[BaseSettings]) -> set[str]:
    return {env_name(cls, name) for name in cls.model_fields}


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
        return "unset"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, list | dict) and not value:
        return "empty"
    return f"`{value}`"


def _comments(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> the comment above it (contiguous ``#`` lines) or beside it."""
    lines, _ = inspect.getsourcelines(cls)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    found: dict[str, str] = {}
    for statement in body.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        row = statement.lineno - 1
        above: list[str] = []
        previous = row - 1
        while previous >= 0 and lines[previous].strip().startswith("#"):
            above.insert(0, lines[previous].strip().lstrip("#").strip())
            previous -= 1
        own_line = "".join(lines[row : (statement.end_lineno or statement.lineno)])
        beside = own_line.split("  # ", 1)[1].strip() if "  # " in own_line else ""
        if beside.startswith(("noqa", "type:")):
            beside = ""
        meaning = " ".join(part for part in [*above, beside] if part)
        # A field right under a commented one, with no blank line between, is explained by that
        # comment (``smtp_port`` under ``smtp_host``).
        if not meaning and previous >= 0 and lines[previous].strip() and found:
            meaning = "See the setting above."
        found[statement.target.id] = meaning
    return found


def settings(cls: type[BaseSettings]) -> Iterator[Setting]:
    comments = _comments(cls)
    for name, field in cls.model_fields.items():
        meaning = comments.get(name, "").replace("|", "\\|")
        yield Setting(env_name(cls, name), _default(field), meaning)


def render() -> str:
    """The generated part of docs/deploy.md, markers included."""
    out = [START, ""]
    sections = [("Every service and the gateway", SHARED)] + [
        (
            "The gateway"
            if name == "gateway"
            else f"The {name} service (and the gateway in all-in-one mode)",
            own,
        )
        for name, own in OWN.items()
    ]
    for title, paths in sections:
        for path in paths:
            cls = settings_class(path)
            prefix = cls.model_config.get("env_prefix", "")
            out += [f"#### {title}: `{prefix}*` ({cls.__name__})", ""]
            out += ["| setting | default | meaning |", "|---|---|---|"]
            out += [
                f"| `{row.env_name}` | {row.default} | {row.meaning or '—'} |"
                for row in settings(cls)
            ]
            out.append("")
    out.append(END)
    return "\n".join(out)


def replace_table(document: str, table: str) -> str:
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC.name} has no settings table markers")
    return document[:start] + table + document[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is out of date")
    args = parser.parse_args(argv)
    document = DOC.read_text(encoding="utf-8")
    updated = replace_table(document, render())
    if args.check:
        if updated != document:
            sys.stderr.write(f"{DOC}: settings table is stale; run python {__file__}\n")
            return 1
        return 0
    DOC.write_text(updated, encoding="utf-8")
    sys.stdout.write(f"wrote the settings table in {DOC}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
