"""Carers' pages in a real browser: sign in, see the children, in English and Welsh."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_parents_pages")]


def _first_carer(page: Page) -> str:
    page.goto("/auth/dev?school=demo")
    choice = page.locator('ul[aria-label="Carers"] button').first.get_attribute("value")
    assert choice is not None
    return choice


def test_a_carer_signs_in_and_sees_their_children(page: Page, site: Site) -> None:
    sign_in_as(page, _first_carer(page))

    page.goto("/parents")

    expect(page.get_by_role("heading", level=1)).to_have_text("Your children")
    expect(page.locator("main ul li a").first).to_have_attribute(
        "href", re.compile(r"^/parents/children/[0-9a-f-]{36}$")
    )
    assert_accessible(page)


def test_the_carers_page_speaks_welsh_when_asked_and_remembers(page: Page, site: Site) -> None:
    sign_in_as(page, _first_carer(page))

    page.goto("/parents?lang=cy")
    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Eich plant")
    page.goto("/parents")

    expect(page.get_by_role("heading", level=1)).to_have_text("Eich plant")
    assert_accessible(page)


def test_a_browser_not_signed_in_is_sent_to_sign_in(page: Page, site: Site) -> None:
    page.goto("/parents")

    assert "/auth/" in page.url
