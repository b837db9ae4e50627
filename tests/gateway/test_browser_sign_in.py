"""Browser sign-in at the gateway, driven as a browser would: the gateway at https://testserver
(so its Secure cookies are sent back), the school's identity provider a real OpenID Connect
provider on loopback, every redirect between them followed by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_gateway.proxy import create_proxy_gateway
from hallpass_gateway.settings import GatewaySettings
from hallpass_gateway.signin.session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    BrowserSession,
    CookieSealer,
    PendingSignIn,
)
from hallpass_kit.settings import DEV_ISSUER, CommonSettings, Environment, InsecureSettingsError
from tests.consent.builders import SchoolBuilder
from tests.identity.examples import DEPLOY_IDENTITY
from tests.identity.provider import OidcProvider, running_provider
from tests.identity.shapes import ENTRA_CLIENT_ID, ENTRA_PATH, ENTRA_TENANT_ID, entra_v2
from tests.servers import serving

GATEWAY = "https://testserver"
SESSION_SECRET = "a-test-session-secret-of-more-than-32-characters"
CLIENT_SECRET = "entra-client-secret-for-tests"
# What a browser's navigation asks for.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# The real example file's tenant issuer, replaced by the loopback provider's.
ENTRA_ISSUER = f"https://login.microsoftonline.com/{ENTRA_TENANT_ID}/v2.0"
OID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def head_claims(**changes: Any) -> dict[str, Any]:
    """The claims of the head's ID token (Entra ID v2.0, app role Hallpass.Head)."""
    return entra_v2(roles=("Hallpass.Head",), kind="id", **changes)


def sealer() -> CookieSealer:
    return CookieSealer(hashlib.sha256(SESSION_SECRET.encode()).digest())


def write_identity_file(tmp_path: Path, provider: OidcProvider) -> Path:
    """deploy/identity/entra.toml as shipped, its issuer the loopback provider."""
    text = (DEPLOY_IDENTITY / "entra.toml").read_text()
    assert ENTRA_ISSUER in text
    path = tmp_path / "identity.toml"
    path.write_text(text.replace(ENTRA_ISSUER, provider.issuer))
    return path


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcProvider]:
    monkeypatch.setenv("HALLPASS_ENTRA_CLIENT_SECRET", CLIENT_SECRET)
    with running_provider(ENTRA_PATH) as provider:
        provider.register_client(
            ENTRA_CLIENT_ID, [f"{GATEWAY}/auth/callback/entra"], secret=CLIENT_SECRET
        )
        yield provider


@pytest.fixture
def common(tmp_path: Path, provider: OidcProvider) -> CommonSettings:
    return CommonSettings(
        data_dir=tmp_path / "data", identity_file=write_identity_file(tmp_path, provider)
    )


@pytest.fixture
def gateway(common: CommonSettings) -> Gateway:
    return create_gateway(
        common,
        ConsentSettings(database_url=None),
        run_background=False,
        gateway_settings=GatewaySettings(session_secret=SecretStr(SESSION_SECRET)),
    )


