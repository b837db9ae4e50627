"""A browser session chooses the school it acts for: a trust's officer, and a carer with children
in two academies of the trust, signed in through deploy/identity/trust.toml with its issuers on
loopback OpenID Connect providers (Entra ID v2.0 for staff, the trust's Keycloak for carers)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_gateway.proxy import create_proxy_gateway
from hallpass_gateway.settings import GatewaySettings
from hallpass_kit.settings import CommonSettings
from tests.consent.builders import SchoolBuilder
from tests.gateway.test_secure_view_in_browser import send_sensitive_message
from tests.identity.examples import DEPLOY_IDENTITY
from tests.identity.provider import OidcProvider, running_provider
from tests.identity.shapes import (
    OAKFIELD_STAFF_GROUP,
    PARENTS_PATH,
    RIVERSIDE_STAFF_GROUP,
    TRUST_CLIENT_ID,
    TRUST_PATH,
    TRUST_TENANT_ID,
    UNRELATED_GROUP,
    Kind,
    entra_v2,
    parent_keycloak,
)
from tests.servers import serving

GATEWAY = "https://testserver"
SESSION_SECRET = "a-test-session-secret-of-more-than-32-characters"
CLIENT_SECRET = "trust-entra-client-secret-for-tests"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"Accept": "application/json"}
# deploy/identity/trust.toml's issuers, replaced by the loopback providers'.
TRUST_ENTRA = f"https://login.microsoftonline.com/{TRUST_TENANT_ID}/v2.0"
TRUST_PARENTS = "https://id.oakvalley.org.uk/realms/parents"
GROUPS = {"oakfield": OAKFIELD_STAFF_GROUP, "riverside": RIVERSIDE_STAFF_GROUP}
NAMES = {"oakfield": "Oakfield Academy", "riverside": "Riverside Academy"}
OFFICER = "5d3c1a7e-8b2f-4e6d-9a0c-7f1e3b5d9c42"
CARER_EMAIL = "sam.carter@example.com"


@dataclass(frozen=True)
class Trust:
    gateway: Gateway
    browser: TestClient
    staff: OidcProvider
    parents: OidcProvider
    data_dir: Path
    common: CommonSettings


def staff_claims(role: str, school: str | None, *, kind: Kind = "access") -> dict[str, Any]:
    """A member of the trust's tenant: an app role, and their academy's staff group (a trust
    officer is in none)."""
    app_role = {"trust_admin": "Hallpass.TrustAdmin", "trust_dpo": "Hallpass.TrustDPO"}.get(
        role, f"Hallpass.{role.title()}"
    )
    return entra_v2(
        roles=[app_role],
        preferred_username=f"{role}@{school or 'oakvalley'}.sch.uk",
        tid=TRUST_TENANT_ID,
        client_id=TRUST_CLIENT_ID,
        oid=OFFICER if school is None else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{role}@{school}")),
        groups=[*([GROUPS[school]] if school else []), UNRELATED_GROUP],
        kind=kind,
    )


def staff_bearer(staff: OidcProvider) -> Any:
    """Bearer headers for the academies' staff (SchoolBuilder's token factory)."""

    def auth(*roles: str, school: str = "oakfield", **_: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {staff.mint(staff_claims(roles[0], school))}"}

    return auth


def officer_bearer(staff: OidcProvider, role: str, school: str) -> dict[str, str]:
    token = staff.mint(staff_claims(role, None))
    return {"Authorization": f"Bearer {token}", "X-Hallpass-School": school}


@pytest.fixture
def trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trust]:
    """The all-in-one gateway under trust.toml, both academies set up by their heads."""
    monkeypatch.setenv("HALLPASS_ENTRA_CLIENT_SECRET", CLIENT_SECRET)
    with running_provider(TRUST_PATH) as staff, running_provider(PARENTS_PATH) as parents:
        staff.register_client(
            TRUST_CLIENT_ID, [f"{GATEWAY}/auth/callback/entra"], secret=CLIENT_SECRET
        )
        parents.register_client("hallpass", [f"{GATEWAY}/auth/callback/parents"])
        text = (DEPLOY_IDENTITY / "trust.toml").read_text()
        assert TRUST_ENTRA in text
        assert TRUST_PARENTS in text
        identity = tmp_path / "identity.toml"
        identity.write_text(
            text.replace(TRUST_ENTRA, staff.issuer).replace(TRUST_PARENTS, parents.issuer)
        )
        data_dir = tmp_path / "data"
        common = CommonSettings(data_dir=data_dir, identity_file=identity, public_base_url=GATEWAY)
        gateway = create_gateway(
            common,
            ConsentSettings(database_url=None),
            run_background=False,
            gateway_settings=GatewaySettings(session_secret=SecretStr(SESSION_SECRET)),
        )
        with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as browser:
            for school, name in NAMES.items():
                consent = TestClient(gateway, base_url=f"{GATEWAY}/consent")
                SchoolBuilder(consent, staff_bearer(staff), school=school).set_up(name=name)
            yield Trust(gateway, browser, staff, parents, data_dir, common)


def follow(browser: TestClient, response: httpx2.Response, hops: int = 10) -> httpx2.Response:
    """Redirects followed as a browser does: the gateway's through the test client (which keeps
    its cookies), the providers' over real HTTP."""
    for _ in range(hops):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = response.headers["location"]
        if urlsplit(location).netloc in ("", "testserver"):
            response = browser.get(location, headers=BROWSER)
        else:
            response = httpx2.get(location, headers=BROWSER, follow_redirects=False)
    raise AssertionError("too many redirects")


