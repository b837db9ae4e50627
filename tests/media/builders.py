"""Builders for media tests, through the public API; small real images made with Pillow."""

from __future__ import annotations

import io
import json
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response
from PIL import Image, ImageDraw

from hallpass_kit.app import ServiceContext
from hallpass_media.context import media_context
from hallpass_media.media.scan import scan_pending
from tests.conftest import SCHOOL, TokenFactory
from tests.consent.builders import SchoolBuilder
from tests.media import images


def plain_photo(
    width: int = 320,
    height: int = 240,
    *,
    fmt: str = "JPEG",
    description: str | None = None,
    gps: bool = False,
    seed: int = 0,
) -> bytes:
    """A picture with no face and no text: shapes in colours chosen by ``seed``."""
    image = Image.new("RGB", (width, height), (200 - seed % 50, 220, 180 + seed % 60))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x = (seed * 37 + i * 53) % max(width - 40, 1)
        y = (seed * 17 + i * 41) % max(height - 40, 1)
        draw.rectangle((x, y, x + 30 + i * 3, y + 20 + i * 2), fill=((i * 40) % 255, 90, 140))
    exif = Image.Exif()
    if description is not None:
        exif[0x010E] = description  # ImageDescription
    if gps:
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N"
        gps_ifd[2] = (51.0, 30.0, 0.0)
        gps_ifd[3] = "W"
        gps_ifd[4] = (0.0, 7.0, 0.0)
    out = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP", "PNG") and (description is not None or gps):
        kwargs["exif"] = exif.tobytes()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


class MediaWorld:
    """One school on both services: devices, uploads, scans, checks and publications."""

    def __init__(
        self, client: TestClient, school: SchoolBuilder, auth: TokenFactory, app: FastAPI
    ) -> None:
        self.client = client
        self.school = school
        self.auth = auth
        self.app = app
        self.office = auth("office")
        self.head = auth("head")
        self._device: str | None = None

    @property
    def context(self) -> ServiceContext:
        context: ServiceContext = self.app.state.hallpass
        return context

    def device(self, serial: str = "CAM-0001", name: str = "Year 3 camera") -> str:
        response = self.client.post(
            "/v1/devices", json={"name": name, "serial": serial}, headers=self.office
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    @property
    def default_device(self) -> str:
        if self._device is None:
            self._device = self.device()
        return self._device

    def upload_response(
        self,
        data: bytes,
        *,
        filename: str = "IMG_0001.jpg",
        pupils: list[dict[str, Any]] | list[str] | None = None,
        device_id: str | None = "default",
        role: str = "staff",
        content_type: str = "image/jpeg",
        **fields: str,
    ) -> Response:
        tagged = [p if isinstance(p, dict) else {"pupil_id": p} for p in (pupils or [])]
        form: dict[str, str] = {"pupils": json.dumps(tagged), **fields}
        device = self.default_device if device_id == "default" else device_id
        if device is not None:
            form["device_id"] = device
        return self.client.post(
            "/v1/media",
            data=form,
            files={"file": (filename, data, content_type)},
            headers=self.auth(role),
        )

    def upload(self, data: bytes | None = None, **kwargs: Any) -> str:
        response = self.upload_response(data if data is not None else plain_photo(), **kwargs)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def scan(self) -> int:
        media = media_context(self.context)
        return scan_pending(self.context.database, media.storage, media.get_scanner())

    def check(
        self, channel: str, media_ids: list[str], *, role: str = "cms", **text: Any
    ) -> dict[str, Any]:
        response = self.check_response(channel, media_ids, role=role, **text)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def check_response(
        self, channel: str, media_ids: list[str], *, role: str = "cms", **text: Any
    ) -> Response:
        return self.client.post(
            "/v1/publications:check",
            json={"channel": channel, "media_ids": media_ids, **text},
            headers=self.auth(role),
        )

    def publish_response(
        self,
        channel: str,
        media_ids: list[str],
        *,
        role: str = "head",
        key: str | None = None,
        **fields: Any,
    ) -> Response:
        headers = self.auth(role)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(
            "/v1/publications",
            json={"channel": channel, "media_ids": media_ids, **fields},
            headers=headers,
        )

    def publish(self, channel: str, media_ids: list[str], **fields: Any) -> dict[str, Any]:
        response = self.publish_response(channel, media_ids, **fields)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def consented_pupil(
        self, given: str = "Amara", family: str = "Okafor", purpose: str = "website_photo"
    ) -> tuple[str, str]:
        """A pupil whose carer said yes to ``purpose``; (pupil id, guardian id)."""
        family_ = self.school.family(given, family)
        self.school.consent(family_.pupil_id, family_.guardian_ids[0], purpose)
        return family_.pupil_id, family_.guardian_ids[0]


def codes(verdict: dict[str, Any], image: int = 0) -> list[str]:
    return [p["code"] for p in verdict["images"][image]["problems"]]


def blocking_codes(verdict: dict[str, Any], image: int = 0) -> list[str]:
    return [p["code"] for p in verdict["images"][image]["problems"] if p["blocking"]]


__all__ = ["SCHOOL", "MediaWorld", "blocking_codes", "codes", "plain_photo"]


def faces_photo(
    faces: int = 2,
    *,
    description: str | None = None,
    gps: tuple[float, float] | None = None,
    seed: int = 2,
) -> tuple[bytes, list[dict[str, int]]]:
    """A photo with ``faces`` drawn faces the Haar cascade finds; returns (JPEG, face boxes)."""
    picture = images.photo(900, 600, seed=seed)
    centres = [(220, 300), (640, 300), (430, 420)][:faces]
    boxes = []
    for centre in centres:
        x, y, w, h = images.draw_face(picture, centre, 200 if faces < 3 else 150)
        boxes.append({"x": x, "y": y, "width": w, "height": h})
    block = images.exif(description=description, gps=gps) if description or gps else None
    return images.jpeg(picture, exif_block=block), boxes
