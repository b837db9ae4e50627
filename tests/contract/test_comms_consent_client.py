"""Comms reads the consent service through models of its answers (hallpass_comms.consent_client).
Every field of those models must exist in the consent service's committed OpenAPI
(openapi/consent.json) with a type the model accepts, so renaming or retyping a field in consent
fails the build instead of a send (issue 9, typed contracts)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import types
import uuid
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from hallpass_comms import consent_client
from hallpass_comms.consent_client import (
    CarerLinks,
    ConsentAnswer,
    Family,
    Refusal,
    Renewal,
    RoundLinks,
)

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "consent.json"

# What comms reads, and where in consent's API it comes from: (model, method, path, status).
READS: tuple[tuple[type[BaseModel], str, str, str], ...] = (
    (Family, "post", consent_client.RESOLVE_PATH, "200"),
    (Refusal, "post", consent_client.RESOLVE_PATH, "422"),
    (Renewal, "get", consent_client.RENEWALS_PATH, "200"),
    # Asked with the carer's own token: the records of a carer signed in as themselves.
    (CarerLinks, "get", consent_client.LINKS_PATH, "200"),
    # A consent request's mail round: the personal links comms puts in each carer's email.
    (RoundLinks, "post", consent_client.ROUND_LINKS_PATH, "200"),
)

Spec = dict[str, Any]
Schema = dict[str, Any]

# JSON Schema (type, format) each Python type reads; a string of any format reads into str.
_READS_AS: dict[type, set[tuple[str, str | None]]] = {
    str: {("string", None)},
    uuid.UUID: {("string", "uuid")},
    dt.datetime: {("string", "date-time")},
    dt.date: {("string", "date")},
    int: {("integer", None)},
    float: {("number", None), ("integer", None)},
    bool: {("boolean", None)},
}


def _resolved(spec: Spec, schema: Schema) -> Schema:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def _alternatives(spec: Spec, schema: Schema) -> list[Schema]:
    schema = _resolved(spec, schema)
    options: list[Schema] = schema.get("anyOf") or schema.get("oneOf") or []
    if options:
        return [alternative for option in options for alternative in _alternatives(spec, option)]
    return [schema]


def _python_alternatives(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for arg in get_args(annotation) for a in _python_alternatives(arg)]
    return [annotation]


def _reads(annotation: Any, sent: Schema, spec: Spec, where: str) -> list[str] | None:
    """None when ``annotation`` cannot read what ``sent`` describes; else the mismatches found
    further down (an object's fields, an array's items)."""
    kind = sent.get("type")
    if kind == "null":
        return [] if annotation is type(None) else None
    if get_origin(annotation) is list and kind == "array":
        (item,) = get_args(annotation)
        return _mismatches_of_value(item, sent.get("items", {}), spec, f"{where}[]")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_mismatches(annotation, sent, spec, where) if kind == "object" else None
    if isinstance(annotation, type) and annotation in _READS_AS:
        formats = _READS_AS[annotation]
        return [] if (kind, sent.get("format")) in formats or (kind, None) in formats else None
    return None


def _mismatches_of_value(annotation: Any, schema: Schema, spec: Spec, where: str) -> list[str]:
    """Every shape consent may send for this value must be one the model reads."""
    found: list[str] = []
    choices = _python_alternatives(annotation)
    for sent in _alternatives(spec, schema):
        readings = [_reads(choice, sent, spec, where) for choice in choices]
        fitting: list[list[str]] = [r for r in readings if r is not None]
        if not fitting:
            shown = sent.get("type", "?") + (f" ({sent['format']})" if "format" in sent else "")
            found.append(f"{where}: consent may send {shown}, which comms reads as {annotation}")
        else:
            # The closest reading (fewest mismatches inside) is the one comms would use.
            closest: list[str] = min(fitting, key=len)
            found.extend(closest)
    return found


def _model_mismatches(model: type[BaseModel], schema: Schema, spec: Spec, where: str) -> list[str]:
    schema = _resolved(spec, schema)
    properties: dict[str, Schema] = schema.get("properties", {})
    required = set(schema.get("required", []))
    found: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        here = f"{where}.{key}"
        if key not in properties:
            found.append(f"{here}: no such field in consent's {schema.get('title', 'answer')}")
            continue
        if field.is_required() and key not in required:
            found.append(f"{here}: comms needs it, consent may leave it out")
        found.extend(_mismatches_of_value(field.annotation, properties[key], spec, here))
    return found


def response_schema(spec: Spec, method: str, path: str, status: str) -> Schema:
    content = spec["paths"][path][method]["responses"][status]["content"]
    media = content.get("application/json") or content["application/problem+json"]
    schema: Schema = media["schema"]
    return schema


def contract_mismatches(spec: Spec) -> list[str]:
    """What comms reads that the consent spec does not promise, across every read."""
    found: list[str] = []
    for model, method, path, status in READS:
        where = f"{method.upper()} {path} {status}"
        try:
            schema = _resolved(spec, response_schema(spec, method, path, status))
        except KeyError:
            found.append(f"{where}: consent documents no such answer")
            continue
        if schema.get("type") == "array":
            found.extend(
                _mismatches_of_value(list[model], schema, spec, f"{where} {model.__name__}")  # type: ignore[valid-type]
            )
        else:
            found.extend(_model_mismatches(model, schema, spec, f"{where} {model.__name__}"))
    return found


@pytest.fixture(scope="module")
def consent_spec() -> Spec:
    spec: Spec = json.loads(SPEC_PATH.read_text())
    return spec


def _renamed_copy(spec: Spec, schema: str, old: str, new: str, tmp_path: Path) -> Spec:
    """A deliberately broken copy of consent's spec, written and read back like the real one."""
    broken = copy.deepcopy(spec)
    target = broken["components"]["schemas"][schema]
    target["properties"][new] = target["properties"].pop(old)
    target["required"] = [new if r == old else r for r in target.get("required", [])]
    path = tmp_path / "consent.json"
    path.write_text(json.dumps(broken))
    renamed: Spec = json.loads(path.read_text())
    return renamed


