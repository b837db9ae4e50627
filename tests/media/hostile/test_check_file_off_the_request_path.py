"""``POST /v1/publications:check-file`` scans in the scan workers, not in the request: the request
waits on the event loop for at most ``check_file_scan_seconds``, then answers 503
``scan_too_slow`` (never a verdict without the scan). A worker whose request stopped waiting
finishes that file and serves the next."""

from __future__ import annotations

import pytest
from httpx2 import Response

from hallpass_media.context import MediaContext
from hallpass_media.scanning import ScanWorkers
from tests.conftest import TokenFactory
from tests.consent.builders import assert_problem
from tests.media import images
from tests.media.builders import MediaWorld
from tests.media.hostile.conftest import POOLED

# A limit no scan can meet: a worker's answer takes a process round trip and a decode.
NO_TIME = POOLED.model_copy(update={"check_file_scan_seconds": 0.001})
ENOUGH_TIME = 120.0
# The first check-file starts the worker, OCR models and all: on a busy machine that takes a while.
WITH_OCR = POOLED.model_copy(update={"ocr": True, "check_file_scan_seconds": 300})


def _check_file(world: MediaWorld, auth: TokenFactory, picture: bytes) -> Response:
    return world.client.post(
        "/v1/publications:check-file",
        data={"channel": "website"},
        files={"file": ("team.jpg", picture, "image/jpeg")},
        headers=auth("cms"),
    )


def _problem(verdict: dict[str, object], code: str) -> dict[str, object]:
    problems = [
        p
        for image in verdict["images"]  # type: ignore[attr-defined]
        for p in image["problems"]
        if p["code"] == code
    ]
    assert problems, verdict
    found: dict[str, object] = problems[0]
    return found


def _metadata_picture() -> bytes:
    return images.jpeg(
        images.photo(600, 400, seed=5), exif_block=images.exif(description="Amara Okafor, Year 3")
    )


@pytest.mark.parametrize("pooled_settings", [NO_TIME], indirect=True)
def test_m1_check_file_scan_past_its_time_limit_is_refused_not_allowed(
    pooled_world: MediaWorld, pooled_media: MediaContext, auth: TokenFactory
) -> None:
    pooled_world.consented_pupil("Amara", "Okafor")

    response = _check_file(pooled_world, auth, _metadata_picture())

    problem = assert_problem(response, 503, "scan_too_slow")
    assert "allowed" not in problem
    assert response.headers.get("Retry-After")


def test_m1_worker_that_outlasted_a_check_file_serves_the_next(
    pooled_world: MediaWorld, pooled_media: MediaContext, auth: TokenFactory
) -> None:
    pooled_world.consented_pupil("Amara", "Okafor")
    assert _check_file(pooled_world, auth, _metadata_picture()).status_code == 200
    (worker,) = _workers(pooled_media)
    pooled_media.settings = POOLED.model_copy(update={"check_file_scan_seconds": 0.001})
    assert _check_file(pooled_world, auth, _metadata_picture()).status_code == 503
    pooled_media.settings = POOLED.model_copy(update={"check_file_scan_seconds": ENOUGH_TIME})

    response = _check_file(pooled_world, auth, _metadata_picture())

    assert response.status_code == 200, response.text
    problem = _problem(response.json(), "name_in_metadata")
    assert problem["where"] == "metadata.EXIF:ImageDescription"
    assert problem["blocking"] is True
    assert _workers(pooled_media) == [worker], "the same worker, its models not reloaded"


def _workers(media: MediaContext) -> list[int]:
    pool = media.get_scanner()
    assert isinstance(pool, ScanWorkers)
    return pool.worker_pids()


@pytest.mark.parametrize("pooled_settings", [WITH_OCR], indirect=True)
def test_m1_check_file_finds_names_in_the_picture_and_its_metadata_through_the_workers(
    pooled_world: MediaWorld, auth: TokenFactory
) -> None:
    pooled_world.consented_pupil("Oliver", "Shaw")
    pooled_world.consented_pupil("Amara", "Okafor")
    picture = images.photo(1000, 500, seed=4)
    images.draw_text(picture, "OLIVER SHAW", at=(120, 180), size=90)
    data = images.jpeg(picture, exif_block=images.exif(description="Amara Okafor, Year 3"))

    response = _check_file(pooled_world, auth, data)

    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["allowed"] is False
    in_picture = _problem(verdict, "name_in_image")
    assert in_picture["where"] == "image_text"
    assert in_picture["blocking"] is True
    assert _problem(verdict, "name_in_metadata")["where"] == "metadata.EXIF:ImageDescription"
