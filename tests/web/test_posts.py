"""The posts pages in a real browser: a post is checked with its problems drawn where they are,
a clean one is published with its approver recorded, and a carer's withdrawal brings a
publication into the takedown queue, where it is confirmed down."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from tests.media import images
from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_posts")]

# Media's worker scans a new picture within seconds; OCR's first use loads its models.
SCAN_DEADLINE_SECONDS = 120.0
# Consent's dispatcher tells media of a withdrawal within a second or two.
TAKEDOWN_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Pupil:
    id: str
    given: str
    family: str
    guardian: str


@contextmanager
def _as(site: Site, role: str, **claims: Any) -> Iterator[httpx.Client]:
    token = site.token(role, **claims)
    with httpx.Client(
        base_url=site.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.status_code} {response.text}"
    return response.json() if response.content else None


def _pupil(site: Site, given: str, family: str, *, purpose: str = "website_photo") -> Pupil:
    """A pupil of the demo school with one carer who agreed to ``purpose`` on paper."""
    with _as(site, "office") as office:
        pupil = _ok(
            office.post(
                "/consent/v1/pupils",
                json={
                    "mis_id": f"W{uuid.uuid4().hex[:10].upper()}",
                    "given_name": given,
                    "family_name": family,
                    "year_group": 4,
                },
            )
        )["id"]
        guardian = _ok(
            office.post(
                "/consent/v1/guardians",
                json={
                    "given_name": "Carys",
                    "family_name": family,
                    "email": f"carys.{uuid.uuid4().hex[:8]}@example.org",
                    "children": [{"pupil_id": pupil}],
                },
            )
        )["id"]
        _ok(
            office.post(
                "/consent/v1/consents",
                json={
                    "pupil_id": pupil,
                    "purpose": purpose,
                    "decision": "granted",
                    "guardian_id": guardian,
                    "method": "paper",
                },
            )
        )
    return Pupil(pupil, given, family, guardian)


def _camera(client: httpx.Client) -> str:
    devices = _ok(client.get("/media/v1/devices"))["items"]
    return str(next(device["id"] for device in devices if device["active"]))


def _stored_picture(site: Site, pupil: Pupil, *, file_name: str = "sports-day.jpg") -> str:
    """A scanned picture of ``pupil`` from the demo school's camera."""
    with _as(site, "staff") as staff:
        media = _ok(
            staff.post(
                "/media/v1/media",
                data={"device_id": _camera(staff), "pupils": f'[{{"pupil_id": "{pupil.id}"}}]'},
                files={"file": (file_name, images.jpeg(images.photo(640, 480)), "image/jpeg")},
            )
        )["id"]
        deadline = time.monotonic() + SCAN_DEADLINE_SECONDS
        while _ok(staff.get(f"/media/v1/media/{media}"))["scan"]["status"] != "done":
            assert time.monotonic() < deadline, "the picture was never scanned"
            time.sleep(0.25)
    return str(media)


def _check(page: Page, *, media_id: str | None, caption: str, channel: str = "website") -> None:
    page.goto("/app/posts")
    assert_accessible(page)
    page.get_by_label("Where it will go out").select_option(channel)
    page.get_by_label("Caption").fill(caption)
    if media_id is not None:
        page.locator(f"#media-{media_id}").check()
    page.get_by_role("button", name="Check the post").click()
    page.wait_for_load_state()


def test_a_caption_naming_a_pupil_is_refused_with_the_name_highlighted(
    page: Page, site: Site
) -> None:
    pupil = _pupil(site, "Bethan", "Aldridge")
    media = _stored_picture(site, pupil)
    sign_in_as(page, "social_media")

    _check(page, media_id=media, caption="Bethan Aldridge won the sack race!")

    expect(page.locator("#verdict-summary")).to_contain_text("must not go out")
    mark = page.locator('[data-field="caption"] mark')
    expect(mark).to_have_count(1)
    expect(mark).to_contain_text("Bethan Aldridge")
    problem = page.locator(f"#{mark.get_attribute('aria-describedby')}")
    expect(problem).to_contain_text("Caption")
    expect(problem).to_contain_text("full name")
    assert_accessible(page)


def test_a_clean_post_is_published_with_its_approver_recorded(page: Page, site: Site) -> None:
    pupil = _pupil(site, "Owain", "Kendrick")
    media = _stored_picture(site, pupil)
    sign_in_as(page, "head")

    _check(page, media_id=media, caption="Sports day in the sunshine")
    expect(page.locator("#verdict-summary")).to_contain_text("may go out on School website")
    expect(page.locator(".pupils")).to_contain_text("Owain Kendrick: consent given")
    assert_accessible(page)
    page.get_by_label("Address where it is published").fill("https://demo.sch.uk/news/sports")
    page.get_by_role("button", name="Publish to School website").click()

    expect(page.get_by_role("status")).to_contain_text("Published")
    expect(page.locator("#approved-by")).to_have_text("dev-head@demo")
    publication = page.url.split("/app/posts/publications/")[1].split("?")[0]
    with _as(site, "head") as head:
        stored = _ok(head.get(f"/media/v1/publications/{publication}"))
    assert (stored["status"], stored["approved_by"], stored["target_url"]) == (
        "live",
        "dev-head@demo",
        "https://demo.sch.uk/news/sports",
    )
    assert_accessible(page)


