"""Fixtures shared by the consent tests: a school that is set up, and a reader of its records."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import TokenFactory
from tests.consent.builders import SchoolBuilder, SchoolRecords


@pytest.fixture
def school(client: TestClient, auth: TokenFactory) -> SchoolBuilder:
    builder = SchoolBuilder(client, auth)
    builder.set_up()
    return builder


@pytest.fixture
def records(client: TestClient, auth: TokenFactory) -> SchoolRecords:
    return SchoolRecords(client, auth)