@pytest.fixture
def browser(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as client:
        yield client


def follow(browser: TestClient, response: httpx2.Response, hops: int = 10) -> httpx2.Response:
    """Follow redirects as a browser does: the gateway's through the test client (which keeps
    its cookies), the provider's over real HTTP."""
    for _ in range(hops):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = response.headers["location"]
        if urlsplit(location).netloc in ("", "testserver"):
            response = browser.get(location, headers=BROWSER)
        else:
            response = httpx2.get(location, headers=BROWSER, follow_redirects=False)
    raise AssertionError("too many redirects")


def visit(browser: TestClient, path: str) -> httpx2.Response:
    return follow(browser, browser.get(path, headers=BROWSER))


def signed_in_as(browser: TestClient, provider: OidcProvider, claims: dict[str, Any]) -> Any:
    provider.next_sign_in(claims)
    landed = visit(browser, "/auth/sign-in/entra?next=/auth/session")
    assert landed.status_code == 200, landed.text
    return landed.json()


def put_cookie(browser: TestClient, name: str, value: str, *, path: str = "/") -> None:
    """The browser holds ``value`` as its cookie ``name`` (replacing the one the gateway set)."""
    domains = [cookie.domain for cookie in browser.cookies.jar if cookie.name == name]
    browser.cookies.delete(name)
    # http.cookiejar files a dotless host's cookies under "<host>.local".
    browser.cookies.set(
        name, value, domain=domains[0] if domains else "testserver.local", path=path
    )


def bearer(provider: OidcProvider, claims: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {provider.mint(claims)}"}


def csrf_of(browser: TestClient) -> str:
    token: str = browser.get("/auth/session").json()["csrf_token"]
    return token


def school_name(browser: TestClient, provider: OidcProvider) -> str:
    response = browser.get("/consent/v1/school", headers=bearer(provider, entra_v2()))
    assert response.status_code == 200, response.text
    name: str = response.json()["name"]
    return name


# --- signing in ----------------------------------------------------------------------------------


def test_the_sign_in_page_lists_the_identity_files_sign_in_issuers_by_label(
    browser: TestClient,
) -> None:
    page = browser.get("/auth/sign-in?next=/consent/v1/school", headers=BROWSER)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/auth/sign-in/entra?next=%2Fconsent%2Fv1%2Fschool">Staff (Microsoft 365)' in (
        page.text
    )
    assert "/auth/dev" not in page.text  # no dev issuer beside a real provider


def test_staff_sign_in_with_entra_makes_the_cookie_stand_for_the_bearer_tokens_principal(
    browser: TestClient, provider: OidcProvider
) -> None:
    session = signed_in_as(browser, provider, head_claims())
    by_cookie = browser.put(
        "/consent/v1/school",
        json={"name": "Oakfield Primary"},
        headers={"X-CSRF-Token": session["csrf_token"]},
    )
    by_bearer = browser.put(
        "/consent/v1/school",
        json={"name": "Oakfield Primary School"},
        headers=bearer(provider, entra_v2(roles=("Hallpass.Head",))),
    )
    audit = browser.get(
        "/consent/v1/audit", headers=bearer(provider, entra_v2(roles=("Hallpass.Head",)))
    )

    assert by_cookie.status_code == 200, by_cookie.text
    assert by_bearer.status_code == 200, by_bearer.text
    assert (session["sub"], session["issuer"], session["school"]) == (OID, "entra", "oakfield")
    assert session["roles"] == ["head"]
    assert session["email"] == "j.okafor@oakfield.sch.uk"
    assert audit.status_code == 200, audit.text
    changes = [
        entry["actor"]
        for entry in audit.json()["items"]
        if entry["action"] in ("school.created", "school.updated")
    ]
    assert changes == [OID, OID]


def test_the_session_cookie_is_secure_httponly_lax_and_sealed(
    browser: TestClient, provider: OidcProvider
) -> None:
    provider.next_sign_in(head_claims())
    callback = browser.get("/auth/sign-in/entra", headers=BROWSER)
    back = httpx2.get(callback.headers["location"], follow_redirects=False)
    landed = browser.get(back.headers["location"], headers=BROWSER)

    cookie = next(
        value
        for value in landed.headers.get_list("set-cookie")
        if value.startswith(f"{SESSION_COOKIE}=")
    )
    assert landed.status_code == 303
    assert landed.headers["location"] == "/"
    assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"))
    # A JWE (five parts, dir + A256GCM) only the gateway's key opens, holding the ID token.
    value = cookie.split(";")[0].removeprefix(f"{SESSION_COOKIE}=")
    assert len(value.split(".")) == 5
    assert json.loads(base64.urlsafe_b64decode(value.split(".")[0] + "==")) == {
        "alg": "dir",
        "enc": "A256GCM",
    }
    opened = sealer().open_session(value)
    assert opened is not None
    assert opened.issuer == "entra"
    assert provider.token_requests  # the token it holds came from the exchange


def test_the_pkce_verifier_is_sent_and_a_wrong_one_is_refused_by_the_provider(
    browser: TestClient, provider: OidcProvider
) -> None:
    provider.next_sign_in(head_claims())
    started = browser.get("/auth/sign-in/entra", headers=BROWSER)
    query = parse_qs(urlsplit(started.headers["location"]).query)
    back = httpx2.get(started.headers["location"], follow_redirects=False)
    # The same sign-in, its sealed cookie holding another verifier than the challenge's.
    forged = PendingSignIn(
        issuer="entra",
        state=query["state"][0],
        nonce=query["nonce"][0],
        code_verifier="x" * 64,
        next_path="/",
        csrf="",
        expires_at=time.time() + 60,
    )
    put_cookie(browser, SIGN_IN_COOKIE, sealer().seal_sign_in(forged), path="/auth")

    refused = browser.get(back.headers["location"], headers=BROWSER)

    assert query["code_challenge_method"] == ["S256"]
    assert provider.token_requests[-1]["code_verifier"] == "x" * 64
    assert refused.status_code == 401
    assert "invalid_grant" in refused.text
    assert SESSION_COOKIE not in browser.cookies


def test_the_code_is_exchanged_with_the_verifier_whose_challenge_was_sent(
    browser: TestClient, provider: OidcProvider
) -> None:
    signed_in_as(browser, provider, head_claims())

    exchange = provider.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code"
    assert 43 <= len(exchange["code_verifier"]) <= 128


def test_a_callback_whose_state_differs_is_refused_and_nothing_is_kept(
    browser: TestClient, provider: OidcProvider
) -> None:
    provider.next_sign_in(head_claims())
    started = browser.get("/auth/sign-in/entra", headers=BROWSER)
    back = httpx2.get(started.headers["location"], follow_redirects=False)
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

    refused = browser.get(
        "/auth/callback/entra", params={"code": code, "state": "not-the-state"}, headers=BROWSER
    )

    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("text/html")
    assert "state differs" in refused.text
    assert provider.token_requests == []  # the code was never exchanged
    assert SESSION_COOKIE not in browser.cookies
    assert browser.get("/auth/session").status_code == 401


def test_a_callback_without_a_sign_in_under_way_is_refused_as_problem_json_to_an_api_client(
    browser: TestClient,
) -> None:
    refused = browser.get("/auth/callback/entra", params={"code": "abc", "state": "xyz"})

    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "sign_in_expired"


def test_a_provider_error_is_a_clear_page_and_no_session(
    browser: TestClient, provider: OidcProvider
) -> None:
    # Nobody queued to sign in: the provider answers access_denied (RFC 6749 4.1.2.1).
    page = visit(browser, "/auth/sign-in/entra?next=/auth/session")

    assert page.status_code == 401
    assert "access_denied" in page.text
    assert 'href="/auth/sign-in"' in page.text
    assert SESSION_COOKIE not in browser.cookies
    assert SIGN_IN_COOKIE not in browser.cookies


def test_an_id_token_for_a_tenant_the_file_does_not_accept_is_refused(
    browser: TestClient, provider: OidcProvider
) -> None:
    provider.next_sign_in(head_claims(tid="00000000-0000-0000-0000-000000000000"))

    page = visit(browser, "/auth/sign-in/entra")

    assert page.status_code == 401
    assert "`tid` claim" in page.text
    assert SESSION_COOKIE not in browser.cookies


def test_an_unknown_way_in_is_404(browser: TestClient) -> None:
    response = browser.get("/auth/sign-in/nobody")

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_sign_in"


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/steal",
        "https://evil.example/steal",
        "/\\evil.example",
        "\\\\evil.example",
        "/\tevil",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_an_address_to_go_back_to_off_this_site_is_replaced_by_the_home_page(
    browser: TestClient, provider: OidcProvider, next_path: str
) -> None:
    provider.next_sign_in(head_claims())
    started = browser.get("/auth/sign-in/entra", params={"next": next_path}, headers=BROWSER)
    back = httpx2.get(started.headers["location"], follow_redirects=False)

    landed = browser.get(back.headers["location"], headers=BROWSER)

    assert landed.status_code == 303
    assert landed.headers["location"] == "/"


def test_a_session_too_large_for_a_cookie_is_refused_with_a_page(
    browser: TestClient, provider: OidcProvider
) -> None:
    # An Entra token for someone in hundreds of groups (before Entra's overage kicks in).
    groups = [f"{index:08d}-0000-4000-8000-000000000000" for index in range(150)]
    provider.next_sign_in(head_claims(groups=groups))

    page = visit(browser, "/auth/sign-in/entra")

    assert page.status_code == 400
    assert "too large for a browser cookie" in page.text
    assert SESSION_COOKIE not in browser.cookies


# --- CSRF ----------------------------------------------------------------------------------------


def test_a_change_by_cookie_without_the_csrf_token_is_refused_and_nothing_changes(
    browser: TestClient, provider: OidcProvider
) -> None:
    session = signed_in_as(browser, provider, head_claims())
    browser.put(
        "/consent/v1/school",
        json={"name": "Oakfield Primary"},
        headers={"X-CSRF-Token": session["csrf_token"]},
    )

    refused = browser.put("/consent/v1/school", json={"name": "Renamed"})

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert school_name(browser, provider) == "Oakfield Primary"


def test_a_change_by_cookie_with_a_wrong_csrf_token_is_refused_and_nothing_changes(
    browser: TestClient, provider: OidcProvider
) -> None:
    session = signed_in_as(browser, provider, head_claims())
    browser.put(
        "/consent/v1/school",
        json={"name": "Oakfield Primary"},
        headers={"X-CSRF-Token": session["csrf_token"]},
    )

    refused = browser.put(
        "/consent/v1/school", json={"name": "Renamed"}, headers={"X-CSRF-Token": "guessed"}
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert school_name(browser, provider) == "Oakfield Primary"


def test_a_change_by_cookie_from_another_site_is_refused_even_with_the_token(
    browser: TestClient, provider: OidcProvider
) -> None:
    session = signed_in_as(browser, provider, head_claims())

    refused = browser.put(
        "/consent/v1/school",
        json={"name": "Renamed"},
        headers={"X-CSRF-Token": session["csrf_token"], "Origin": "https://evil.example"},
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"


def test_a_change_by_bearer_token_needs_no_csrf_token(
    browser: TestClient, provider: OidcProvider
) -> None:
    signed_in_as(browser, provider, head_claims())

    response = browser.put(
        "/consent/v1/school",
        json={"name": "Oakfield Primary"},
        headers=bearer(provider, entra_v2(roles=("Hallpass.Head",))),
    )

    assert response.status_code == 200, response.text


# --- signing out and the end of a session --------------------------------------------------------


def test_sign_out_ends_the_session_and_signs_out_at_the_provider(
    browser: TestClient, provider: OidcProvider
) -> None:
    session = signed_in_as(browser, provider, head_claims())

    signed_out = browser.post("/auth/sign-out", data={"csrf_token": session["csrf_token"]})

    assert signed_out.status_code == 303
    end_session = urlsplit(signed_out.headers["location"])
    assert f"http://{end_session.netloc}{end_session.path}" == provider.end_session_endpoint
    query = parse_qs(end_session.query)
    assert query["post_logout_redirect_uri"] == [f"{GATEWAY}/auth/sign-in"]
    assert query["client_id"] == [ENTRA_CLIENT_ID]
    assert SESSION_COOKIE not in browser.cookies
    assert browser.get("/auth/session").status_code == 401
    back = follow(browser, signed_out)
    assert back.status_code == 200
    assert "Choose how you sign in" in back.text


def test_sign_out_without_the_csrf_token_keeps_the_session(
    browser: TestClient, provider: OidcProvider
) -> None:
    signed_in_as(browser, provider, head_claims())

    refused = browser.post("/auth/sign-out", data={"csrf_token": "guessed"})

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert browser.get("/auth/session").status_code == 200


def test_not_signed_in_the_session_is_401_problem_json(browser: TestClient) -> None:
    response = browser.get("/auth/session")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_signed_in"


def test_a_browser_not_signed_in_is_sent_to_sign_in_and_back(browser: TestClient) -> None:
    response = browser.get("/consent/v1/school?view=full", headers=BROWSER)

    assert response.status_code == 303
    assert (
        response.headers["location"] == "/auth/sign-in?next=%2Fconsent%2Fv1%2Fschool%3Fview%3Dfull"
    )


def test_an_api_client_not_signed_in_still_gets_401_problem_json(browser: TestClient) -> None:
    response = browser.get("/consent/v1/school")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_an_expired_session_sends_the_browser_to_sign_in_again(
    browser: TestClient, provider: OidcProvider, gateway: Gateway
) -> None:
    # The provider's token ran out a minute ago (past the verifier's leeway): the sealed
    # session still says otherwise, as a cookie kept past its time would.
    token = provider.mint({**head_claims(), "aud": ENTRA_CLIENT_ID, "exp": int(time.time()) - 60})
    stale = BrowserSession(token=token, csrf="c", issuer="entra", expires_at=time.time() + 600)
    put_cookie(browser, SESSION_COOKIE, sealer().seal_session(stale))

    response = browser.get("/consent/v1/school", headers=BROWSER)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/sign-in?next=")
    assert SESSION_COOKIE not in browser.cookies  # forgotten by the browser


def test_a_session_sealed_with_another_key_is_no_session(browser: TestClient) -> None:
    other = CookieSealer(hashlib.sha256(b"another gateway's secret").digest())
    forged = BrowserSession(token="x.y.z", csrf="c", issuer="entra", expires_at=time.time() + 60)
    put_cookie(browser, SESSION_COOKIE, other.seal_session(forged))

    assert browser.get("/consent/v1/school").status_code == 401
    assert SESSION_COOKIE not in browser.cookies  # forgotten by the browser


# --- the dev sign-in page (embedded mode) --------------------------------------------------------


@pytest.fixture
def dev_gateway(tmp_path: Path) -> Gateway:
    common = CommonSettings(data_dir=tmp_path / "dev", auth_issuer=DEV_ISSUER, auth_jwks_url=None)
    return create_gateway(common, ConsentSettings(database_url=None), run_background=False)


def dev_form(page: httpx2.Response) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page.text))


def test_the_dev_page_lists_staff_roles_and_the_schools_carers(dev_gateway: Gateway) -> None:
    assert dev_gateway.dev_issuer is not None
    issuer = dev_gateway.dev_issuer
    with TestClient(dev_gateway, base_url=GATEWAY, follow_redirects=False) as browser:

        def auth(*roles: str, school: str = "demo", **_: Any) -> dict[str, str]:
            token = issuer.issue(sub=f"{roles[0]}@{school}", school=school, roles=roles)
            return {"Authorization": f"Bearer {token}"}

        consent = TestClient(dev_gateway, base_url=f"{GATEWAY}/consent")
        school = SchoolBuilder(consent, auth, school="demo")
        school.set_up("Hallpass Demo Primary")
        pupil = school.pupil("Amara", "Okafor")
        guardian = school.guardian(pupil, given="Grace", family="Okafor")

        sign_in = browser.get("/auth/sign-in", headers=BROWSER)
        page = browser.get("/auth/dev", headers=BROWSER)

    assert 'href="/auth/dev"' in sign_in.text
    assert page.status_code == 200
    for role in ("head", "deputy", "dsl", "office", "staff", "social_media", "pastoral", "admin"):
        assert f'name="person" value="{role}"' in page.text
    assert f'value="carer:{guardian}">Grace Okafor (carer of Amara Okafor)' in page.text


def test_dev_sign_in_as_a_role_makes_a_session_with_that_role(dev_gateway: Gateway) -> None:
    with TestClient(dev_gateway, base_url=GATEWAY, follow_redirects=False) as browser:
        form = dev_form(browser.get("/auth/dev?next=/auth/session", headers=BROWSER))
        signed_in = browser.post("/auth/dev", data={**form, "person": "dsl"})
        session = browser.get(signed_in.headers["location"])

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/auth/session"
    assert session.json()["roles"] == ["dsl"]
    assert session.json()["school"] == "demo"
    assert session.json()["issuer"] == DEV_ISSUER


def test_dev_sign_in_without_the_pages_csrf_token_is_refused(dev_gateway: Gateway) -> None:
    with TestClient(dev_gateway, base_url=GATEWAY, follow_redirects=False) as browser:
        form = dev_form(browser.get("/auth/dev", headers=BROWSER))
        refused = browser.post(
            "/auth/dev", data={**form, "csrf_token": "guessed", "person": "head"}
        )

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert SESSION_COOKIE not in browser.cookies


def test_the_dev_page_does_not_exist_beside_a_real_provider(browser: TestClient) -> None:
    assert browser.get("/auth/dev").status_code == 404
    assert browser.post("/auth/dev", data={"person": "head"}).status_code == 404


# --- the session secret --------------------------------------------------------------------------


def test_production_refuses_a_placeholder_session_secret(common: CommonSettings) -> None:
    production = common.model_copy(update={"env": Environment.production})

    with pytest.raises(InsecureSettingsError, match="HALLPASS_GATEWAY_SESSION_SECRET"):
        GatewaySettings(session_secret=SecretStr("changeme")).session_key(production)


def test_production_refuses_browser_sign_in_without_a_session_secret(
    common: CommonSettings,
) -> None:
    production = common.model_copy(update={"env": Environment.production})

    with pytest.raises(InsecureSettingsError, match="HALLPASS_GATEWAY_SESSION_SECRET"):
        GatewaySettings().session_key(production)


def test_development_makes_one_session_key_under_the_data_dir_and_keeps_it(
    tmp_path: Path,
) -> None:
    common = CommonSettings(data_dir=tmp_path / "data", auth_issuer=DEV_ISSUER)

    first = GatewaySettings().session_key(common)
    second = GatewaySettings().session_key(common)

    assert first is not None
    assert len(first) == 32
    assert first == second
    assert (tmp_path / "data" / "session-secret").stat().st_mode & 0o077 == 0


# --- proxy mode ----------------------------------------------------------------------------------


@dataclass
class Echo:
    """A service behind the proxy that says which Authorization reached it."""

    app: FastAPI
    seen: list[str | None]


def echo_service() -> Echo:
    app = FastAPI()
    echo = Echo(app=app, seen=[])

    @app.api_route("/v1/echo", methods=["GET", "POST"])
    async def answer(request: Request) -> dict[str, Any]:
        echo.seen.append(request.headers.get("authorization"))
        return {
            "authorization": request.headers.get("authorization"),
            "body": (await request.body()).decode(),
        }

    return echo


def test_proxy_mode_passes_the_sessions_token_on_and_checks_csrf_the_same_way(
    tmp_path: Path, provider: OidcProvider, common: CommonSettings
) -> None:
    echo = echo_service()
    with serving(echo.app) as upstream:
        proxied = common.model_copy(
            update={"consent_url": upstream, "media_url": upstream, "comms_url": upstream}
        )
        gateway = create_proxy_gateway(
            proxied,
            GatewaySettings(session_secret=SecretStr(SESSION_SECRET), rate_limits=False),
        )
        with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as browser:
            signed_in_as(browser, provider, head_claims())
            read = browser.get("/consent/v1/echo")
            refused = browser.post("/consent/v1/echo", json={})

    token = read.json()["authorization"]
    assert token.startswith("Bearer ")
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert echo.seen == [token]  # the refused change never reached the service


def test_a_form_carrying_its_csrf_token_reaches_the_service_whole(
    provider: OidcProvider, common: CommonSettings
) -> None:
    echo = echo_service()
    with serving(echo.app) as upstream:
        proxied = common.model_copy(
            update={"consent_url": upstream, "media_url": upstream, "comms_url": upstream}
        )
        gateway = create_proxy_gateway(
            proxied,
            GatewaySettings(session_secret=SecretStr(SESSION_SECRET), rate_limits=False),
        )
        with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as browser:
            session = signed_in_as(browser, provider, head_claims())
            answer = browser.post(
                "/consent/v1/echo",
                data={"note": "Trip on Friday", "csrf_token": session["csrf_token"]},
            )

    assert answer.status_code == 200, answer.text
    assert answer.json()["authorization"].startswith("Bearer ")
    assert parse_qs(answer.json()["body"]) == {
        "note": ["Trip on Friday"],
        "csrf_token": [session["csrf_token"]],
    }
