"""Service-to-service calls fail closed: no answer is never taken for an answer."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.testclient import TestClient
from joserfc import jwt
from pydantic import SecretStr

from hallpass_kit.app import CurrentPrincipal
from hallpass_kit.auth import INTERNAL_ISSUER, DevIssuer, Role, TokenVerifier
from hallpass_kit.clients import (
    SCHOOL_HEADER,
    ClientCredentialsTokens,
    DevServiceTokens,
    ServiceClient,
    caller_token,
    generate_service_key,
    load_service_key,
    service_key,
    service_tokens,
)
from hallpass_kit.errors import ServiceUnavailable, Unauthenticated, install_error_handlers
from hallpass_kit.settings import CommonSettings, Environment
from tests.servers import serving


def _callee() -> FastAPI:
    app = FastAPI()

    @app.get("/echo")
    def echo(authorization: str = Header()) -> dict[str, str]:
        return {"authorization": authorization}

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("the callee has a bug")

    @app.get("/missing", status_code=404)
    def missing() -> dict[str, str]:
        return {"code": "not_found"}

    return app


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_service_token_names_the_calling_service_and_school(issuer: DevIssuer) -> None:
    tokens = DevServiceTokens(issuer, "media")
    verifier = TokenVerifier(CommonSettings(env=Environment.test), key_set=issuer.key_set())

    principal = verifier.verify(tokens.token_for("oakfield"))

    assert principal.school == "oakfield"
    assert principal.roles == frozenset({Role.service})
    assert principal.sub == "service:media"
    assert tokens.token_for("oakfield") == tokens.token_for("oakfield")


def test_in_process_call_carries_the_service_token(issuer: DevIssuer) -> None:
    tokens = DevServiceTokens(issuer, "media")
    client = ServiceClient(name="consent", app=_callee(), tokens=tokens)

    response = client.request_sync("GET", "/echo", school="oakfield")

    assert response.json() == {"authorization": f"Bearer {tokens.token_for('oakfield')}"}


def test_without_service_identity_the_callers_token_is_passed_on() -> None:
    client = ServiceClient(name="consent", app=_callee())

    response = client.request_sync("GET", "/echo", school="oakfield", caller_token="abc")

    assert response.json() == {"authorization": "Bearer abc"}


def _request_reader() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/decisions")
    async def decisions(request: Request) -> dict[str, object]:
        return {
            "method": request.method,
            "path": request.url.path,
            "query": sorted(request.query_params.multi_items()),
            "content_type": request.headers.get("content-type"),
            "school": request.headers.get(SCHOOL_HEADER.lower()),
            "if_none_match": request.headers.get("if-none-match"),
            "body": await request.json(),
        }

    return app


def test_in_process_call_is_the_same_request_as_over_http() -> None:
    # In-process calls skip the HTTP client; the callee must not be able to tell the difference.
    def ask(client: ServiceClient) -> object:
        response = client.request_sync(
            "POST",
            "/v1/decisions",
            school="oakfield",
            caller_token="t",
            json={"purpose": "website_photo", "pupil_ids": ["a", "ñ"]},
            params={"limit": 500, "class_id": "x y"},
            headers={"If-None-Match": 'W/"roster-1"'},
        )
        assert response.status_code == 200, response.text
        return response.json()

    in_process = ServiceClient(name="consent", app=_request_reader())
    with serving(_request_reader()) as url:
        over_http = ServiceClient(name="consent", base_url=url)
        try:
            expected = ask(over_http)
        finally:
            over_http.close()

    assert ask(in_process) == expected


def test_client_errors_are_returned_for_the_caller_to_read() -> None:
    client = ServiceClient(name="consent", app=_callee())

    assert client.request_sync("GET", "/missing", school="s", caller_token="t").status_code == 404


def test_a_server_error_fails_closed() -> None:
    client = ServiceClient(name="consent", app=_callee())

    with pytest.raises(ServiceUnavailable) as refused:
        client.request_sync("GET", "/broken", school="s", caller_token="t")
    assert refused.value.code == "consent_unavailable"


def test_a_service_that_is_down_fails_closed() -> None:
    client = ServiceClient(
        name="consent", base_url=f"http://127.0.0.1:{_closed_port()}", timeout=1.0
    )

    with pytest.raises(ServiceUnavailable):
        client.request_sync("GET", "/echo", school="s", caller_token="t")


def test_no_credentials_at_all_fails_closed() -> None:
    client = ServiceClient(name="consent", app=_callee())

    with pytest.raises(ServiceUnavailable):
        client.request_sync("GET", "/echo", school="s")


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), (None, None), ("", None)],
)
def test_caller_token_reads_only_bearer_headers(header: str | None, token: str | None) -> None:
    assert caller_token(header) == token


def _idp_verifier(idp: DevIssuer) -> TokenVerifier:
    # A deployment whose people sign in at an outside identity provider (not the dev issuer).
    common = CommonSettings(env=Environment.test, auth_issuer=idp.issuer)
    return TokenVerifier(common, key_set=idp.key_set())


def test_internal_service_tokens_verify_beside_an_outside_identity_provider() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    internal = DevIssuer.generate(INTERNAL_ISSUER, "hallpass")
    verifier = _idp_verifier(idp)
    verifier.trust_internal(internal)

    service = verifier.verify(DevServiceTokens(internal, "comms").token_for("oakfield"))
    person = verifier.verify(idp.issue(sub="head@oakfield", school="oakfield", roles=["head"]))

    assert service.roles == frozenset({Role.service})
    assert service.sub == "service:comms"
    assert person.roles == frozenset({Role.head})


def test_the_internal_key_cannot_speak_for_a_person() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    internal = DevIssuer.generate(INTERNAL_ISSUER, "hallpass")
    verifier = _idp_verifier(idp)
    verifier.trust_internal(internal)
    forged = internal.issue(sub="head@oakfield", school="oakfield", roles=["head", "service"])

    with pytest.raises(Unauthenticated):
        verifier.verify(forged)


def test_internal_tokens_are_refused_where_the_internal_key_is_not_trusted() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    internal = DevIssuer.generate(INTERNAL_ISSUER, "hallpass")

    with pytest.raises(Unauthenticated):
        _idp_verifier(idp).verify(DevServiceTokens(internal, "media").token_for("oakfield"))


def test_only_the_internal_issuer_can_be_trusted_as_internal() -> None:
    verifier = _idp_verifier(DevIssuer.generate("https://login.example.org", "hallpass"))

    with pytest.raises(ValueError, match="internal issuer"):
        verifier.trust_internal(DevIssuer.generate("https://login.example.org", "hallpass"))


# --- services apart: pooled HTTP, replicas, the deployment's service key, client credentials ---


def _port_recorder() -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    ports: list[int] = []

    @app.get("/echo")
    def echo(request: Request, authorization: str = Header()) -> dict[str, str]:
        assert request.client is not None
        ports.append(request.client.port)
        return {"authorization": authorization, "school": request.headers.get(SCHOOL_HEADER, "")}

    return app, ports


def test_calls_over_http_reuse_pooled_connections() -> None:
    app, ports = _port_recorder()
    with serving(app) as url:
        client = ServiceClient(name="consent", base_url=url)
        try:
            for _ in range(20):
                client.request_sync("GET", "/echo", school="oakfield", caller_token="t")
        finally:
            client.close()

    assert len(ports) == 20
    # One keep-alive connection serves consecutive calls from one thread.
    assert len(set(ports)) == 1


def test_async_calls_over_http_reuse_pooled_connections() -> None:
    app, ports = _port_recorder()
    with serving(app) as url:
        client = ServiceClient(name="consent", base_url=url)

        async def twenty_calls() -> None:
            for _ in range(20):
                await client.request("GET", "/echo", school="oakfield", caller_token="t")
            await client.aclose()

        asyncio.run(twenty_calls())

    assert len(ports) == 20
    assert len(set(ports)) == 1


def test_a_replica_that_refuses_the_connection_is_skipped_for_the_next() -> None:
    app, ports = _port_recorder()
    with serving(app) as url:
        client = ServiceClient(
            name="consent", base_url=[f"http://127.0.0.1:{_closed_port()}", url], timeout=2.0
        )
        try:
            answers = [
                client.request_sync("GET", "/echo", school="s", caller_token="t").status_code
                for _ in range(4)
            ]
        finally:
            client.close()

    assert answers == [200, 200, 200, 200]
    assert len(ports) == 4


def test_every_call_names_its_school() -> None:
    app, _ports = _port_recorder()
    client = ServiceClient(name="consent", app=app)

    response = client.request_sync("GET", "/echo", school="oakfield", caller_token="t")

    assert response.json()["school"] == "oakfield"


def test_in_process_calls_from_threads_share_one_event_loop() -> None:
    app = FastAPI()
    loops: list[int] = []

    @app.get("/loop")
    async def loop() -> dict[str, bool]:
        loops.append(id(asyncio.get_running_loop()))
        return {"ok": True}

    client = ServiceClient(name="consent", app=app)
    callers = [
        threading.Thread(
            target=client.request_sync,
            args=("GET", "/loop"),
            kwargs={"school": "s", "caller_token": "t"},
        )
        for _ in range(10)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    client.close()

    # No event loop per call: every call from every thread ran on the client's one loop.
    assert len(loops) == 10
    assert len(set(loops)) == 1


def test_services_apart_trust_each_others_tokens_through_the_shared_service_key(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "service-key.json"
    key_file.write_text(json.dumps(generate_service_key()))
    # Two processes' worth of settings: the caller (media) signs, the callee (consent) verifies.
    media = CommonSettings(env=Environment.test, service_key_file=key_file)
    consent = CommonSettings(env=Environment.test, service_key_file=key_file)
    callee_key = load_service_key(consent)
    assert callee_key is not None
    verifier = TokenVerifier(
        consent, key_set=DevIssuer.generate("hallpass-dev", "hallpass").key_set()
    )
    verifier.trust_internal(callee_key)

    tokens = service_tokens(media, "media")
    assert tokens is not None
    principal = verifier.verify(tokens.token_for("oakfield"))

    assert principal.sub == "service:media"
    assert principal.school == "oakfield"
    assert principal.roles == frozenset({Role.service})


def test_a_service_key_of_another_deployment_is_refused(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    ours.write_text(json.dumps(generate_service_key()))
    theirs.write_text(json.dumps(generate_service_key()))
    consent = CommonSettings(env=Environment.test, service_key_file=ours)
    verifier = TokenVerifier(
        consent, key_set=DevIssuer.generate("hallpass-dev", "hallpass").key_set()
    )
    callee_key = load_service_key(consent)
    assert callee_key is not None
    verifier.trust_internal(callee_key)
    foreign = service_tokens(CommonSettings(env=Environment.test, service_key_file=theirs), "media")
    assert foreign is not None

    with pytest.raises(Unauthenticated):
        verifier.verify(foreign.token_for("oakfield"))


def test_a_public_key_cannot_serve_as_the_service_key(tmp_path: Path) -> None:
    private = generate_service_key()
    public = {k: v for k, v in private.items() if k in ("kty", "n", "e", "kid", "use", "alg")}
    key_file = tmp_path / "public.json"
    key_file.write_text(json.dumps(public))

    with pytest.raises(ValueError, match="private"):
        load_service_key(CommonSettings(env=Environment.test, service_key_file=key_file))


def _token_endpoint(idp: DevIssuer, client_id: str, secret: str) -> tuple[FastAPI, list[str]]:
    # Shaped like an OAuth2 token endpoint (RFC 6749 section 4.4): client authentication by
    # HTTP Basic, a form body, a JSON answer with access_token, token_type and expires_in.
    app = FastAPI()
    grants: list[str] = []

    @app.post("/token")
    async def token(request: Request) -> dict[str, object]:
        form = await request.form()
        expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            raise HTTPException(401, "invalid_client")
        grants.append(str(form.get("grant_type")))
        now = int(time.time())
        access = jwt.encode(
            {"alg": "RS256", "kid": idp.kid},
            {
                "iss": idp.issuer,
                "aud": idp.audience,
                "sub": f"service-account-{client_id}",
                "iat": now,
                "exp": now + 300,
                "roles": ["service"],
            },
            idp.key,
        )
        return {"access_token": access, "token_type": "Bearer", "expires_in": 300}

    return app, grants


def test_client_credentials_token_is_fetched_once_and_acts_for_the_named_school() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    app, grants = _token_endpoint(idp, "hallpass-services", "s3cret-s3cret")
    with serving(app) as url:
        common = CommonSettings(
            env=Environment.test,
            service_token_url=f"{url}/token",
            service_client_id="hallpass-services",
            service_client_secret=SecretStr("s3cret-s3cret"),
        )
        tokens = service_tokens(common, "media")
        assert isinstance(tokens, ClientCredentialsTokens)
        first, second = tokens.token_for("oakfield"), tokens.token_for("elmwood")
        tokens.close()

    assert grants == ["client_credentials"]
    assert first == second
    principal = _idp_verifier(idp).verify(first)
    assert principal.needs_school
    assert principal.for_school("oakfield").school == "oakfield"


def test_a_person_without_a_school_claim_is_still_refused() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    now = int(time.time())
    token = jwt.encode(
        {"alg": "RS256", "kid": idp.kid},
        {"iss": idp.issuer, "aud": "hallpass", "sub": "head", "exp": now + 60, "roles": ["head"]},
        idp.key,
    )

    with pytest.raises(Unauthenticated, match="no `school` claim"):
        _idp_verifier(idp).verify(token)


def test_refused_client_credentials_fail_closed() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    app, _grants = _token_endpoint(idp, "hallpass-services", "right-secret")
    with serving(app) as url:
        tokens = ClientCredentialsTokens(
            token_url=f"{url}/token", client_id="hallpass-services", client_secret="wrong"
        )
        with pytest.raises(ServiceUnavailable) as refused:
            tokens.token_for("oakfield")
        tokens.close()

    assert refused.value.code == "service_token_unavailable"


def _principal_echo(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    # authenticated() reads only the verifier off the service context.
    app.state.hallpass = SimpleNamespace(verifier=verifier)
    install_error_handlers(app)

    @app.get("/whoami")
    def whoami(principal: CurrentPrincipal) -> dict[str, str]:
        return {"sub": principal.sub, "school": principal.school}

    return app


def _service_account_token(idp: DevIssuer) -> str:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": "hallpass", "sub": "svc", "exp": now + 60}
    return jwt.encode({"alg": "RS256", "kid": idp.kid}, {**claims, "roles": ["service"]}, idp.key)


def test_a_service_token_without_a_school_acts_for_the_school_the_call_names() -> None:
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    app = _principal_echo(_idp_verifier(idp))
    token = _service_account_token(idp)

    with TestClient(app) as http:
        named = http.get(
            "/whoami", headers={"Authorization": f"Bearer {token}", SCHOOL_HEADER: "oakfield"}
        )
        unnamed = http.get("/whoami", headers={"Authorization": f"Bearer {token}"})

    assert named.json() == {"sub": "svc", "school": "oakfield"}
    assert unnamed.status_code == 401
    assert SCHOOL_HEADER in unnamed.json()["detail"]


def test_a_persons_token_cannot_act_for_a_school_it_does_not_grant() -> None:
    # The header chooses among the token's own schools; naming another one is refused, never
    # silently ignored, so a console that picked the wrong school hears of it.
    idp = DevIssuer.generate("https://login.example.org", "hallpass")
    app = _principal_echo(_idp_verifier(idp))
    token = idp.issue(sub="head@oakfield", school="oakfield", roles=["head"])

    with TestClient(app) as http:
        other = http.get(
            "/whoami", headers={"Authorization": f"Bearer {token}", SCHOOL_HEADER: "elmwood"}
        )
        own = http.get(
            "/whoami", headers={"Authorization": f"Bearer {token}", SCHOOL_HEADER: "oakfield"}
        )

    assert other.status_code == 403
    assert other.json()["code"] == "school_not_allowed"
    assert own.json()["school"] == "oakfield"


def test_outside_production_services_apart_share_one_key_made_under_the_data_dir(
    tmp_path: Path,
) -> None:
    common = CommonSettings(env=Environment.development, data_dir=tmp_path)

    first, second = service_key(common), service_key(common)

    assert first is not None
    assert second is not None
    assert first.kid == second.kid
    assert stat.S_IMODE((tmp_path / "service-key.json").stat().st_mode) == 0o600


def test_production_without_a_configured_service_key_has_none(tmp_path: Path) -> None:
    common = CommonSettings.model_construct(env=Environment.production, data_dir=tmp_path)

    assert service_key(common) is None
    assert not (tmp_path / "service-key.json").exists()
