"""Staff see when a large send will finish (issue 12): with the school's mail provider limiting
how fast one mailbox sends, the preview and the sent message's page give the time the last
family's email is expected to leave. A site of its own, started with a per-minute limit."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from hallpass_gateway.app import create_gateway
from hallpass_gateway.cli import main
from hallpass_kit.settings import CommonSettings, Environment
from tests.servers import serving
from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as
from tests.web.conftest import _environment

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_mail_forecast")]

# Two a minute: a class of the demo school (about 30 families) takes a quarter of an hour.
LIMITED = {"HALLPASS_COMMS_LIMIT_MESSAGES_PER_MINUTE": "2"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("web-limited")
    with _environment(HALLPASS_DATA_DIR=str(data_dir), HALLPASS_ENV="test", **LIMITED):
        assert main(["demo"]) == 0
        gateway = create_gateway(CommonSettings(env=Environment.test, data_dir=data_dir))
    assert gateway.dev_issuer is not None
    for service in gateway.services.values():
        service.state.hallpass.dispatcher.dispatch_pending()
    with serving(gateway, warm=True) as base_url:
        yield Site(base_url=base_url, data_dir=data_dir, issuer=gateway.dev_issuer)


def _largest_class(site: Site) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {site.token('office')}"}
    with httpx.Client(base_url=site.base_url, headers=headers) as client:
        classes = client.get("/consent/v1/classes").json()
    assert classes
    chosen = classes[0]
    return str(chosen["id"]), str(chosen["name"])


def test_a_class_send_under_a_sending_limit_says_when_its_last_email_leaves(
    page: Page, site: Site
) -> None:
    class_id, _name = _largest_class(site)
    sign_in_as(page, "head")
    page.goto("/app/mail")
    page.get_by_label("Class", exact=True).select_option(class_id)
    page.get_by_role("button", name="Choose").click()
    page.get_by_label("Subject").fill("Harvest festival")
    page.get_by_label("Message").fill("Please bring a tin for the food bank.")
    page.get_by_role("button", name="Preview who receives it").click()

    expect(page.locator("#preview-last")).to_contain_text("expected to leave at")
    assert_accessible(page)
    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.get_by_role("status")).to_contain_text("accepted for sending")
    expect(page.locator("#last-leaves")).to_contain_text("limits how fast one mailbox may send")
    assert_accessible(page)


def test_the_forecast_speaks_welsh(page: Page, site: Site) -> None:
    class_id, _name = _largest_class(site)
    sign_in_as(page, "head")
    page.goto("/app/mail?lang=cy")
    page.locator("#class_id").select_option(class_id)
    page.locator("form[action='/app/mail'] button").first.click()
    page.locator("#subject").fill("Gŵyl y cynhaeaf")
    page.locator("#body_text").fill("Dewch â thun i'r banc bwyd, os gwelwch yn dda.")
    page.locator("form[action='/app/mail/preview'] button[type=submit]").first.click()

    expect(page.locator("#preview-last")).to_contain_text("disgwylir i e-bost y teulu olaf adael")
    assert_accessible(page)
