"""The office imports the MIS export in a real browser: the upload queues a background import,
its page shows a progress bar that refreshes itself while the import runs, and then the summary
or every bad row (row, column, problem)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from hallpass_consent.models import ImportStatus, PupilImport
from hallpass_kit.db import Database
from hallpass_kit.settings import sqlite_url
from tests.web.browser import Site, assert_accessible, needs_chromium, sign_in_as

pytestmark = [needs_chromium, pytest.mark.xdist_group("test_office_import")]

PROGRESS_PAGE = re.compile(r"/app/office/imports/[0-9a-f-]{36}$")


def upload(page: Page, csv: str, *, only_check: bool = False) -> None:
    page.goto("/app/office/import")
    page.get_by_label("CSV file").set_input_files(
        {"name": "pupils.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    )
    if only_check:
        page.get_by_label("Only check the file; change nothing").check()
    page.get_by_role("button", name="Import").click()


def test_an_upload_goes_to_its_progress_page_and_ends_with_the_summary(
    page: Page, site: Site
) -> None:
    tag = uuid.uuid4().hex[:6]
    csv = (
        "mis_id,given_name,family_name,year_group,class\n"
        f"G{tag}1,Aled,Roberts{tag},3,Import {tag}\n"
        f"G{tag}2,Bethan,Roberts{tag},3,Import {tag}\n"
    )
    sign_in_as(page, "office")
    page.goto("/app/office/import")
    assert_accessible(page)

    upload(page, csv)

    expect(page).to_have_url(PROGRESS_PAGE)
    # The page refreshes itself each second until the import ends; it ends with the summary.
    expect(page.get_by_role("status")).to_have_text("The file was imported.")
    expect(page.get_by_role("row", name="Rows read")).to_contain_text("2")
    expect(page.get_by_role("row", name="Pupils added")).to_contain_text("2")
    assert_accessible(page)
    finished = page.request.get(page.url)
    assert "refresh" not in finished.headers  # an ended import's page stays still
    page.goto(f"/app/office?q=Roberts{tag}")
    expect(page.get_by_role("status")).to_have_text("Pupils found: 2")


def test_a_bad_file_shows_every_bad_row_by_row_and_column(page: Page, site: Site) -> None:
    tag = uuid.uuid4().hex[:6]
    csv = (
        "mis_id,given_name,family_name,year_group,class\n"
        f"B{tag}1,Aled,Jenkins{tag},3,Import {tag}\n"
        f"B{tag}2,Bethan,Jenkins{tag},eleventy,Import {tag}\n"
        f"B{tag}3,,Jenkins{tag},3,Import {tag}\n"
    )
    sign_in_as(page, "office")

    upload(page, csv)

    expect(page).to_have_url(PROGRESS_PAGE)
    expect(page.get_by_role("alert")).to_contain_text("Nothing was imported")
    problems = page.get_by_role("table", name="Problems in the file")
    expect(problems.locator("tbody tr")).to_have_count(2)
    expect(problems.locator("tbody tr").nth(0).locator("th")).to_have_text("3")
    expect(problems.locator("tbody tr").nth(0).locator("td").nth(0)).to_have_text("year_group")
    expect(problems.locator("tbody tr").nth(1).locator("th")).to_have_text("4")
    expect(problems.locator("tbody tr").nth(1).locator("td").nth(0)).to_have_text("given_name")
    assert_accessible(page)
    page.goto(f"/app/office?q=Jenkins{tag}")
    expect(page.get_by_role("status")).to_have_text("Pupils found: 0")


def test_a_checked_file_reports_its_summary_and_changes_nothing(page: Page, site: Site) -> None:
    tag = uuid.uuid4().hex[:6]
    csv = f"mis_id,given_name,family_name,year_group\nC{tag},Ceri,Morgan{tag},2\n"
    sign_in_as(page, "office")

    upload(page, csv, only_check=True)

    expect(page.get_by_role("status")).to_contain_text("Nothing was changed")
    expect(page.get_by_role("row", name="Pupils added")).to_contain_text("1")
    page.goto(f"/app/office?q=Morgan{tag}")
    expect(page.get_by_role("status")).to_have_text("Pupils found: 0")


def running_import(site: Site, *, stage: str, done: int, total: int) -> str:
    """An import caught part way, as the progress page finds one while a worker is on it (a
    row with no queued job, so it stays as it is while the page is looked at)."""
    database = Database(sqlite_url(site.data_dir, "consent"))
    ident = uuid.uuid4()
    with database.session() as session:
        session.add(
            PupilImport(
                id=ident,
                school_id="demo",
                status=ImportStatus.running,
                dry_run=False,
                stage=stage,
                done=done,
                total=total,
                content=None,
                summary=None,
                problems=None,
                created_by="office@demo",
                created_at=dt.datetime.now(dt.UTC),
                finished_at=None,
            )
        )
    database.dispose()
    return str(ident)


def test_a_running_import_shows_a_progress_bar_that_refreshes_itself(
    page: Page, site: Site
) -> None:
    import_id = running_import(site, stage="checking", done=37, total=120)
    sign_in_as(page, "office")

    response = page.goto(f"/app/office/imports/{import_id}")

    assert response is not None
    assert response.status == 200
    assert response.headers["refresh"] == "1"  # reloads itself each second, with no script
    bar = page.get_by_role("progressbar", name="Importing the file")
    expect(bar).to_have_attribute("value", "37")
    expect(bar).to_have_attribute("max", "120")
    expect(page.get_by_role("status")).to_have_text("Checking row 37 of 120")
    expect(page.get_by_role("status")).to_have_attribute("aria-live", "polite")
    # axe reads the page as it stands; the same page not reloading itself holds still for it.
    page.goto(f"/app/office/imports/{import_id}?auto=off")
    expect(bar).to_have_attribute("value", "37")
    assert_accessible(page)


def test_the_reader_can_stop_the_page_updating_itself(page: Page, site: Site) -> None:
    import_id = running_import(site, stage="checking", done=5, total=9)
    sign_in_as(page, "office")
    page.goto(f"/app/office/imports/{import_id}")

    with page.expect_navigation() as stopped:
        page.get_by_role("link", name="Stop updating this page by itself").click()

    response = stopped.value
    assert response is not None
    assert "refresh" not in response.headers
    expect(page.get_by_role("link", name="Check again")).to_be_visible()
    expect(page.get_by_role("link", name="Update this page by itself")).to_be_visible()
    assert_accessible(page)


def test_while_saving_the_bar_says_saving(page: Page, site: Site) -> None:
    import_id = running_import(site, stage="importing", done=0, total=120)
    sign_in_as(page, "office")

    page.goto(f"/app/office/imports/{import_id}")

    expect(page.get_by_role("status")).to_have_text("Saving 120 rows…")
    page.goto(f"/app/office/imports/{import_id}?auto=off")
    expect(page.get_by_role("status")).to_have_text("Saving 120 rows…")
    assert_accessible(page)


def test_a_teacher_cannot_reach_the_import_pages(page: Page, site: Site) -> None:
    import_id = running_import(site, stage="checking", done=1, total=2)
    sign_in_as(page, "staff")

    for path in ("/app/office/import", f"/app/office/imports/{import_id}"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 403
        expect(page.get_by_role("alert")).to_be_visible()
