"""The media service's own audit trail: append-only in the database, hash chain intact."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hallpass_kit.db import Database
from tests.media import images
from tests.media.builders import MediaWorld


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_entry SET outcome = 'ok'", "DELETE FROM audit_entry"],
)
def test_media_audit_entries_cannot_be_changed_or_removed(
    world: MediaWorld, media_db: Database, statement: str
) -> None:
    world.upload()

    with pytest.raises(DBAPIError, match="append-only"), media_db.engine.begin() as connection:
        connection.execute(text(statement))


def test_media_audit_chain_verifies_after_upload_scan_check_and_publish(
    world: MediaWorld,
) -> None:
    pupil, _ = world.consented_pupil()
    media_id = world.upload(images.jpeg(images.photo(400, 300)), pupils=[pupil])
    world.scan()
    world.check("website", [media_id])
    world.publish("website", [media_id])

    report = world.client.get("/v1/audit:verify", headers=world.head).json()
    actions = [
        e["action"] for e in world.client.get("/v1/audit", headers=world.head).json()["items"]
    ]

    assert report["intact"] is True
    assert {
        "media.uploaded",
        "media.scanned",
        "publication.checked",
        "publication.published",
    } <= set(actions)
