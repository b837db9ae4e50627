"""Scan an image: metadata text, text in the picture (OCR), faces (detection only), hash.

Faces are only found, never recognised: the scan keeps boxes, no face descriptors or other
biometric data, and nothing that could tell one child from another.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image, ImageOps

from hallpass_media.scanning.images import CheckedImage, ImageLimits, check_image, open_image
from hallpass_media.scanning.metadata import read_metadata
from hallpass_media.scanning.phash import phash
from hallpass_media.scanning.results import Box, ImageText, ScanResult

# OCR reads a grayscale copy whose longest side is at most this many pixels: captions, banners
# and name cards stay legible (text 40 pixels tall in a 4000-pixel photo is 13 pixels here), and
# the detector's work stays within the scan budget for a 12-megapixel photo (bench/scan_cost.py).
OCR_MAX_SIDE = 1280
# Faces are looked for on a copy whose longest side is at most this, from FACE_MIN_SIDE pixels
# up (100 pixels in a 4000-pixel photo: a child in the back row of a class photo), growing the
# window by FACE_SCALE_STEP each pass.
FACE_MAX_SIDE = 960
FACE_MIN_SIDE = 24
FACE_SCALE_STEP = 1.2


class ImageScans(Protocol):
    """Where pictures are checked and scanned: a ``Scanner`` in this process (tests, tools), or
    the pool of bounded worker processes a running service uses (``workers.ScanWorkers``)."""

    def check(self, data: bytes) -> CheckedImage: ...

    def scan(self, data: bytes) -> ScanResult: ...


class Scanner:
    """Holds the OCR engine and face cascades, loaded once; ``scan`` may be called from any thread.

    The OCR engine and the cascades are each used by one thread at a time (neither promises to be
    thread-safe), so two scans in parallel overlap only where they can.
    """

    def __init__(
        self,
        *,
        ocr: bool = True,
        faces: bool = True,
        threads: int = 1,
        limits: ImageLimits | None = None,
        ocr_max_side: int = OCR_MAX_SIDE,
        face_max_side: int = FACE_MAX_SIDE,
    ) -> None:
        self._limits = limits or ImageLimits()
        self._ocr_max_side = ocr_max_side
        self._face_max_side = face_max_side
        self._ocr_lock = threading.Lock()
        self._faces_lock = threading.Lock()
        self._ocr: Any = None
        if ocr:
            from rapidocr import RapidOCR

            self._ocr = RapidOCR(
                params={
                    "Global.log_level": "error",
                    "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
        self._frontal: cv2.CascadeClassifier | None = None
        self._profile: cv2.CascadeClassifier | None = None
        if faces:
            self._frontal = _cascade("haarcascade_frontalface_default.xml")
            self._profile = _cascade("haarcascade_profileface.xml")

    def check(self, data: bytes) -> CheckedImage:
        """Check the header and decode the whole picture once, as an upload is checked."""
        return check_image(data, self._limits)

    def scan(self, data: bytes) -> ScanResult:
        """Check and decode ``data`` (raises ``ImageRefused``) and report what it carries.

        Sizes and boxes are those of the full-size upright picture, even when a large JPEG was
        decoded at a reduced scale (nothing in the scan reads more pixels than OCR's copy).
        """
        reduce_to = max(self._ocr_max_side, self._face_max_side)
        image, checked = open_image(data, self._limits, reduce_to=reduce_to)
        metadata = read_metadata(image)
        upright = ImageOps.exif_transpose(image)
        gray = upright.convert("L")
        turned = upright.size != image.size
        full = (checked.height, checked.width) if turned else (checked.width, checked.height)
        return ScanResult(
            format=checked.format,
            width=full[0],
            height=full[1],
            metadata=metadata.texts,
            has_location=metadata.has_location,
            image_text=self.read_text(gray, full) if self._ocr is not None else [],
            faces=self.find_faces(gray, full) if self._frontal is not None else [],
            phash=phash(gray),
        )

    def read_text(self, gray: Image.Image, size: tuple[int, int] | None = None) -> list[ImageText]:
        """Text in the picture; boxes in a picture of ``size`` (default: ``gray``'s own)."""
        small, _ = _shrink(gray, self._ocr_max_side)
        scale = small.width / (size or gray.size)[0]
        with self._ocr_lock:
            output = self._ocr(np.asarray(small))
        if output.boxes is None or output.txts is None:
            return []
        found: list[ImageText] = []
        for points, text, score in zip(output.boxes, output.txts, output.scores, strict=True):
            if not str(text).strip():
                continue
            xs = [float(point[0]) / scale for point in points]
            ys = [float(point[1]) / scale for point in points]
            found.append(ImageText(str(text), _box(xs, ys, size or gray.size), float(score)))
        return found

    def find_faces(self, gray: Image.Image, size: tuple[int, int] | None = None) -> list[Box]:
        """Faces (frontal and in profile, either way); boxes in a picture of ``size`` (default:
        ``gray``'s own)."""
        small, _ = _shrink(gray, self._face_max_side)
        scale = small.width / (size or gray.size)[0]
        pixels = cv2.equalizeHist(np.asarray(small))
        window = (FACE_MIN_SIDE, FACE_MIN_SIDE)
        width = pixels.shape[1]
        found: list[tuple[int, int, int, int]] = []
        with self._faces_lock:
            assert self._frontal is not None
            assert self._profile is not None
            found += _rects(
                self._frontal.detectMultiScale(pixels, FACE_SCALE_STEP, 5, minSize=window)
            )
            found += _rects(
                self._profile.detectMultiScale(pixels, FACE_SCALE_STEP, 6, minSize=window)
            )
            mirrored = cv2.flip(pixels, 1)
            found += [
                (width - x - w, y, w, h)
                for x, y, w, h in _rects(
                    self._profile.detectMultiScale(mirrored, FACE_SCALE_STEP, 6, minSize=window)
                )
            ]
        boxes: list[Box] = []
        for x, y, w, h in _distinct(found):
            xs, ys = [x / scale, (x + w) / scale], [y / scale, (y + h) / scale]
            boxes.append(_box(xs, ys, size or gray.size))
        return boxes


def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {name} cascade could not be loaded")
    return cascade


def _shrink(image: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    longest = max(image.size)
    if longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap lets Pillow first shrink by whole factors (cheap), then resample.
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _rects(found: Any) -> list[tuple[int, int, int, int]]:
    return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def _distinct(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """One box per face: frontal and profile cascades often both fire on a three-quarter face."""
    kept: list[tuple[int, int, int, int]] = []
    for rect in sorted(rects, key=lambda r: -r[2] * r[3]):
        if all(_overlap(rect, other) < 0.3 for other in kept):
            kept.append(rect)
    return sorted(kept)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area (a box inside another counts as the same face)."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    return (width * height) / min(a[2] * a[3], b[2] * b[3])


def _box(xs: list[float], ys: list[float], size: tuple[int, int]) -> Box:
    left = max(0, int(min(xs)))
    top = max(0, int(min(ys)))
    right = min(size[0], round(max(xs)))
    bottom = min(size[1], round(max(ys)))
    return Box(left, top, max(0, right - left), max(0, bottom - top))
