"""What media reads of consent.changed exists, with a compatible type, in consent's published
webhook schema (openapi/consent.json): renaming a field of ConsentChanged fails the build (M7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hallpass_media.events import ConsentChangedNotice

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "consent.json"


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _json_types(spec: dict[str, Any], node: dict[str, Any]) -> set[str]:
    node = _resolve(spec, node)
    if "anyOf" in node:
        return set().union(*(_json_types(spec, option) for option in node["anyOf"]))
    if "enum" in node or "const" in node:
        return {node.get("type", "string")}
    return {node["type"]} if "type" in node else set()


def _published_payload() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = json.loads(SPEC.read_text())
    operation = spec["webhooks"]["consent.changed"]["post"]
    envelope = _resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    return spec, _resolve(spec, envelope["properties"]["data"])


@pytest.mark.parametrize("name", sorted(ConsentChangedNotice.model_fields))
def test_every_field_media_reads_of_consent_changed_is_published_with_a_compatible_type(
    name: str,
) -> None:
    spec, payload = _published_payload()
    assert name in payload["properties"], f"consent.changed no longer publishes {name!r}"
    assert name in payload.get("required", []), f"consent.changed may leave out {name!r}"
    read = ConsentChangedNotice.model_json_schema()
    wanted = _json_types(read, read["properties"][name])
    published = _json_types(spec, payload["properties"][name])
    assert published <= wanted, f"{name}: consent publishes {published}, media reads {wanted}"
