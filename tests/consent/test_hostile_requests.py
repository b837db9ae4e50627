"""Hostile requests get a small, clear problem and change nothing: NUL and lone surrogates in any
text, huge arrays, huge or endless bodies, bugs, and a database that cannot answer."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hallpass_kit.auth import DevIssuer
from hallpass_kit.db import Database
from hallpass_kit.errors import MAX_LISTED_PROBLEMS
from hallpass_kit.settings import CommonSettings, Environment
from tests.conftest import TokenFactory, build_consent_app
from tests.consent.builders import SchoolBuilder, SchoolRecords, assert_problem


def _pupil(class_id: str, **names: str) -> dict[str, object]:
    return {
        "mis_id": "H1",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "year_group": 3,
        "class_id": class_id,
        **names,
    }


@pytest.mark.parametrize(
    "given_name",
    ["Ada\u0000", "\u0000", "A\u0000da", "Ada\ud800", "\udfffAda"],
    ids=["nul-at-end", "only-nul", "nul-inside", "high-surrogate", "low-surrogate"],
)
def test_unstorable_character_in_a_name_is_refused_and_nothing_is_written(
    client: TestClient,
    auth: TokenFactory,
    school: SchoolBuilder,
    records: SchoolRecords,
    given_name: str,
) -> None:
    oak = school.school_class("Year 3 Oak", 3)
    before = records.audit_entries()
    # json.dumps writes lone surrogates as \ud800 escapes: valid JSON that decodes to them.
    body = json.dumps(_pupil(oak, given_name=given_name))
    response = client.post(
        "/v1/pupils",
        content=body,
        headers={**auth("office"), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["problems"][0]["where"] == "body.given_name"
    # pydantic itself refuses a lone surrogate (string_unicode); NUL is the kit's guard.
    assert problem["problems"][0]["code"] in {"unstorable_character", "string_unicode"}
    assert client.get("/v1/pupils", headers=auth("office")).json()["items"] == []
    assert records.audit_entries() == before


def test_nul_in_a_query_parameter_is_refused(client: TestClient, auth: TokenFactory) -> None:
    response = client.get("/v1/audit", params={"target": "x\u0000y"}, headers=auth("head"))
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["problems"][0]["where"] == "query.target"


def test_nul_in_a_path_segment_is_refused(client: TestClient, auth: TokenFactory) -> None:
    response = client.get("/v1/purposes/web%00site", headers=auth("office"))
    assert response.status_code == 422


def test_half_a_million_ids_are_refused_at_once_with_a_short_answer(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    # 500,000 integers (3.4 MB) are over the body limit (413); 120,000 are under it, and the array's
    # bound refuses it before one id is read.
    body = json.dumps({"purpose": "website_photo", "pupil_ids": list(range(120_000))})
    response = client.post(
        "/v1/decisions",
        content=body,
        headers={**auth("cms"), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert len(problem["problems"]) == 1
    assert problem["problems"][0]["code"] == "too_long"
    assert len(response.content) < 2_000


def test_many_mistakes_are_listed_up_to_a_handful_with_a_count(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    body = {"purpose": "website_photo", "pupil_ids": [f"not-a-uuid-{i}" for i in range(900)]}
    response = client.post("/v1/decisions", json=body, headers=auth("cms"))
    problem = assert_problem(response, 422, "invalid_request")
    assert len(problem["problems"]) == MAX_LISTED_PROBLEMS
    assert "900 problems were found" in problem["detail"]
    assert f"{900 - MAX_LISTED_PROBLEMS} more were left out" in problem["detail"]


def test_a_body_over_the_endpoint_limit_is_refused_before_it_is_read(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder, records: SchoolRecords
) -> None:
    before = records.audit_entries()
    padding = "x" * (1_048_576 + 10)
    response = client.post(
        "/v1/classes",
        content=json.dumps({"name": "Year 3 Oak", "year_group": 3, "pad": padding}),
        headers={**auth("office"), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 413, "payload_too_large")
    assert "1048576 bytes" in problem["detail"]
    assert records.audit_entries() == before


def test_a_chunked_body_is_cut_off_at_the_limit(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    def endless() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(2000):  # 2 MB, sent without a Content-Length
            yield b"x" * 1024
        yield b'", "year_group": 3}'

    response = client.post(
        "/v1/classes",
        content=endless(),
        headers={**auth("office"), "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")
    assert client.get("/v1/classes", headers=auth("office")).json() == []


def test_the_import_endpoint_takes_its_own_larger_limit(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    # 1.5 MB of CSV: over the default body limit, under the import limit (5 MB), so it reaches
    # the importer, which reads it as a CSV (and refuses it for its header, not its size).
    csv = "not,a,roster\n" + ("x,y,z\n" * 250_000)
    response = client.post(
        "/v1/pupils:import",
        content=csv.encode(),
        headers={**auth("office"), "Content-Type": "text/csv"},
    )
    assert response.status_code != 413
    assert response.status_code < 500


def test_deeply_nested_json_is_a_client_error(
    client: TestClient, auth: TokenFactory, school: SchoolBuilder
) -> None:
    body = "[" * 200_000 + "]" * 200_000
    response = client.post(
        "/v1/decisions",
        content=body,
        headers={**auth("cms"), "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500


@pytest.fixture
def broken_app(consent_db: Database, issuer: DevIssuer, common_settings: CommonSettings) -> FastAPI:
    app = build_consent_app(consent_db, issuer, common_settings)

    @app.get("/v1/broken", include_in_schema=False)
    def broken() -> None:
        raise RuntimeError("a bug, not the caller's fault")

    return app


def test_a_bug_is_one_problem_one_log_line_with_the_request_id_and_the_connection_lives(
    broken_app: FastAPI, auth: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(broken_app, raise_server_exceptions=True) as client:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            response = client.get(
                "/v1/broken", headers={**auth("office"), "X-Request-Id": "req-bug-1"}
            )
        # raise_server_exceptions=True: had anything re-raised to the server, the test client
        # would raise it here instead of returning the response.
        problem = assert_problem(response, 500, "internal_error")
        assert problem["request_id"] == "req-bug-1"
        assert response.headers["x-request-id"] == "req-bug-1"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "req-bug-1" in errors[0].getMessage()
        assert client.get("/v1/ping", headers=auth("office")).status_code == 200


def test_a_request_id_is_made_when_none_is_given(
    broken_app: FastAPI, auth: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(broken_app, raise_server_exceptions=True) as client:
        response = client.get("/v1/broken", headers=auth("office"))
        request_id = response.json()["request_id"]
        assert uuid.UUID(hex=request_id)
        assert request_id in caplog.text


def test_past_the_concurrency_limit_requests_are_shed_and_health_still_answers(
    consent_db: Database, issuer: DevIssuer, tmp_path: Path, auth: TokenFactory
) -> None:
    common = CommonSettings(
        env=Environment.test, data_dir=tmp_path / "data", max_concurrent_requests=1
    )
    app = build_consent_app(consent_db, issuer, common)
    entered, release = threading.Event(), threading.Event()

    @app.get("/v1/slow", include_in_schema=False)
    def slow() -> dict[str, bool]:
        entered.set()
        release.wait(timeout=10)
        return {"done": True}

    with TestClient(app) as client, ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(client.get, "/v1/slow", headers=auth("office"))
        assert entered.wait(timeout=10)
        shed = client.get("/v1/ping", headers=auth("office"))
        problem = assert_problem(shed, 503, "overloaded")
        assert shed.headers["Retry-After"] == "1"
        assert problem["request_id"] == shed.headers["x-request-id"]
        assert client.get("/healthz").status_code == 200
        release.set()
        assert held.result(timeout=10).status_code == 200
        # The slot is given back: the next request is served.
        assert client.get("/v1/ping", headers=auth("office")).status_code == 200
