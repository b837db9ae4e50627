"""Every file of the hostile corpus, uploaded and checked as it would be published, through an app
whose pictures are decoded by real scan workers: no server error, nothing stored on a refusal,
the right refusal where one is certain, and the API process's peak memory reported."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hallpass_media.models import MediaItem, ScanStatus
from hallpass_media.storage import LocalStorage
from tests.media.builders import MediaWorld
from tests.media.hostile.conftest import stored_files
from tests.media.hostile.corpus import PUPIL_NAMES, Hostile, corpus

MINIMUM_CORPUS = 150
# Originals are stored under a neutral name, whatever the file was called.
STORED_NAME = re.compile(r"originals/oakfield/[0-9a-f-]{36}\.(jpg|png|webp)")


def peak_memory_kib() -> int:
    """This process's resident-set high-water mark (VmHWM): the API runs in it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


def media_rows(world: MediaWorld) -> int:
    with world.context.database.session() as session:
        return int(session.execute(select(func.count()).select_from(MediaItem)).scalar_one())


def _judge(hostile: Hostile, where: str, status: int, body: object, accepted: int) -> list[str]:
    if status >= 500:
        return [f"{where} {hostile.label}: server error {status}: {body}"]
    if status == accepted:
        if hostile.refused_with is not None:
            return [f"{where} {hostile.label}: accepted, expected {sorted(hostile.refused_with)}"]
        return []
    code = body.get("code") if isinstance(body, dict) else None
    if hostile.refused_with is not None and code not in hostile.refused_with:
        expected = sorted(hostile.refused_with)
        return [f"{where} {hostile.label}: {status} {code}, expected {expected}"]
    return []


def test_hostile_files_cause_no_server_error_and_leave_nothing_behind_when_refused(
    pooled_world: MediaWorld, storage: LocalStorage, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    for name in PUPIL_NAMES:
        given, family = name.split(" ", 1)
        pooled_world.school.family(given, family)
    files = corpus()
    assert len(files) >= MINIMUM_CORPUS
    memory_before = peak_memory_kib()
    failures: list[str] = []
    accepted = refused = 0

    for hostile in files:
        files_before, rows_before = stored_files(storage.root), media_rows(pooled_world)
        upload = pooled_world.upload_response(
            hostile.data, filename=hostile.filename, content_type=hostile.content_type
        )
        body = upload.json() if upload.content else None
        failures += _judge(hostile, "upload", upload.status_code, body, 201)
        if upload.status_code == 201:
            accepted += 1
            new = [p for p in stored_files(storage.root) if p not in files_before]
            names = [p.relative_to(storage.root).as_posix() for p in new]
            if len(new) != 1 or not STORED_NAME.fullmatch(names[0]):
                failures.append(f"upload {hostile.label}: stored as {names}")
        else:
            refused += 1
            if stored_files(storage.root) != files_before:
                failures.append(f"upload {hostile.label}: refused but a file was left")
            if media_rows(pooled_world) != rows_before:
                failures.append(f"upload {hostile.label}: refused but a row was left")

        checked = pooled_world.client.post(
            "/v1/publications:check-file",
            data={"channel": "website"},
            files={"file": (hostile.filename, hostile.data, hostile.content_type)},
            headers=pooled_world.auth("cms"),
        )
        verdict = checked.json() if checked.content else None
        failures += _judge(hostile, "check-file", checked.status_code, verdict, 200)
        named = any(hostile.filename.endswith(f"{name}.jpg") for name in PUPIL_NAMES)
        if named and checked.status_code == 200:
            codes = [p["code"] for p in verdict["images"][0]["problems"]]  # type: ignore[index]
            if "name_in_filename" not in codes:
                failures.append(f"check-file {hostile.label}: pupil's name not found: {codes}")

    # The scan job meets every accepted file too, in its workers.
    while pooled_world.scan():
        pass
    with pooled_world.context.database.session() as session:
        waiting = session.scalars(
            select(MediaItem.id).where(
                MediaItem.scan_status.in_([ScanStatus.pending, ScanStatus.scanning])
            )
        ).all()
    if waiting:
        failures.append(f"{len(waiting)} accepted uploads were never scanned")

    memory_after = peak_memory_kib()
    # Shown even when output is captured: the run's report is the point of `make fuzz-files`.
    with capsys.disabled():
        sys.stdout.write(
            f"\nhostile corpus: {len(files)} files, {accepted} accepted, {refused} refused on "
            f"upload, {time.monotonic() - started:.1f} s; API process peak RSS (VmHWM) "
            f"{memory_before / 1024:.0f} MiB before the corpus, "
            f"{memory_after / 1024:.0f} MiB after\n"
        )
    assert failures == []
