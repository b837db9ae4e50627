"""Fixtures of the browser tests: the running system, Chromium, a fresh page per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from hallpass_gateway.app import create_gateway
from hallpass_gateway.cli import main
from hallpass_kit.settings import CommonSettings, Environment
from tests.servers import serving
from tests.web.browser import CHROMIUM, Site


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo school (as `make run` seeds it) behind the all-in-one gateway."""
    data_dir = tmp_path_factory.mktemp("web")
    with _environment(HALLPASS_DATA_DIR=str(data_dir), HALLPASS_ENV="test"):
        assert main(["demo"]) == 0
    common = CommonSettings(env=Environment.test, data_dir=data_dir)
    gateway = create_gateway(common)
    assert gateway.dev_issuer is not None
    # Seeding leaves the demo's events (one consent.changed per record, over a thousand) waiting
    # in the outbox. Delivered here, before the site serves, the tests meet a quiet system.
    # Left to the server's background workers, they were still being delivered while a module's
    # first test wrote, holding SQLite's one write lock: on a busy machine that test's writes
    # waited past the lock timeout (a 500) or past the client's timeout, whichever test it was.
    for service in gateway.services.values():
        service.state.hallpass.dispatcher.dispatch_pending()
    with serving(gateway, warm=True) as base_url:
        yield Site(base_url=base_url, data_dir=data_dir, issuer=gateway.dev_issuer)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser, site: Site) -> Iterator[Page]:
    context = chromium.new_context(base_url=site.base_url, locale="en-GB")
    page = context.new_page()
    yield page
    context.close()
