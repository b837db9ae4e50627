"""Scans cannot hurt the service: sizes are refused on the header, decoding happens in bounded
worker processes, and a picture that kills its worker (or whose process died) is failed once,
never scanned in a loop, while other uploads go on being scanned."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
import uuid

import pytest
from httpx2 import Response
from sqlalchemy import select, update

from hallpass_kit.db import utcnow
from hallpass_media.context import MediaContext, media_context
from hallpass_media.media.scan import MAX_SCAN_ATTEMPTS, claim, scan_pending
from hallpass_media.models import MediaItem, ScanStatus
from hallpass_media.scanning import (
    ImageLimits,
    ImageRefused,
    ImageUnscannable,
    ScanWorkers,
    WorkerConfig,
    check_header,
)
from hallpass_media.storage import LocalStorage
from tests.consent.builders import assert_problem
from tests.media import images
from tests.media.builders import MediaWorld, plain_photo
from tests.media.hostile.conftest import POOLED, stored_files
from tests.media.hostile.corpus import (
    jpeg_claiming,
    strip_png,
    webp_claiming,
    webp_frames,
    webp_with_canvas,
)

LIMITS = ImageLimits()
# Limits so loose that a strip reaches a worker, where it exhausts the memory cap.
NO_HEADER_LIMITS = ImageLimits(max_side=10**9, max_aspect_ratio=1e9)


def header_refusal(data: bytes) -> str:
    with pytest.raises(ImageRefused) as refused:
        check_header(data, LIMITS)
    return refused.value.code


def item(world: MediaWorld, media_id: str) -> MediaItem:
    with world.context.database.session() as session:
        found = session.get(MediaItem, uuid.UUID(media_id))
        assert found is not None
        session.expunge(found)
        return found


def media_rows(world: MediaWorld) -> int:
    with world.context.database.session() as session:
        return len(session.scalars(select(MediaItem.id)).all())


def workers_of(media: MediaContext) -> ScanWorkers:
    pool = media.get_scanner()
    assert isinstance(pool, ScanWorkers)
    return pool


def wait_until_busy(pool: ScanWorkers, pid: int) -> None:
    """Wait (not a timing assertion: the worker is stopped and cannot finish) until the file is
    with worker ``pid``."""
    deadline = time.monotonic() + 120
    while pid not in pool.busy_pids():
        assert time.monotonic() < deadline, "the file never reached its worker"
        time.sleep(0.01)


# --- refused on the header ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "code"),
    [
        (1, 49_000_000, "image_side_too_long"),
        (2, 24_000_000, "image_side_too_long"),
        (10, 4_900_000, "image_side_too_long"),
        (100, 490_000, "image_side_too_long"),
        (49_000_000, 1, "image_side_too_long"),
        # 15 megapixels, every side under the limit, but 15 times as long as it is wide.
        (15_000, 1_000, "extreme_aspect_ratio"),
        (1_000, 13_000, "extreme_aspect_ratio"),
        (30_000, 30_000, "too_many_pixels"),
    ],
)
def test_strips_and_thin_pictures_under_the_pixel_limit_are_refused_on_the_header(
    width: int, height: int, code: str
) -> None:
    assert header_refusal(strip_png(width, height)) == code


def test_a_long_panorama_within_every_limit_passes_the_header() -> None:
    checked = check_header(strip_png(12_000, 1_000), LIMITS)
    assert (checked.width, checked.height) == (12_000, 1_000)


@pytest.mark.parametrize(
    ("width", "height", "code"),
    [
        (65_535, 65_535, "too_many_pixels"),
        (1, 65_535, "image_side_too_long"),
        (65_535, 1, "image_side_too_long"),
        (15_000, 1_000, "extreme_aspect_ratio"),
    ],
)
def test_a_jpeg_whose_frame_header_lies_about_its_size_is_refused(
    width: int, height: int, code: str
) -> None:
    assert header_refusal(jpeg_claiming(width, height)) == code
    assert header_refusal(jpeg_claiming(width, height, progressive=True)) == code


@pytest.mark.parametrize("lossless", [False, True])
def test_a_webp_whose_picture_header_lies_about_its_size_is_refused(lossless: bool) -> None:
    assert header_refusal(webp_claiming(16_383, 16_383, lossless=lossless)) == "too_many_pixels"
    assert header_refusal(webp_claiming(1, 16_383, lossless=lossless)) == "extreme_aspect_ratio"


def test_a_webp_canvas_far_larger_than_its_picture_is_refused() -> None:
    assert header_refusal(webp_with_canvas(16_777_216, 1)) == "image_side_too_long"
    assert header_refusal(webp_with_canvas(6_000, 6_000)) == "corrupt_image"


def test_an_animation_is_refused_whatever_its_frame_count() -> None:
    assert header_refusal(webp_frames(2)) == "animated_image"
    assert header_refusal(webp_frames(1, (16_383, 16_383))) == "too_many_pixels"


def test_the_reported_strip_upload_is_refused_and_nothing_is_stored(
    pooled_world: MediaWorld, storage: LocalStorage
) -> None:
    response = pooled_world.upload_response(
        strip_png(1, 49_000_000), filename="strip.png", content_type="image/png"
    )

    assert_problem(response, 413, "image_side_too_long")
    assert stored_files(storage.root) == []
    assert media_rows(pooled_world) == 0


def test_check_file_with_the_reported_strip_is_refused_without_a_server_error(
    pooled_world: MediaWorld,
) -> None:
    response = pooled_world.client.post(
        "/v1/publications:check-file",
        data={"channel": "website"},
        files={"file": ("strip.png", strip_png(1, 49_000_000), "image/png")},
        headers=pooled_world.auth("cms"),
    )

    assert_problem(response, 413, "image_side_too_long")


# --- a file that exhausts or kills its worker ------------------------------------------------


def test_a_picture_that_exhausts_its_worker_is_unscannable_and_the_next_one_is_scanned() -> None:
    pool = ScanWorkers(
        WorkerConfig(limits=NO_HEADER_LIMITS, ocr=False, memory_bytes=1024 * 1024 * 1024),
        size=1,
    )
    try:
        with pytest.raises(ImageUnscannable) as unscannable:
            pool.scan(strip_png(1, 49_000_000))
        assert "more memory than a scan worker has" in unscannable.value.detail

        result = pool.scan(plain_photo())
        assert (result.width, result.height) == (320, 240)
    finally:
        pool.close()
    assert pool.worker_pids() == []


@pytest.mark.parametrize(
    "pooled_settings",
    [
        POOLED.model_copy(
            update={
                "max_side": 10**8,
                "max_aspect_ratio": 1e8,
                "scan_worker_memory_mb": 1024,
            }
        )
    ],
    indirect=True,
)
def test_check_file_that_exhausts_its_worker_answers_422_and_the_service_goes_on(
    pooled_world: MediaWorld,
) -> None:
    def check_file(data: bytes) -> Response:
        return pooled_world.client.post(
            "/v1/publications:check-file",
            data={"channel": "website"},
            files={"file": ("strip.png", data, "image/png")},
            headers=pooled_world.auth("cms"),
        )

    refused = check_file(strip_png(1, 49_000_000))
    problem = assert_problem(refused, 422, "image_unscannable")
    assert "memory" in problem["detail"]

    answered = check_file(plain_photo())
    assert answered.status_code == 200, answered.text


def test_a_worker_killed_mid_scan_fails_that_upload_and_the_next_upload_is_scanned(
    pooled_world: MediaWorld, pooled_media: MediaContext
) -> None:
    first = pooled_world.upload(plain_photo(seed=1))
    second = pooled_world.upload(plain_photo(seed=2))
    pool = workers_of(pooled_media)
    [worker] = pool.worker_pids()
    # Stopped, the worker cannot finish the first scan before it is killed.
    os.kill(worker, signal.SIGSTOP)
    scanning = threading.Thread(target=pooled_world.scan)
    scanning.start()
    wait_until_busy(pool, worker)
    os.kill(worker, signal.SIGKILL)
    scanning.join()

    failed = item(pooled_world, first)
    assert failed.scan_status is ScanStatus.failed
    assert failed.scan_error is not None
    assert failed.scan_error.startswith("image_unscannable")
    assert "SIGKILL" in failed.scan_error
    assert item(pooled_world, second).scan_status is ScanStatus.done
    assert worker not in pool.worker_pids()
    # Nothing is left to scan: the failed upload is not taken again.
    assert pooled_world.scan() == 0


@pytest.mark.parametrize(
    "pooled_settings", [POOLED.model_copy(update={"scan_seconds": 5.0})], indirect=True
)
def test_a_worker_over_its_time_limit_is_killed_and_that_upload_is_failed(
    pooled_world: MediaWorld, pooled_media: MediaContext
) -> None:
    first = pooled_world.upload(plain_photo(seed=3))
    pool = workers_of(pooled_media)
    [worker] = pool.worker_pids()
    os.kill(worker, signal.SIGSTOP)

    assert pooled_world.scan() == 1

    failed = item(pooled_world, first)
    assert failed.scan_status is ScanStatus.failed
    assert failed.scan_error is not None
    assert "within 5 seconds" in failed.scan_error
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    second = pooled_world.upload(plain_photo(seed=4))
    assert pooled_world.scan() == 1
    assert item(pooled_world, second).scan_status is ScanStatus.done


@pytest.mark.parametrize(
    "pooled_settings", [POOLED.model_copy(update={"scan_wait_seconds": 0.0})], indirect=True
)
def test_check_file_when_every_worker_is_busy_answers_503_with_retry_after(
    pooled_world: MediaWorld, pooled_media: MediaContext
) -> None:
    pooled_world.upload(plain_photo(seed=5))  # starts the one worker
    pool = workers_of(pooled_media)
    [worker] = pool.worker_pids()
    os.kill(worker, signal.SIGSTOP)
    outcome: list[BaseException] = []

    def hold_the_worker() -> None:
        try:
            pool.scan(plain_photo(seed=6))
        except ImageUnscannable as error:
            outcome.append(error)

    holder = threading.Thread(target=hold_the_worker)
    holder.start()
    try:
        wait_until_busy(pool, worker)
        response = pooled_world.client.post(
            "/v1/publications:check-file",
            data={"channel": "website"},
            files={"file": ("busy.jpg", plain_photo(seed=7), "image/jpeg")},
            headers=pooled_world.auth("cms"),
        )
    finally:
        os.kill(worker, signal.SIGKILL)
        holder.join()

    assert_problem(response, 503, "scanner_busy")
    assert int(response.headers["Retry-After"]) > 0
    assert len(outcome) == 1


def test_upload_verifies_the_whole_file_in_a_worker(
    pooled_world: MediaWorld, storage: LocalStorage
) -> None:
    # The structure is whole, so only a full decode (in the worker) finds the damage.
    damaged = bytearray(images.png(images.photo(40, 30)))
    damaged[damaged.index(b"IDAT") + 10] ^= 0xFF

    response = pooled_world.upload_response(
        bytes(damaged), filename="damaged.png", content_type="image/png"
    )

    assert_problem(response, 422, "corrupt_image")
    assert stored_files(storage.root) == []


# --- the attempts limit ----------------------------------------------------------------------


def _age_claim(world: MediaWorld, media_id: str) -> None:
    """As if the process holding the claim had died long ago."""
    with world.context.database.session() as session:
        session.execute(
            update(MediaItem)
            .where(MediaItem.id == uuid.UUID(media_id))
            .values(scan_claimed_until=utcnow() - dt.timedelta(minutes=1))
        )


def test_an_upload_whose_scans_keep_dying_with_their_process_is_given_up_after_the_limit(
    world: MediaWorld,
) -> None:
    doomed = world.upload(plain_photo(seed=8))
    database = world.context.database
    for attempt in range(1, MAX_SCAN_ATTEMPTS + 1):
        # Each claim is what a scan pass does before the process dies mid-scan.
        assert claim(database, 5) == [(uuid.UUID(doomed), item(world, doomed).storage_key)]
        assert item(world, doomed).scan_attempts == attempt
        assert item(world, doomed).scan_status is ScanStatus.scanning
        _age_claim(world, doomed)

    assert claim(database, 5) == []

    given_up = item(world, doomed)
    assert given_up.scan_status is ScanStatus.failed
    assert given_up.scan_error == (
        f"gave up after {MAX_SCAN_ATTEMPTS} attempts: every scan of it ended with its process"
    )
    next_upload = world.upload(plain_photo(seed=9))
    assert world.scan() == 1
    assert item(world, next_upload).scan_status is ScanStatus.done
    assert item(world, doomed).scan_status is ScanStatus.failed


def test_a_fresh_claim_is_not_taken_from_the_scan_that_holds_it(world: MediaWorld) -> None:
    media_id = world.upload(plain_photo(seed=10))
    database = world.context.database
    assert len(claim(database, 5)) == 1

    assert claim(database, 5) == []
    assert item(world, media_id).scan_attempts == 1


def test_scan_pending_scans_every_waiting_upload_one_claim_at_a_time(world: MediaWorld) -> None:
    uploads = [world.upload(plain_photo(seed=s)) for s in (11, 12, 13)]
    media = media_context(world.context)

    assert scan_pending(world.context.database, media.storage, media.get_scanner(), limit=2) == 2
    assert world.scan() == 1
    assert [item(world, m).scan_attempts for m in uploads] == [1, 1, 1]
