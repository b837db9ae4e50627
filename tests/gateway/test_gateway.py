from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import KeySet
from pydantic import BaseModel, create_model

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway import app as gateway_module
from hallpass_gateway.app import Gateway, Service, ServiceBuild, create_gateway, merged_openapi
from hallpass_gateway.cli import main
from hallpass_kit.auth import DevIssuer, Role, TokenVerifier
from hallpass_kit.clients import ServiceClient
from hallpass_kit.settings import DEV_ISSUER, CommonSettings
from hallpass_media.context import media_context

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def common(tmp_path: Path) -> CommonSettings:
    return CommonSettings(data_dir=tmp_path, auth_issuer=DEV_ISSUER, auth_jwks_url=None)


@pytest.fixture
def gateway(common: CommonSettings) -> Gateway:
    return create_gateway(common, ConsentSettings(database_url=None), run_background=False)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(gateway) as client:
        yield client


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HALLPASS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HALLPASS_AUTH_JWKS_URL", raising=False)
    monkeypatch.delenv("HALLPASS_AUTH_ISSUER", raising=False)
    monkeypatch.delenv("HALLPASS_ENV", raising=False)
    return tmp_path


def operation_ids(document: dict[str, Any]) -> list[str]:
    return [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS and "operationId" in operation
    ]


def service_with_pupil_schema(**fields: Any) -> FastAPI:
    pupil = create_model("Pupil", **fields)
    service = FastAPI()

    @service.get("/v1/pupils/{pupil_id}", response_model=pupil)
    def get_pupil(pupil_id: int) -> BaseModel:
        return pupil()

    return service


def test_healthz_answers_without_a_token(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_jwks_publishes_the_key_that_verifies_dev_tokens(
    client: TestClient, gateway: Gateway, common: CommonSettings
) -> None:
    assert gateway.dev_issuer is not None
    token = gateway.dev_issuer.issue(sub="head@demo", school="demo", roles=[Role.head])

    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    verifier = TokenVerifier(common, key_set=KeySet.import_key_set(response.json()))
    principal = verifier.verify(token)
    assert principal.school == "demo"
    assert principal.roles == frozenset({Role.head})


def test_jwks_is_not_found_when_an_identity_provider_issues_tokens(tmp_path: Path) -> None:
    common = CommonSettings(
        data_dir=tmp_path,
        auth_issuer="https://login.example.org/school",
        auth_jwks_url="https://login.example.org/school/keys",
    )
    gateway = create_gateway(common, ConsentSettings(database_url=None), run_background=False)

    with TestClient(gateway) as client:
        response = client.get("/.well-known/jwks.json")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "no_dev_issuer"


def test_request_id_from_the_caller_is_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "cms-publish-42"})

    assert response.headers["x-request-id"] == "cms-publish-42"


def test_request_id_is_generated_and_reaches_the_mounted_service(client: TestClient) -> None:
    response = client.get("/consent/v1/no-such-route")

    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    assert request_id
    assert response.json()["request_id"] == request_id


def test_gateway_starts_and_stops_mounted_services(
    monkeypatch: pytest.MonkeyPatch, common: CommonSettings
) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        events.append("started")
        yield
        events.append("stopped")

    def build(_build: ServiceBuild) -> FastAPI:
        return FastAPI(lifespan=lifespan)

    monkeypatch.setattr(
        gateway_module,
        "SERVICES",
        {"/roster": Service(build=build, migrate=lambda _common: None)},
    )
    gateway = create_gateway(common, run_background=False)

    with TestClient(gateway):
        assert events == ["started"]
    assert events == ["started", "stopped"]


