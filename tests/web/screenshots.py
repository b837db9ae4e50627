"""Screenshots of the console and the carers' pages for docs/ and the README: `make screenshots`.

The demo school (as `make run` seeds it) behind the all-in-one gateway, Debian's Chromium, the
same dev sign-in a person uses; each page is checked with axe before it is photographed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, sync_playwright

from hallpass_gateway.app import create_gateway
from hallpass_gateway.cli import main
from hallpass_kit.settings import CommonSettings, Environment
from tests.servers import serving
from tests.web.browser import CHROMIUM, assert_accessible, sign_in_as

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESK: ViewportSize = {"width": 1280, "height": 900}


def _shoot(page: Page, path: str, name: str) -> None:
    page.goto(path)
    page.wait_for_load_state()
    assert_accessible(page)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    sys.stdout.write(f"docs/screenshots/{name}.png  {path}\n")


def take() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        os.environ.update(HALLPASS_DATA_DIR=folder, HALLPASS_ENV="test")
        if main(["demo"]) != 0:
            raise SystemExit("the demo school could not be seeded")
        gateway = create_gateway(CommonSettings(env=Environment.test, data_dir=Path(folder)))
        with serving(gateway) as base_url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            staff = browser.new_context(base_url=base_url, viewport=DESK, locale="en-GB")
            page = staff.new_page()
            sign_in_as(page, "head")
            _shoot(page, "/app", "staff-home")
            _shoot(page, "/app/office", "office-find")
            _shoot(page, "/app/activity", "activity")
            _shoot(page, "/app/posts", "post-check")
            _shoot(page, "/app/audit", "audit")
            _shoot(page, "/app/requests/new", "consent-request-new")
            _shoot(page, "/app/purposes", "purposes")
            _shoot(page, "/app/office/import", "office-import")
            staff.close()
            dsl = browser.new_context(base_url=base_url, viewport=DESK, locale="en-GB")
            page = dsl.new_page()
            sign_in_as(page, "dsl")
            _shoot(page, "/app/restrictions", "dsl-restrictions")
            dsl.close()
            carer = browser.new_context(base_url=base_url, viewport=PHONE, locale="en-GB")
            page = carer.new_page()
            page.goto("/auth/dev?school=demo")
            first = page.locator('ul[aria-label="Carers"] button').first.get_attribute("value")
            assert first is not None
            sign_in_as(page, first)
            _shoot(page, "/parents", "parents-home")
            child = page.locator("main ul li a").first.get_attribute("href")
            assert child is not None
            _shoot(page, child, "parents-child")
            _shoot(page, child + "?lang=cy", "parents-child-cy")
            carer.close()
            browser.close()


if __name__ == "__main__":
    take()