def test_every_field_comms_reads_from_consent_is_in_consents_committed_spec(
    consent_spec: Spec,
) -> None:
    assert contract_mismatches(consent_spec) == []


def test_every_model_of_a_consent_answer_is_checked_against_the_spec() -> None:
    def reached(model: type[BaseModel]) -> set[type[BaseModel]]:
        inner = {
            a
            for field in model.model_fields.values()
            for arg in [field.annotation, *get_args(field.annotation)]
            for a in [arg, *get_args(arg)]
            if isinstance(a, type) and issubclass(a, BaseModel)
        }
        return {model}.union(*(reached(m) for m in inner))

    checked = set().union(*(reached(model) for model, *_ in READS))
    answers = {
        value
        for value in vars(consent_client).values()
        if isinstance(value, type)
        and issubclass(value, ConsentAnswer)
        and value is not ConsentAnswer
    }

    assert answers - checked == set()


def test_a_pupil_field_renamed_in_consent_fails_the_check(
    consent_spec: Spec, tmp_path: Path
) -> None:
    renamed = _renamed_copy(consent_spec, "Family", "pupil_given_name", "given_name", tmp_path)

    assert contract_mismatches(renamed) == [
        "POST /v1/families:resolve 200 Family[].pupil_given_name: no such field in consent's Family"
    ]


def test_a_carer_field_renamed_in_consent_fails_the_check(
    consent_spec: Spec, tmp_path: Path
) -> None:
    renamed = _renamed_copy(consent_spec, "FamilyCarer", "email", "email_address", tmp_path)

    assert contract_mismatches(renamed) == [
        "POST /v1/families:resolve 200 Family[].carers[].email: "
        "no such field in consent's FamilyCarer"
    ]


def test_a_renewal_field_renamed_in_consent_fails_the_check(
    consent_spec: Spec, tmp_path: Path
) -> None:
    renamed = _renamed_copy(consent_spec, "Renewal", "valid_until", "ends_at", tmp_path)

    assert contract_mismatches(renamed) == [
        "GET /v1/renewals 200 Renewal[].valid_until: no such field in consent's Renewal"
    ]


def test_a_field_consent_may_now_leave_empty_fails_the_check(consent_spec: Spec) -> None:
    # A carer's id comes to comms as always present; were consent to make it nullable, comms
    # would fail on the first carer without one.
    loosened = copy.deepcopy(consent_spec)
    carer = loosened["components"]["schemas"]["FamilyCarer"]["properties"]
    carer["guardian_id"] = {"anyOf": [carer["guardian_id"], {"type": "null"}]}

    assert contract_mismatches(loosened) == [
        "POST /v1/families:resolve 200 Family[].carers[].guardian_id: consent may send null, "
        "which comms reads as <class 'uuid.UUID'>"
    ]


def test_a_field_retyped_in_consent_fails_the_check(consent_spec: Spec) -> None:
    retyped = copy.deepcopy(consent_spec)
    retyped["components"]["schemas"]["Family"]["properties"]["year_group"] = {"type": "string"}

    assert contract_mismatches(retyped) == [
        "POST /v1/families:resolve 200 Family[].year_group: consent may send string, "
        "which comms reads as <class 'int'>"
    ]


def test_a_field_consent_may_leave_out_fails_the_check(consent_spec: Spec) -> None:
    optional = copy.deepcopy(consent_spec)
    family = optional["components"]["schemas"]["Family"]
    family["required"] = [r for r in family["required"] if r != "on_roll"]

    assert contract_mismatches(optional) == [
        "POST /v1/families:resolve 200 Family[].on_roll: comms needs it, consent may leave it out"
    ]
