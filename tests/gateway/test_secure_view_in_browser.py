"""E5 in a browser: the link in a sensitive message's email, followed by the carer it was sent to,
through the all-in-one gateway at the deployment's public address: sign in, back to the link,
the message as an accessible page. API clients still get JSON."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient

from hallpass_comms.context import CommsContext
from hallpass_consent.settings import ConsentSettings
from hallpass_gateway.app import Gateway, create_gateway
from hallpass_kit.auth import DevIssuer
from hallpass_kit.settings import DEV_ISSUER, CommonSettings
from tests.consent.builders import SchoolBuilder
from tests.identity.examples import DEPLOY_IDENTITY
from tests.identity.provider import OidcProvider, running_provider
from tests.identity.shapes import KEYCLOAK_PATH, PARENTS_PATH, keycloak, parent_keycloak

GATEWAY = "https://testserver"
SCHOOL = "oakfield"
DOMAIN = f"{SCHOOL}.sch.uk"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SUBJECT = "About Amara & the <b>trip</b>"
BODY = "Dear Grace,\n\nAmara's <script>alert(1)</script> plan is agreed.\nKind regards"


@dataclass(frozen=True)
class SentMessage:
    link: str
    guardian_id: str
    other_guardian_id: str


def tokens(issuer: DevIssuer) -> Any:
    def auth(*roles: str, school: str = SCHOOL, guardian: str | None = None) -> dict[str, str]:
        token = issuer.issue(
            sub=f"{roles[0]}@{school}",
            school=school,
            roles=roles,
            guardian_id=guardian,
            email=f"{roles[0]}@{DOMAIN}",
        )
        return {"Authorization": f"Bearer {token}"}

    return auth


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gateway(data_dir: Path) -> Gateway:
    common = CommonSettings(
        data_dir=data_dir, auth_issuer=DEV_ISSUER, auth_jwks_url=None, public_base_url=GATEWAY
    )
    return create_gateway(common, ConsentSettings(database_url=None), run_background=False)


@pytest.fixture
def browser(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as client:
        yield client


@pytest.fixture
def sent(gateway: Gateway, browser: TestClient, data_dir: Path) -> SentMessage:
    """A sensitive message to one family, delivered: its email holds the link (E5)."""
    assert gateway.dev_issuer is not None
    return send_sensitive_message(gateway, browser, data_dir, tokens(gateway.dev_issuer))


def send_sensitive_message(
    gateway: Gateway,
    browser: TestClient,
    data_dir: Path,
    auth: Any,
    carer_email: str | None = None,
) -> SentMessage:
    """The school, two families and mail settings set up, and a sensitive message sent to the
    first family and delivered; the link is read from the email."""
    consent = TestClient(gateway, base_url=f"{GATEWAY}/consent")
    school = SchoolBuilder(consent, auth, school=SCHOOL)
    school.set_up()
    pupil = school.pupil("Amara", "Okafor")
    guardian = school.guardian(pupil, given="Grace", family="Okafor", email=carer_email)
    other = school.guardian(school.pupil("Oliver", "Shaw"), given="Tom", family="Shaw")
    settings = browser.put(
        "/comms/v1/settings",
        json={
            "domains": [DOMAIN],
            "head_address": f"head@{DOMAIN}",
            "deputy_address": f"deputy@{DOMAIN}",
            "dsl_address": f"dsl@{DOMAIN}",
            "office_address": f"office@{DOMAIN}",
        },
        headers=auth("head"),
    )
    assert settings.status_code == 200, settings.text
    message = browser.post(
        "/comms/v1/messages",
        json={
            "recipients": {"pupil_ids": [pupil]},
            "subject": SUBJECT,
            "body_text": BODY,
            "sensitivity": "sensitive",
            "urgent": True,
        },
        headers=auth("staff"),
    )
    assert message.status_code == 202, message.text
    context = gateway.services["/comms"].state.hallpass
    assert isinstance(context, CommsContext)
    assert context.delivery_worker is not None
    context.delivery_worker.run_until_idle()
    emails = [
        _text_of(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
        for path in sorted((data_dir / "outbox").glob("**/*.eml"))
    ]
    links = {
        link
        for email in emails
        for link in re.findall(
            r"https://testserver/comms/v1/messages/[0-9a-f-]+/secure-view", email
        )
    }
    assert len(links) == 1, emails
    return SentMessage(link=links.pop(), guardian_id=guardian, other_guardian_id=other)


def _text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    content: str = body.get_content()
    return content


def dev_sign_in_as_carer(browser: TestClient, sign_in_page: httpx2.Response, guardian: str) -> Any:
    """On the sign-in page: the dev way in, the school's page, the carer's button."""
    dev_link = re.search(r'href="(/auth/dev[^"]*)"', sign_in_page.text)
    assert dev_link is not None, sign_in_page.text
    dev_page = browser.get(
        dev_link.group(1).replace("&amp;", "&") + f"&school={SCHOOL}", headers=BROWSER
    )
    form = dict(
        re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', dev_page.text)
    )
    assert f'value="carer:{guardian}"' in dev_page.text
    return browser.post("/auth/dev", data={**form, "person": f"carer:{guardian}"})


def test_the_e5_link_signs_the_carer_in_and_brings_them_back_to_the_message_page(
    browser: TestClient, sent: SentMessage
) -> None:
    path = urlsplit(sent.link).path

    first = browser.get(sent.link, headers=BROWSER)
    sign_in = browser.get(first.headers["location"], headers=BROWSER)
    signed_in = dev_sign_in_as_carer(browser, sign_in, sent.guardian_id)
    page = browser.get(signed_in.headers["location"], headers=BROWSER)

    assert first.status_code == 303
    assert urlsplit(first.headers["location"]).path == "/auth/sign-in"
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == path
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "Amara&#x27;s" in page.text
    assert '<html lang="en-GB">' in page.text


def test_the_secure_view_page_escapes_every_word_of_the_message(
    browser: TestClient, sent: SentMessage
) -> None:
    sign_in = browser.get(browser.get(sent.link, headers=BROWSER).headers["location"])
    dev_sign_in_as_carer(browser, sign_in, sent.guardian_id)

    page = browser.get(sent.link, headers=BROWSER)

    assert page.status_code == 200, page.text
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<h1>About Amara &amp; the &lt;b&gt;trip&lt;/b&gt;</h1>" in page.text


def test_another_family_signed_in_in_a_browser_does_not_see_the_message(
    browser: TestClient, sent: SentMessage
) -> None:
    sign_in = browser.get(browser.get(sent.link, headers=BROWSER).headers["location"])
    dev_sign_in_as_carer(browser, sign_in, sent.other_guardian_id)

    page = browser.get(sent.link, headers=BROWSER)

    assert page.status_code == 404
    assert "plan is agreed" not in page.text


def test_an_api_client_still_reads_the_secure_view_as_json(
    gateway: Gateway, browser: TestClient, sent: SentMessage
) -> None:
    assert gateway.dev_issuer is not None
    carer = tokens(gateway.dev_issuer)("parent", guardian=sent.guardian_id)

    response = browser.get(sent.link, headers=carer)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["body_text"] == BODY


# --- a carer with their own account at the school's Keycloak ------------------------------------

KEYCLOAK_STAFF = "https://id.oakfield.sch.uk/realms/oakfield"
KEYCLOAK_PARENTS = "https://id.oakfield.sch.uk/realms/parents"
CARER_EMAIL = "sam.carter@example.com"


def staff_bearer(provider: OidcProvider) -> Any:
    """Bearer headers for the school's staff, minted by the staff realm (roles as client roles)."""

    def auth(*roles: str, **_: Any) -> dict[str, str]:
        claims = keycloak(client_roles=roles, email=f"{roles[0]}@{DOMAIN}")
        return {"Authorization": f"Bearer {provider.mint(claims)}"}

    return auth