def sign_in(trust: Trust, way: str, next_path: str) -> httpx2.Response:
    """Signed in by ``way`` ("entra" or "parents"), then wherever ``next_path`` leads."""
    started = trust.browser.get(f"/auth/sign-in/{way}?next={quote(next_path)}", headers=BROWSER)
    return follow(trust.browser, started)


def officer_signs_in(trust: Trust, next_path: str = "/auth/session") -> httpx2.Response:
    trust.staff.next_sign_in(staff_claims("trust_admin", None, kind="id"))
    return sign_in(trust, "entra", next_path)


def chooser_form(page: httpx2.Response) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page.text))


def session_of(trust: Trust) -> dict[str, Any]:
    response = trust.browser.get("/auth/session")
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def choose(trust: Trust, school: str, *, next_path: str = "/auth/session") -> httpx2.Response:
    return trust.browser.post(
        "/auth/school",
        data={"school": school, "next": next_path, "csrf_token": session_of(trust)["csrf_token"]},
    )


# --- a trust's officer ---------------------------------------------------------------------------


def test_a_trust_officers_page_sends_the_browser_to_choose_the_school_and_back(
    trust: Trust,
) -> None:
    chooser = officer_signs_in(trust, "/consent/v1/school")
    chosen = trust.browser.post(
        "/auth/school", data={**chooser_form(chooser), "school": "riverside"}
    )
    page = follow(trust.browser, chosen)

    assert chooser.status_code == 200, chooser.text
    assert chooser.url.path == "/auth/school"
    assert chooser.url.params["next"] == "/consent/v1/school"
    assert '<button type="submit" name="school" value="oakfield">' in chooser.text
    assert '<button type="submit" name="school" value="riverside">' in chooser.text
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/consent/v1/school"
    assert page.status_code == 200, page.text
    assert page.json()["name"] == "Riverside Academy"


def test_a_trust_officer_acts_in_the_chosen_school_and_is_audited_there(trust: Trust) -> None:
    officer_signs_in(trust)
    choose(trust, "riverside")

    renamed = trust.browser.put(
        "/consent/v1/school",
        json={"name": "Riverside Academy (Oak Valley)"},
        headers={"X-CSRF-Token": session_of(trust)["csrf_token"]},
    )
    audits = {
        school: trust.browser.get(
            "/consent/v1/audit", headers=officer_bearer(trust.staff, "trust_dpo", school)
        ).json()["items"]
        for school in NAMES
    }

    assert renamed.status_code == 200, renamed.text
    assert session_of(trust)["school"] == "riverside"
    assert [e["actor"] for e in audits["riverside"] if e["action"] == "school.updated"] == [OFFICER]
    assert [e for e in audits["oakfield"] if e["actor"] == OFFICER] == []


