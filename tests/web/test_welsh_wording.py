"""A carer reading the school's words in Welsh: the page shows each purpose's Welsh words, the
answer records the version and the language shown, and the receipt and history say so (C10)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_welsh_wording")]


def _as(site: Site, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.token(role)}"}


def _family(site: Site) -> tuple[str, str]:
    """A pupil of the demo school and their carer, made for one test."""
    with httpx.Client(base_url=site.base_url) as http:
        pupil = http.post(
            "/consent/v1/pupils",
            json={
                "mis_id": f"CY-{uuid.uuid4().hex[:10]}",
                "given_name": "Gwenllian",
                "family_name": "Huws",
                "year_group": 2,
            },
            headers=_as(site, "office"),
        )
        assert pupil.status_code == 201, pupil.text
        guardian = http.post(
            "/consent/v1/guardians",
            json={
                "given_name": "Siân",
                "family_name": "Huws",
                "children": [{"pupil_id": pupil.json()["id"], "parental_responsibility": True}],
            },
            headers=_as(site, "office"),
        )
        assert guardian.status_code == 201, guardian.text
    return pupil.json()["id"], guardian.json()["id"]


def _purpose(site: Site, code: str) -> dict[str, Any]:
    with httpx.Client(base_url=site.base_url) as http:
        purpose: dict[str, Any] = http.get(
            f"/consent/v1/purposes/{code}", headers=_as(site, "office")
        ).json()
    return purpose


def _sign_in_as_carer(page: Page, guardian: str) -> None:
    page.goto("/auth/dev?school=demo")
    button = page.locator('ul[aria-label="Carers"] button').first
    button.evaluate("(button, id) => { button.value = 'carer:' + id; }", guardian)
    button.click()
    page.wait_for_load_state()


def _section(page: Page, title: str) -> Locator:
    return page.locator("section.purpose", has=page.get_by_role("heading", name=title, exact=True))


def _history(site: Site, pupil: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=site.base_url) as http:
        answer = http.get(f"/consent/v1/pupils/{pupil}/consents", headers=_as(site, "office"))
    assert answer.status_code == 200, answer.text
    history: list[dict[str, Any]] = answer.json()["history"]
    return history


def test_a_carer_reading_in_welsh_agrees_to_the_welsh_words_and_the_record_says_cy_c10(
    page: Page, site: Site
) -> None:
    pupil, guardian = _family(site)
    purpose = _purpose(site, "print_publication")
    assert purpose["wording_cy"]
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}")
    page.get_by_role("link", name="Cymraeg").click()
    # The purpose's title is in Welsh too, as the heading of its words.
    section = _section(page, purpose["title_cy"])
    expect(section.locator('p.wording[lang="cy"]')).to_have_text(purpose["wording_cy"])
    assert_accessible(page)
    section.get_by_role("button", name="Ydw, rwy'n cytuno").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Derbynneb caniatâd")
    main = page.locator("main")
    expect(main.locator('p.wording[lang="cy"]')).to_have_text(purpose["wording_cy"])
    expect(main).to_contain_text("Cymraeg")
    expect(main).to_contain_text(hashlib.sha256(purpose["wording_cy"].encode()).hexdigest())
    assert_accessible(page)
    record = _history(site, pupil)[0]
    assert (record["wording_version"], record["wording_language"]) == (
        purpose["wording_version"],
        "cy",
    )
    assert record["wording"] == purpose["wording_cy"]
    page.goto(f"/parents/children/{pupil}")
    expect(page.locator("table tbody tr").first).to_contain_text("Cymraeg")


def test_a_carer_reading_in_english_is_recorded_in_english_c10(page: Page, site: Site) -> None:
    pupil, guardian = _family(site)
    purpose = _purpose(site, "print_publication")
    _sign_in_as_carer(page, guardian)

    page.goto(f"/parents/children/{pupil}?lang=en")
    section = _section(page, purpose["title"])
    expect(section.locator('p.wording[lang="en"]')).to_have_text(purpose["wording"])
    section.get_by_role("button", name="Yes, I agree").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Consent receipt")
    assert _history(site, pupil)[0]["wording_language"] == "en"


NEWSPAPER_EN = (
    "I agree that the local newspaper may print my child's photograph with their first name "
    "and family name when the school takes part in a community event."
)
NEWSPAPER_CY = (
    "Rwy'n cytuno y caiff y papur newydd lleol argraffu llun o fy mhlentyn gyda'i enw cyntaf "
    "a'i gyfenw pan fydd yr ysgol yn cymryd rhan mewn digwyddiad cymunedol."
)


def test_the_head_publishes_english_then_welsh_words_and_carers_see_each_c10(
    page: Page, site: Site
) -> None:
    pupil, guardian = _family(site)
    title = _purpose(site, "newspaper_named")["title_cy"]  # the carer reads in Welsh
    sign_in_as(page, "head")
    page.goto("/app/purposes/newspaper_named?lang=en")
    assert_accessible(page)
    page.get_by_label("Words in English").fill(NEWSPAPER_EN)
    page.get_by_label("Words in Welsh (optional)").fill("")
    page.get_by_role("button", name="Publish as a new version").click()
    expect(page.get_by_role("status")).to_contain_text("is published")
    expect(page.locator("main dl")).to_contain_text("No Welsh words yet.")
    assert_accessible(page)

    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}?lang=cy")
    section = _section(page, title)
    expect(section.locator('p.wording[lang="en"]')).to_have_text(NEWSPAPER_EN)
    expect(section).to_contain_text("Nid yw'r ysgol wedi rhoi'r geiriau hyn yn Gymraeg eto")
    assert_accessible(page)
    section.get_by_role("button", name="Ydw, rwy'n cytuno").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Derbynneb caniatâd")
    assert _history(site, pupil)[0]["wording_language"] == "en"

    sign_in_as(page, "head")
    page.goto("/app/purposes/newspaper_named?lang=en")
    page.get_by_label("Words in Welsh (optional)").fill(NEWSPAPER_CY)
    page.get_by_role("button", name="Publish as a new version").click()
    expect(page.get_by_role("status")).to_contain_text("is published")
    expect(page.locator('main dl p.wording[lang="cy"]')).to_have_text(NEWSPAPER_CY)

    _sign_in_as_carer(page, guardian)
    page.goto(f"/parents/children/{pupil}?lang=cy")
    expect(_section(page, title).locator('p.wording[lang="cy"]')).to_have_text(NEWSPAPER_CY)


def test_only_the_head_or_an_admin_gets_the_words_page(page: Page, site: Site) -> None:
    sign_in_as(page, "office")

    response = page.goto("/app/purposes")

    assert response is not None
    assert response.status == 403
