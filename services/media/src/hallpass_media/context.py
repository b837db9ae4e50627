"""The media service's parts, built once at start-up and reached from every request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from hallpass_kit.app import ServiceContext, context_of
from hallpass_media.consent_link import ConsentLink
from hallpass_media.scanning import ImageLimits, Scanner
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import Storage


@dataclass
class MediaContext:
    service: ServiceContext
    storage: Storage
    consent: ConsentLink
    settings: MediaSettings
    scanner: Scanner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def limits(self) -> ImageLimits:
        return ImageLimits(
            max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_pixels
        )

    def get_scanner(self) -> Scanner:
        """The scanner, loaded on first use: its OCR models take a moment to load."""
        with self._lock:
            if self.scanner is None:
                self.scanner = Scanner(ocr=self.settings.ocr, limits=self.limits)
            return self.scanner


def media_context(service: ServiceContext) -> MediaContext:
    media: MediaContext = service.extras["media"]
    return media


async def _media(request: Request) -> MediaContext:
    return media_context(context_of(request))


MediaDep = Annotated[MediaContext, Depends(_media)]
