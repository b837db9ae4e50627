"""Media's consent client against consent's committed OpenAPI document.

Every field media reads of a consent answer (the models in ``hallpass_media.consent_link``) must
exist in the matching response schema of ``openapi/consent.json``, with a type media can read:
renaming or retyping a field in consent fails here, before a check ever fails closed in a school.
No request is made: the check reads two documents. (What media reads of ``consent.changed`` is
checked against the same file in test_event_contracts.py.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from hallpass_media.consent_link import (
    GUARDIANS,
    LINKS_PATH,
    CarerLinksAnswer,
    ConsentAnswer,
    ConsentProblem,
    DecisionsAnswer,
    PupilAnswer,
    PupilsPage,
    RosterAnswer,
)

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "consent.json"

Schema = Mapping[str, Any]

# (method, path, status) of each consent answer media reads, and the reader it is read with.
READS: dict[tuple[str, str, str], TypeAdapter[Any]] = {
    ("post", "/v1/decisions", "200"): TypeAdapter(DecisionsAnswer),
    ("post", "/v1/decisions", "422"): TypeAdapter(ConsentProblem),
    ("get", "/v1/roster", "200"): TypeAdapter(RosterAnswer),
    ("get", "/v1/pupils/{pupil_id}/guardians", "200"): GUARDIANS,
    ("get", "/v1/pupils/{pupil_id}", "200"): TypeAdapter(PupilAnswer),
    ("get", "/v1/pupils", "200"): TypeAdapter(PupilsPage),
    # Asked with the carer's own token: the records of a carer signed in as themselves.
    ("get", LINKS_PATH, "200"): TypeAdapter(CarerLinksAnswer),
}


class Document:
    """A JSON Schema document whose ``$ref``s can be followed (an OpenAPI file or a model's)."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            node: Any = self.root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def alternatives(self, schema: Schema) -> list[Schema]:
        schema = self.resolve(schema)
        if "anyOf" in schema or "oneOf" in schema:
            return [
                alternative
                for option in schema.get("anyOf", schema.get("oneOf", []))
                for alternative in self.alternatives(option)
            ]
        return [schema]


def _kind(schema: Schema) -> str | None:
    if "type" in schema:
        kind: str = schema["type"]
        return kind
    if "enum" in schema:
        return "string" if all(isinstance(v, str) for v in schema["enum"]) else None
    return None


def mismatches(
    reader: Document, read: Schema, sender: Document, sent: Schema, where: str
) -> Iterator[str]:
    """What the sender may send at ``where`` that the reader cannot read; nothing if all fits."""
    for option in sender.alternatives(sent):
        problems = [
            list(_accepts(reader, wanted, sender, option, where))
            for wanted in reader.alternatives(read)
        ]
        if problems and all(problems):
            yield min(problems, key=len)[0]


def _accepts(
    reader: Document, read: Schema, sender: Document, sent: Schema, where: str
) -> Iterator[str]:
    wanted, given = _kind(read), _kind(sent)
    if wanted is None:
        return  # the reader takes anything here
    if given is None:
        yield f"{where}: consent sends an untyped value where media reads {wanted}"
        return
    if wanted == "number" and given in ("integer", "number"):
        return
    if wanted != given:
        yield f"{where}: media reads {wanted}, consent sends {given}"
        return
    if wanted == "string" and read.get("format") and read.get("format") != sent.get("format"):
        yield f"{where}: media reads a {read['format']} string, consent sends {sent.get('format')}"
    elif wanted == "array":
        yield from mismatches(reader, read["items"], sender, sent.get("items", {}), f"{where}[]")
    elif wanted == "object":
        yield from _object_mismatches(reader, read, sender, sent, where)


def _object_mismatches(
    reader: Document, read: Schema, sender: Document, sent: Schema, where: str
) -> Iterator[str]:
    sent_fields = sent.get("properties", {})
    always_sent = set(sent.get("required", []))
    for name, field in read.get("properties", {}).items():
        if name not in sent_fields:
            yield f"{where}.{name}: consent's answer has no such field"
            continue
        if name in read.get("required", []) and name not in always_sent:
            yield f"{where}.{name}: media needs it, consent may leave it out"
        yield from mismatches(reader, field, sender, sent_fields[name], f"{where}.{name}")


def response_schema(spec: Schema, method: str, path: str, status: str) -> Schema:
    content = spec["paths"][path][method]["responses"][status]["content"]
    schema: Schema = content["application/json"]["schema"]
    return schema


def client_mismatches(spec: Schema, method: str, path: str, status: str) -> list[str]:
    """How media's reader of one consent answer no longer fits ``spec``."""
    model = READS[(method, path, status)].json_schema(ref_template="#/$defs/{model}")
    return list(
        mismatches(
            Document(model),
            model,
            Document(spec),
            response_schema(spec, method, path, status),
            f"{method.upper()} {path} {status}",
        )
    )


@pytest.fixture(scope="module")
def consent_spec() -> Schema:
    spec: Schema = json.loads(SPEC_PATH.read_text())
    return spec


@pytest.mark.parametrize(("method", "path", "status"), list(READS))
def test_media_reads_only_fields_consent_documents_with_types_it_can_read(
    consent_spec: Schema, method: str, path: str, status: str
) -> None:
    assert client_mismatches(consent_spec, method, path, status) == []


def test_a_field_renamed_in_consent_fails_the_check(consent_spec: Schema) -> None:
    renamed = copy.deepcopy(dict(consent_spec))
    pupil = renamed["components"]["schemas"]["RosterPupil"]
    pupil["properties"]["first_name"] = pupil["properties"].pop("given_name")
    pupil["required"] = ["first_name" if f == "given_name" else f for f in pupil["required"]]

    assert client_mismatches(renamed, "get", "/v1/roster", "200") == [
        "GET /v1/roster 200.pupils[].given_name: consent's answer has no such field"
    ]


def test_a_field_retyped_in_consent_fails_the_check(consent_spec: Schema) -> None:
    retyped = copy.deepcopy(dict(consent_spec))
    decision = retyped["components"]["schemas"]["PupilDecision"]
    decision["properties"]["allowed"] = {"type": "string"}

    assert client_mismatches(retyped, "post", "/v1/decisions", "200") == [
        "POST /v1/decisions 200.decisions[].allowed: media reads boolean, consent sends string"
    ]


def test_a_field_made_optional_in_consent_fails_the_check(consent_spec: Schema) -> None:
    loosened = copy.deepcopy(dict(consent_spec))
    loosened["components"]["schemas"]["PupilView"]["required"].remove("id")

    assert client_mismatches(loosened, "get", "/v1/pupils/{pupil_id}", "200") == [
        "GET /v1/pupils/{pupil_id} 200.id: media needs it, consent may leave it out"
    ]


def _answer_models(schema: TypeAdapter[Any]) -> set[str]:
    return set(schema.json_schema().get("$defs", {})) | {schema.json_schema().get("title", "")}


def test_every_consent_answer_media_reads_is_checked() -> None:
    checked = set().union(*(_answer_models(reader) for reader in READS.values()))
    readers = {model.__name__ for model in _subclasses(ConsentAnswer)}

    assert readers <= checked, f"not checked against openapi/consent.json: {readers - checked}"


def _subclasses(model: type[BaseModel]) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for sub in model.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found