def test_merged_openapi_serves_consent_under_its_prefix(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["openapi"].startswith("3.1")
    consent_paths = [path for path in document["paths"] if path.startswith("/consent/")]
    assert consent_paths
    assert all(path.startswith("/consent/v1/") for path in consent_paths)
    assert "/healthz" in document["paths"]


def test_merged_openapi_operation_ids_are_unique_and_name_their_service(
    gateway: Gateway,
) -> None:
    document = merged_openapi(gateway, gateway.services)

    ids = operation_ids(document)
    assert [name for name, count in Counter(ids).items() if count > 1] == []
    consent_ids = [
        operation["operationId"]
        for path, item in document["paths"].items()
        if path.startswith("/consent/")
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert consent_ids
    assert all(operation_id.startswith("consent-") for operation_id in consent_ids)


def test_merged_openapi_renames_a_schema_two_services_define_differently() -> None:
    roster = service_with_pupil_schema(name=(str, ...))
    media = service_with_pupil_schema(shown_in=(list[int], ...))

    document = merged_openapi(FastAPI(), {"/roster": roster, "/media": media})

    schemas = document["components"]["schemas"]
    assert set(schemas["media_Pupil"]["properties"]) == {"shown_in"}
    assert set(schemas["Pupil"]["properties"]) == {"name"}
    media_response = document["paths"]["/media/v1/pupils/{pupil_id}"]["get"]["responses"]["200"]
    ref = media_response["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/media_Pupil"
    assert sorted(operation_ids(document)) == [
        "media-get_pupil_v1_pupils__pupil_id__get",
        "roster-get_pupil_v1_pupils__pupil_id__get",
    ]


def test_merged_openapi_keeps_one_copy_of_a_schema_services_share() -> None:
    roster = service_with_pupil_schema(name=(str, ...))
    media = service_with_pupil_schema(name=(str, ...))

    document = merged_openapi(FastAPI(), {"/roster": roster, "/media": media})

    assert "media_Pupil" not in document["components"]["schemas"]
    assert "Pupil" in document["components"]["schemas"]


def test_token_command_prints_a_jwt_with_the_requested_roles(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["token", "--role", "head", "--role", "dsl", "--school", "oakfield"])

    assert status == 0
    token = capsys.readouterr().out.strip()
    common = CommonSettings(data_dir=cli_environment)
    issuer = DevIssuer.load_or_create(
        common.dev_signing_key_path, common.auth_issuer, common.auth_audience
    )
    principal = TokenVerifier(common, key_set=issuer.key_set()).verify(token)
    assert principal.roles == frozenset({Role.head, Role.dsl})
    assert principal.school == "oakfield"
    assert principal.sub == "head@oakfield"


def test_token_command_refuses_a_parent_without_a_guardian(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["token", "--role", "parent"])

    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--guardian" in captured.err


def test_token_command_refuses_when_an_identity_provider_issues_tokens(
    cli_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HALLPASS_AUTH_ISSUER", "https://login.example.org/school")
    monkeypatch.setenv("HALLPASS_AUTH_JWKS_URL", "https://login.example.org/school/keys")

    status = main(["token", "--role", "head"])

    assert status == 2
    assert capsys.readouterr().out == ""
    assert not (cli_environment / "dev-signing-key.json").exists()


def test_token_command_gives_a_trust_officer_every_school_of_their_trust(
    cli_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = cli_environment / "identity.toml"
    identity.write_text(
        '[trusts.oak-trust]\nschools = ["oakfield", "riverside"]\n'
        '[trusts.elm-trust]\nschools = ["elmwood"]\n'
    )
    monkeypatch.setenv("HALLPASS_IDENTITY_FILE", str(identity))

    status = main(["token", "--role", "trust_dpo", "--trust", "oak-trust"])

    assert status == 0
    common = CommonSettings(data_dir=cli_environment)
    issuer = DevIssuer.load_or_create(
        common.dev_signing_key_path, common.auth_issuer, common.auth_audience
    )
    principal = TokenVerifier(common, key_set=issuer.key_set()).verify(
        capsys.readouterr().out.strip()
    )
    assert principal.schools == frozenset({"oakfield", "riverside"})
    assert principal.school == ""  # two schools: each request names one
    assert principal.acting_for("riverside").roles == frozenset({Role.trust_dpo})


def test_token_command_refuses_a_trust_role_without_a_known_trust(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["token", "--role", "trust_admin", "--trust", "nowhere"])

    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--trust" in captured.err


def test_a_wrong_identity_file_stops_the_command_naming_the_key(
    cli_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = cli_environment / "identity.toml"
    identity.write_text(
        '[[issuers]]\nname = "entra"\nissuer = "https://login.example.org/t/v2.0"\n'
        'audiences = ["hallpass"]\n[issuers.school]\nclaim = "school"\n'
        '[issuers.roles.map]\n"Hallpass.Head" = "headteacher"\n'
    )
    monkeypatch.setenv("HALLPASS_IDENTITY_FILE", str(identity))

    status = main(["token", "--role", "head"])

    assert status == 2
    error = capsys.readouterr().err
    assert "identity file refused" in error
    assert "issuers.0.roles.map" in error
    assert "'headteacher'" in error


def test_openapi_check_passes_on_freshly_written_specs_and_fails_after_an_edit(
    cli_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = cli_environment / "openapi"
    assert main(["openapi", "--out", str(out)]) == 0
    assert main(["openapi", "--out", str(out), "--check"]) == 0
    gateway_spec = json.loads((out / "gateway.json").read_text())
    gateway_spec["info"]["title"] = "Edited by hand"
    (out / "gateway.json").write_text(json.dumps(gateway_spec))
    capsys.readouterr()

    status = main(["openapi", "--out", str(out), "--check"])

    assert status == 1
    assert "gateway.json" in capsys.readouterr().err
    assert (out / "consent.json").read_text().endswith("}\n")


def test_services_reach_consent_with_their_own_identity_beside_an_outside_provider(
    tmp_path: Path,
) -> None:
    # People's tokens come from an outside provider (never reached here); media and comms still
    # call consent with the gateway's internal service identity, not a borrowed person's token.
    common = CommonSettings(
        data_dir=tmp_path,
        auth_issuer="https://login.example.org",
        auth_jwks_url="http://127.0.0.1:9/keys",
    )
    gateway = create_gateway(common, run_background=False)
    media = media_context(gateway.services["/media"].state.hallpass)
    comms_consent: ServiceClient = gateway.services["/comms"].state.hallpass.consent.client

    with TestClient(gateway):
        roster = media.consent.client.request_sync("GET", "/v1/roster", school="oakfield")
        families = comms_consent.request_sync(
            "POST", "/v1/families:resolve", school="oakfield", json={"year_groups": [3]}
        )

    assert gateway.dev_issuer is None
    assert roster.status_code == 200
    assert families.status_code == 200
