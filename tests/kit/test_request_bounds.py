"""Every request is bounded and storable by construction, checked over every route of every service.

A fix for one field would leave the next one open: these tests read what the code declares (its
routes and the committed OpenAPI documents, which a sibling test keeps equal to the code) so a new
field without a limit or without the text guard fails here.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from hallpass_consent.settings import ConsentSettings
from hallpass_kit.fields import Storable
from hallpass_kit.limits import api_routes
from hallpass_kit.settings import DEV_ISSUER, CommonSettings, Environment

OPENAPI_DIR = Path(__file__).resolve().parents[2] / "openapi"
SERVICE_SPECS = ("consent.json", "media.json", "comms.json")


@cache
def _service_apps(data_dir: str) -> dict[str, FastAPI]:
    from hallpass_gateway.app import create_gateway, service_name

    common = CommonSettings(
        env=Environment.development,
        data_dir=Path(data_dir),
        auth_issuer=DEV_ISSUER,
        auth_jwks_url=None,
    )
    gateway = create_gateway(common, ConsentSettings(database_url=None), run_background=False)
    return {service_name(prefix): app for prefix, app in gateway.services.items()}


@pytest.fixture(scope="module")
def service_apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    return _service_apps(str(tmp_path_factory.mktemp("bounds")))


def _guarded(metadata: list[Any]) -> bool:
    return any(isinstance(m, Storable) for m in metadata)


def _text_annotations(annotation: Any, metadata: list[Any], where: str) -> Iterator[str]:
    """Names of the places under ``annotation`` where a str is taken without the text guard."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        yield from _text_annotations(inner, [*metadata, *extra], where)
        return
    if annotation is str:
        if not _guarded(metadata):
            yield where
        return
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _text_annotations(arg, metadata, where)
        return
    if origin in (list, set, frozenset, tuple):
        for arg in typing.get_args(annotation):
            if arg is not Ellipsis:
                yield from _text_annotations(arg, [], f"{where}[]")
        return
    if origin is dict:
        _key, value = typing.get_args(annotation)
        yield from _text_annotations(value, [], f"{where}{{}}")
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _model_text_fields(annotation, where)


_seen_models: dict[type[BaseModel], list[str]] = {}


def _model_text_fields(model: type[BaseModel], where: str) -> Iterator[str]:
    if model in _seen_models:
        yield from (f"{where}{rest}" for rest in _seen_models[model])
        return
    _seen_models[model] = []  # recursion guard
    found: list[str] = []
    for name, field in model.model_fields.items():
        found.extend(
            rest.removeprefix(where)
            for rest in _text_annotations(field.annotation, list(field.metadata), f"{where}.{name}")
        )
    _seen_models[model] = found
    yield from (f"{where}{rest}" for rest in found)


def _unguarded_inputs(app: FastAPI) -> list[str]:
    unguarded: list[str] = []
    for route in api_routes(app):
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            pending.extend(dependant.dependencies)
            for param in [
                *dependant.query_params,
                *dependant.header_params,
                *dependant.cookie_params,
                *dependant.path_params,
                *dependant.body_params,
            ]:
                info = param.field_info
                unguarded.extend(
                    f"{route.path} {param.name}{rest}"
                    for rest in _text_annotations(info.annotation, list(info.metadata), "")
                )
    return sorted(set(unguarded))


@pytest.mark.parametrize("service", ["consent", "media", "comms"])
def test_every_text_input_refuses_nul_and_lone_surrogates(
    service_apps: dict[str, FastAPI], service: str
) -> None:
    # Rule A3 (data kept as given): U+0000 and lone surrogates cannot be stored or sent, so
    # every str a request can carry goes through hallpass_kit.fields.STORABLE.
    assert _unguarded_inputs(service_apps[service]) == []


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix("#/components/schemas/")
        resolved: dict[str, Any] = spec["components"]["schemas"][name]
        return resolved
    return node


def _unbounded(
    spec: dict[str, Any], node: dict[str, Any], where: str, seen: set[str]
) -> Iterator[str]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return
        seen = seen | {ref}
    node = _resolve(spec, node)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in node.get(key, []):
            yield from _unbounded(spec, option, where, seen)
    kind = node.get("type")
    if kind == "array":
        if "maxItems" not in node and "prefixItems" not in node:
            yield f"{where}: array without maxItems"
        if "items" in node:
            yield from _unbounded(spec, node["items"], f"{where}[]", seen)
    elif kind == "string":
        bounded = (
            "maxLength" in node
            or "enum" in node
            or "const" in node
            or node.get("format") in {"uuid", "date", "date-time", "time", "binary", "email"}
            # A file part: bounded by the endpoint's body limit, not by a length.
            or "contentMediaType" in node
        )
        if not bounded:
            yield f"{where}: string without maxLength"
    elif kind == "object":
        for name, sub in node.get("properties", {}).items():
            yield from _unbounded(spec, sub, f"{where}.{name}", seen)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in node:
                yield f"{where}: open object without maxProperties"
            yield from _unbounded(spec, extra, f"{where}{{}}", seen)


def _request_inputs(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            name = f"{method.upper()} {path}"
            for param in operation.get("parameters", []):
                yield f"{name} {param['in']}.{param['name']}", param.get("schema", {})
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                if media_type == "text/csv":
                    continue  # read as a whole file, limited by the body limit and row limit
                yield f"{name} body", content.get("schema", {})


@pytest.mark.parametrize("spec_name", SERVICE_SPECS)
def test_every_request_array_and_string_is_bounded_in_the_committed_spec(spec_name: str) -> None:
    spec = json.loads((OPENAPI_DIR / spec_name).read_text())
    found = [
        problem
        for where, schema in _request_inputs(spec)
        for problem in _unbounded(spec, schema, where, set())
    ]
    assert found == []
