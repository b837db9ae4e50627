"""Real-browser tests of the console and the carers' pages: the all-in-one gateway served on
loopback, Debian's Chromium driven by Playwright (no browser is downloaded), axe-core on every page.

A test signs a person in at the dev sign-in page exactly as a person would, then clicks through.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from hallpass_kit.auth import DevIssuer

CHROMIUM = os.environ.get("HALLPASS_TEST_CHROMIUM", "/usr/bin/chromium")
# axe-core's impacts that fail a page: WCAG 2.2 AA problems a person would meet.
FAILING_IMPACTS = frozenset({"serious", "critical"})

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)",
)


@dataclass
class Site:
    """The running system as a browser sees it."""

    base_url: str
    data_dir: Path
    issuer: DevIssuer

    def token(self, *roles: str, school: str = "demo", **claims: Any) -> str:
        return self.issuer.issue(
            sub=f"{roles[0]}@{school}",
            school=school,
            roles=roles,
            email=f"{roles[0]}@{school}.sch.uk",
            **claims,
        )


def sign_in_as(page: Page, person: str, *, school: str = "demo") -> None:
    """Through the dev sign-in page, as a person would: choose who, press the button."""
    page.goto(f"/auth/dev?school={school}")
    page.locator(f'button[name="person"][value="{person}"]').click()
    page.wait_for_load_state()


def assert_accessible(page: Page) -> None:
    """axe-core finds no serious or critical WCAG problem on the page as it stands."""
    results = Axe().run(page)
    failing = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
        for violation in results.response["violations"]
        if violation["impact"] in FAILING_IMPACTS
    ]
    assert not failing, f"{page.url}:\n" + "\n".join(failing)