def test_a_trust_officer_cannot_choose_a_school_outside_the_trust(trust: Trust) -> None:
    officer_signs_in(trust)
    csrf = session_of(trust)["csrf_token"]

    refused = trust.browser.post(
        "/auth/school",
        data={"school": "hilltop", "next": "/", "csrf_token": csrf},
        headers=API,
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "school_not_allowed"
    assert session_of(trust)["school"] is None


def test_choosing_a_school_without_the_sessions_csrf_token_is_refused(trust: Trust) -> None:
    officer_signs_in(trust)

    no_token = trust.browser.post(
        "/auth/school", data={"school": "riverside", "next": "/"}, headers=API
    )
    other_site = trust.browser.post(
        "/auth/school",
        data={"school": "riverside", "csrf_token": session_of(trust)["csrf_token"]},
        headers={**API, "Origin": "https://evil.example"},
    )

    assert (no_token.status_code, no_token.json()["code"]) == (403, "csrf_failed")
    assert (other_site.status_code, other_site.json()["code"]) == (403, "csrf_failed")
    assert session_of(trust)["school"] is None


def test_choosing_a_school_goes_back_only_to_a_path_of_this_site(trust: Trust) -> None:
    officer_signs_in(trust)

    chosen = trust.browser.post(
        "/auth/school",
        data={
            "school": "oakfield",
            "next": "//evil.example/",
            "csrf_token": session_of(trust)["csrf_token"],
        },
    )

    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/"


def test_an_api_client_with_the_cookie_is_still_told_to_choose_in_problem_json(
    trust: Trust,
) -> None:
    officer_signs_in(trust)

    response = trust.browser.get("/consent/v1/school", headers=API)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "school_not_chosen"


def test_a_request_naming_its_school_keeps_it_over_the_sessions_choice(trust: Trust) -> None:
    officer_signs_in(trust)
    choose(trust, "riverside")

    named = trust.browser.get("/consent/v1/school", headers={"X-Hallpass-School": "oakfield"})

    assert named.status_code == 200, named.text
    assert named.json()["name"] == "Oakfield Academy"


def test_a_head_of_one_academy_has_it_chosen_at_sign_in(trust: Trust) -> None:
    trust.staff.next_sign_in(staff_claims("head", "riverside", kind="id"))

    page = sign_in(trust, "entra", "/consent/v1/school")

    assert page.status_code == 200, page.text
    assert page.json()["name"] == "Riverside Academy"
    assert session_of(trust)["school"] == "riverside"


def test_the_chooser_sends_a_browser_not_signed_in_to_sign_in_first(trust: Trust) -> None:
    response = trust.browser.get("/auth/school?next=/comms/v1/messages", headers=BROWSER)

    assert response.status_code == 303
    assert response.headers["location"] == (
        "/auth/sign-in?next=%2Fauth%2Fschool%3Fnext%3D%252Fcomms%252Fv1%252Fmessages"
    )


# --- a carer with children in both academies ------------------------------------------------------


def carer_in_both_academies(trust: Trust) -> tuple[str, dict[str, str]]:
    """A sensitive message to the carer's family at Oakfield, delivered; the same carer (same
    verified address) holds a record at Riverside too. The link, and each school's record id."""
    sent = send_sensitive_message(
        trust.gateway,
        trust.browser,
        trust.data_dir,
        staff_bearer(trust.staff),
        carer_email=CARER_EMAIL,
    )
    riverside = SchoolBuilder(
        TestClient(trust.gateway, base_url=f"{GATEWAY}/consent"),
        staff_bearer(trust.staff),
        school="riverside",
    )
    sibling = riverside.pupil("Kofi", "Okafor")
    other_record = riverside.guardian(sibling, given="Sam", family="Carter", email=CARER_EMAIL)
    return sent.link, {"oakfield": sent.guardian_id, "riverside": other_record}


def test_a_carer_in_two_academies_follows_the_e5_link_through_sign_in_and_the_chooser(
    trust: Trust,
) -> None:
    link, _ = carer_in_both_academies(trust)
    trust.parents.next_sign_in(parent_keycloak(email=CARER_EMAIL, kind="id"))

    first = trust.browser.get(link, headers=BROWSER)
    sign_in_page = trust.browser.get(first.headers["location"], headers=BROWSER)
    way_in = re.search(r'href="(/auth/sign-in/parents[^"]*)">Parents and carers', sign_in_page.text)
    assert way_in is not None, sign_in_page.text
    chooser = follow(
        trust.browser, trust.browser.get(way_in.group(1).replace("&amp;", "&"), headers=BROWSER)
    )
    chosen = trust.browser.post(
        "/auth/school", data={**chooser_form(chooser), "school": "oakfield"}
    )
    page = trust.browser.get(chosen.headers["location"], headers=BROWSER)

    assert urlsplit(first.headers["location"]).path == "/auth/sign-in"
    assert chooser.status_code == 200, chooser.text
    assert chooser.url.path == "/auth/school"
    assert 'value="riverside"' in chooser.text
    assert chosen.headers["location"] == urlsplit(link).path
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "plan is agreed" in page.text


def test_a_carers_session_lists_both_academies_and_the_chosen_one(trust: Trust) -> None:
    _, records = carer_in_both_academies(trust)
    trust.parents.next_sign_in(parent_keycloak(email=CARER_EMAIL, kind="id"))
    sign_in(trust, "parents", "/auth/session")

    before = session_of(trust)
    choose(trust, "riverside")
    after = session_of(trust)

    assert before["grants"] == [
        {"school": "oakfield", "roles": ["parent"]},
        {"school": "riverside", "roles": ["parent"]},
    ]
    assert before["school"] is None
    assert (after["school"], after["guardian_id"]) == ("riverside", records["riverside"])
    assert after["roles"] == ["parent"]


def test_a_carer_cannot_choose_a_school_without_a_record_there(trust: Trust) -> None:
    carer_in_both_academies(trust)
    trust.parents.next_sign_in(parent_keycloak(email=CARER_EMAIL, kind="id"))
    sign_in(trust, "parents", "/auth/session")

    refused = choose(trust, "hilltop")

    assert refused.status_code == 403
    assert session_of(trust)["school"] is None


def test_in_proxy_mode_a_carers_schools_are_asked_of_consent_over_http(trust: Trust) -> None:
    _, records = carer_in_both_academies(trust)
    # Consent on its own address, the gateway in front of it forwarding every prefix there.
    with serving(trust.gateway.services["/consent"], lifespan="off") as consent:
        apart = trust.common.model_copy(
            update={"consent_url": consent, "media_url": consent, "comms_url": consent}
        )
        gateway = create_proxy_gateway(
            apart, GatewaySettings(session_secret=SecretStr(SESSION_SECRET), rate_limits=False)
        )
        with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as browser:
            proxied = replace(trust, browser=browser)
            trust.parents.next_sign_in(parent_keycloak(email=CARER_EMAIL, kind="id"))
            sign_in(proxied, "parents", "/auth/session")
            before = session_of(proxied)
            choose(proxied, "riverside")
            after = session_of(proxied)
            school = browser.get("/consent/v1/school", headers=API)

    assert [grant["school"] for grant in before["grants"]] == ["oakfield", "riverside"]
    assert (after["school"], after["guardian_id"]) == ("riverside", records["riverside"])
    assert school.status_code == 200, school.text
    assert school.json()["name"] == "Riverside Academy"
