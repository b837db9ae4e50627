"""The media service's parts, built once at start-up and reached from every request."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from hallpass_kit.app import ServiceContext, context_of
from hallpass_media.consent_link import ConsentLink
from hallpass_media.scanning import ImageLimits, ImageScans, Scanner, ScanWorkers, WorkerConfig
from hallpass_media.settings import MediaSettings
from hallpass_media.storage import Storage


@dataclass(kw_only=True)
class MediaContext(ServiceContext):
    """The kit's service context plus what media alone needs: its store, its consent client,
    its settings and where pictures are scanned."""

    storage: Storage
    consent: ConsentLink
    settings: MediaSettings
    # Given: pictures are checked and scanned in this process (tests and tools). Otherwise a pool
    # of bounded worker processes does it (scanning/workers.py).
    scanner: Scanner | None = None
    workers: ScanWorkers | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def limits(self) -> ImageLimits:
        settings = self.settings
        return ImageLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            max_side=settings.max_side,
            max_aspect_ratio=settings.max_aspect_ratio,
            max_metadata_bytes=settings.max_metadata_bytes,
        )

    def get_scanner(self) -> ImageScans:
        """Where pictures are decoded: the scan workers, started on first use (their OCR models
        take a moment to load), or the in-process scanner a test gave."""
        with self._lock:
            if self.scanner is not None:
                return self.scanner
            if self.workers is None:
                settings = self.settings
                self.workers = ScanWorkers(
                    WorkerConfig(
                        limits=self.limits,
                        ocr=settings.ocr,
                        memory_bytes=settings.scan_worker_memory_mb * 1024 * 1024,
                        seconds=settings.scan_seconds,
                    ),
                    size=settings.scan_workers,
                    wait_seconds=settings.scan_wait_seconds,
                )
            return self.workers

    def close(self) -> None:
        """Stop the scan workers (the app's shutdown)."""
        with self._lock:
            workers, self.workers = self.workers, None
        if workers is not None:
            workers.close()


def media_context(service: ServiceContext) -> MediaContext:
    """The media context of an app built by ``create_app`` (tools and tests hold the kit type)."""
    if not isinstance(service, MediaContext):
        raise TypeError(f"{service.name} is not the media service's context")
    return service


async def _media(request: Request) -> MediaContext:
    return media_context(context_of(request))


MediaContextDep = Annotated[MediaContext, Depends(_media)]