def test_a_carer_signing_in_with_their_own_account_reads_the_e5_message_as_a_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALLPASS_KEYCLOAK_CLIENT_SECRET", "keycloak-secret")
    with (
        running_provider(KEYCLOAK_PATH) as staff,
        running_provider(PARENTS_PATH) as parents,
    ):
        staff.register_client(
            "hallpass", [f"{GATEWAY}/auth/callback/keycloak"], secret="keycloak-secret"
        )
        parents.register_client("hallpass", [f"{GATEWAY}/auth/callback/parents"])
        identity = tmp_path / "identity.toml"
        identity.write_text(
            (DEPLOY_IDENTITY / "keycloak.toml")
            .read_text()
            .replace(KEYCLOAK_STAFF, staff.issuer)
            .replace(KEYCLOAK_PARENTS, parents.issuer)
        )
        data_dir = tmp_path / "data"
        common = CommonSettings(data_dir=data_dir, identity_file=identity, public_base_url=GATEWAY)
        gateway = create_gateway(common, ConsentSettings(database_url=None), run_background=False)
        with TestClient(gateway, base_url=GATEWAY, follow_redirects=False) as browser:
            sent = send_sensitive_message(
                gateway, browser, data_dir, staff_bearer(staff), carer_email=CARER_EMAIL
            )
            parents.next_sign_in(parent_keycloak(email=CARER_EMAIL, kind="id"))

            first = browser.get(sent.link, headers=BROWSER)
            sign_in = browser.get(first.headers["location"], headers=BROWSER)
            way_in = re.search(
                r'href="(/auth/sign-in/parents[^"]*)">Parents and carers', sign_in.text
            )
            assert way_in is not None, sign_in.text
            to_provider = browser.get(way_in.group(1).replace("&amp;", "&"), headers=BROWSER)
            back = httpx2.get(to_provider.headers["location"], follow_redirects=False)
            signed_in = browser.get(back.headers["location"], headers=BROWSER)
            page = browser.get(signed_in.headers["location"], headers=BROWSER)

    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == urlsplit(sent.link).path
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "plan is agreed" in page.text
