"""Every example identity file shipped under ``deploy/identity/`` loads as it stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from hallpass_kit.identity import People, load_identity_file
from tests.identity.examples import DEPLOY_IDENTITY

EXAMPLES = sorted(DEPLOY_IDENTITY.glob("*.toml"))


def test_the_examples_folder_holds_the_documented_files() -> None:
    assert {path.name for path in EXAMPLES} >= {
        "entra.toml",
        "keycloak.toml",
        "google-via-keycloak.toml",
        "trust.toml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_an_example_identity_file_loads(path: Path) -> None:
    identity = load_identity_file(path)

    assert identity.issuers


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_staff_issuer_of_an_example_can_sign_people_in_from_a_browser(path: Path) -> None:
    identity = load_identity_file(path)

    staff = [issuer for issuer in identity.issuers if issuer.people is People.staff]
    assert staff
    assert all(issuer.sign_in is not None for issuer in staff)
