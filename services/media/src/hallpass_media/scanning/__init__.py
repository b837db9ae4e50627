"""Image checks and scans: type and size, metadata text, OCR, faces, perceptual hash, and the
clean rendition that is published."""

from hallpass_media.scanning.images import (
    CheckedImage,
    ImageLimits,
    ImageRefused,
    check_header,
    check_image,
)
from hallpass_media.scanning.metadata import MetadataText
from hallpass_media.scanning.phash import SAME_IMAGE_DISTANCE, phash_distance
from hallpass_media.scanning.rendition import clean_rendition
from hallpass_media.scanning.results import Box, ImageText, ScanResult
from hallpass_media.scanning.scanner import ImageScans, Scanner
from hallpass_media.scanning.workers import (
    ImageUnscannable,
    ScanTooSlow,
    ScanWorkers,
    ScanWorkersBusy,
    ScanWorkersUnavailable,
    WorkerConfig,
)

__all__ = [
    "SAME_IMAGE_DISTANCE",
    "Box",
    "CheckedImage",
    "ImageLimits",
    "ImageRefused",
    "ImageScans",
    "ImageText",
    "ImageUnscannable",
    "MetadataText",
    "ScanResult",
    "ScanTooSlow",
    "ScanWorkers",
    "ScanWorkersBusy",
    "ScanWorkersUnavailable",
    "Scanner",
    "WorkerConfig",
    "check_header",
    "check_image",
    "clean_rendition",
    "phash_distance",
]