def test_a_new_picture_is_uploaded_and_its_name_and_face_are_boxed(
    page: Page, site: Site, tmp_path: Any
) -> None:
    _pupil(site, "Tegwen", "Marchant")
    picture = images.photo(900, 600, seed=7)
    images.draw_text(picture, "TEGWEN MARCHANT", at=(60, 60), size=72)
    images.draw_face(picture, (600, 380), 200)
    upload = tmp_path / "trip.jpg"
    upload.write_bytes(images.jpeg(picture))
    sign_in_as(page, "deputy")

    page.goto("/app/posts")
    page.get_by_label("Caption").fill("Our trip")
    page.get_by_label("New pictures", exact=True).set_input_files(str(upload))
    page.get_by_role("button", name="Check the post").click()
    for _ in range(12):  # the page waits a while for the scan; a slow first scan is asked again
        if "not been scanned yet" not in page.content():
            break
        page.get_by_role("button", name="Check the post").click()

    expect(page.locator(".checked-picture h3")).to_have_text("Picture: trip.jpg")
    expect(page.locator(".checked-picture img")).to_have_attribute(
        "src", re.compile(r"^/media/v1/media/[0-9a-f-]{36}/original$")
    )
    boxes = page.locator(".checked-picture .boxes")
    expect(boxes).to_contain_text("A pupil's name in the picture")
    expect(boxes).to_contain_text("A face")
    expect(page.locator(".checked-picture .box-name")).not_to_have_count(0)
    expect(page.locator(".checked-picture .box-face")).not_to_have_count(0)
    expect(page.locator(".checked-picture .problems")).to_contain_text("Text in the picture")
    assert_accessible(page)


def test_a_withdrawal_puts_the_publication_in_the_takedown_queue_and_confirming_removes_it(
    page: Page, site: Site
) -> None:
    pupil = _pupil(site, "Gwion", "Pemberton")
    media = _stored_picture(site, pupil)
    with _as(site, "head") as head:
        publication = _ok(
            head.post(
                "/media/v1/publications",
                json={"channel": "website", "media_ids": [media], "caption": "Choir concert"},
            )
        )["id"]
    with _as(site, "head") as head:
        website = _ok(head.get("/consent/v1/purposes/website_photo"))["title"]
    # The carer withdraws on their own page, in the browser, as a parent would.
    page.goto("/auth/dev?school=demo")
    carer = page.locator('ul[aria-label="Carers"] button').first
    carer.evaluate("(button, id) => { button.value = 'carer:' + id; }", pupil.guardian)
    carer.click()
    page.goto(f"/parents/children/{pupil.id}")
    section = page.locator(
        "section.purpose", has=page.get_by_role("heading", name=website, exact=True)
    )
    section.get_by_role("button", name="Withdraw my consent").click()
    expect(page.get_by_role("status")).to_contain_text("Your answer is saved")
    page.context.clear_cookies()
    sign_in_as(page, "deputy")

    row = page.locator(f"#takedown-{publication}")
    deadline = time.monotonic() + TAKEDOWN_DEADLINE_SECONDS
    page.goto("/app/posts/takedowns")
    while row.count() == 0:
        assert time.monotonic() < deadline, "the publication never reached the takedown queue"
        time.sleep(0.5)
        page.reload()
    expect(row).to_contain_text("Choir concert")
    expect(row).to_contain_text("Consent withdrawn")
    assert_accessible(page)
    row.get_by_label("I have removed it everywhere it was published").check()
    row.get_by_role("button", name="Confirm it is down").click()

    expect(page.get_by_role("status")).to_have_text("Recorded as taken down.")
    expect(page.locator(f"#takedown-{publication}")).to_have_count(0)
    with _as(site, "head") as head:
        assert _ok(head.get(f"/media/v1/publications/{publication}"))["status"] == "taken_down"
    assert_accessible(page)


def test_the_takedown_queue_speaks_welsh(page: Page, site: Site) -> None:
    sign_in_as(page, "social_media")

    page.goto("/app/posts/takedowns?lang=cy")

    expect(page.locator("html")).to_have_attribute("lang", "cy")
    expect(page.get_by_role("heading", level=1)).to_have_text("Negeseuon i'w tynnu i lawr")
    assert_accessible(page)


def test_the_console_home_lists_the_posts_pages_for_a_publisher_only(
    page: Page, site: Site
) -> None:
    sign_in_as(page, "social_media")
    page.goto("/app")
    expect(page.get_by_role("link", name="Check a post")).to_have_attribute("href", "/app/posts")
    expect(page.get_by_role("link", name="Posts to take down")).to_be_visible()
    assert_accessible(page)

    sign_in_as(page, "office")
    page.goto("/app")
    expect(page.get_by_role("link", name="Check a post")).to_have_count(0)
    assert_accessible(page)


def test_a_form_with_a_file_is_refused_without_the_sessions_csrf_token(
    page: Page, site: Site
) -> None:
    sign_in_as(page, "social_media")
    picture: FilePayload = {"name": "trip.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8"}

    forged = page.request.post(
        "/app/posts/check",
        multipart={"csrf_token": "not-the-token", "caption": "Our trip", "files": picture},
        max_redirects=0,
    )
    missing = page.request.post(
        "/app/posts/check", multipart={"caption": "Our trip", "files": picture}, max_redirects=0
    )

    assert (forged.status, forged.json()["code"]) == (403, "csrf_failed")
    assert (missing.status, missing.json()["code"]) == (403, "csrf_failed")
