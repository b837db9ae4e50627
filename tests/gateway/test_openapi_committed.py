"""The committed specs in openapi/ are what clients integrate against: they must be the code's."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from hallpass_gateway.cli import openapi_documents

OPENAPI_DIR = Path(__file__).resolve().parents[2] / "openapi"
SPECS = ("comms.json", "consent.json", "gateway.json", "media.json")

generated = cache(openapi_documents)


def test_every_generated_spec_is_committed() -> None:
    assert set(generated()) == set(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_committed_spec_matches_code(name: str) -> None:
    committed = OPENAPI_DIR / name
    assert committed.exists(), f"openapi/{name} is missing: run `make openapi` and commit it"
    assert committed.read_text() == generated()[name], (
        f"openapi/{name} differs from the code: run `make openapi` and commit the result"
    )
