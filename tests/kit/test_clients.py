"""Service-to-service calls fail closed: no answer is never taken for an answer."""

from __future__ import annotations

import socket

import pytest
from fastapi import FastAPI, Header

from hallpass_kit.auth import INTERNAL_ISSUER, DevIssuer, Role, TokenVerifier
from hallpass_kit.clients import DevServiceTokens, ServiceClient, caller_token
from hallpass_kit.errors import ServiceUnavailable, Unauthenticated
from hallpass_kit.settings import CommonSettings, Environment


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
