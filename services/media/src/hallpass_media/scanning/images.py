"""Accept an uploaded file only if its bytes are a whole JPEG, PNG or WebP image of bounded size."""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from hallpass_media.scanning.headers import (
    MAX_JPEG_SCANS,
    HeaderRefused,
    ImageHeader,
    read_header,
)

# Formats are recognised from their first bytes; the client's file name and content type are
# never trusted.
_SIGNATURES: tuple[tuple[str, str, str], ...] = (
    ("jpeg", "image/jpeg", "JPEG"),
    ("png", "image/png", "PNG"),
    ("webp", "image/webp", "WEBP"),
)
_PILLOW_FORMATS = {name: pillow for name, _, pillow in _SIGNATURES}


class ImageRefused(Exception):
    """The file is not an image the school may upload; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds checked on the file's header, before any pixel is decoded.

    Pixels alone do not bound a decoder's memory: a picture 1 pixel wide and 49 million tall is
    under 50 megapixels, yet costs a pointer per row and turns every later resize and scan into
    millions of tiny steps. So each side, and how long and thin a picture may be, are bounded
    too, as are frames and metadata, which multiply memory without adding pixels.
    """

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 20_000
    max_aspect_ratio: float = 12.0
    max_metadata_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class CheckedImage:
    """What the bytes turned out to be."""

    format: str
    mime: str
    width: int
    height: int


def sniff(data: bytes) -> tuple[str, str, str] | None:
    """(format, mime, Pillow format) from the file's magic number, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return _SIGNATURES[0]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _SIGNATURES[1]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _SIGNATURES[2]
    return None


def inspect(data: bytes, limits: ImageLimits) -> tuple[CheckedImage, ImageHeader]:
    """Type, size and header checks, without decoding a pixel; raise ``ImageRefused``.

    Cheap and bounded (a walk over the file's chunk lengths), so the API process runs it on
    every file before anything else is done with it.
    """
    if len(data) > limits.max_bytes:
        raise ImageRefused(
            "image_too_large",
            f"The file is {len(data):,} bytes; the limit is {limits.max_bytes:,}.",
        )
    signature = sniff(data)
    if signature is None:
        raise ImageRefused("unsupported_media_type", "The file is not a JPEG, PNG or WebP image.")
    format_name, mime, _ = signature
    try:
        header = read_header(data, format_name, metadata_cap=limits.max_metadata_bytes)
    except HeaderRefused as refused:
        raise ImageRefused(refused.code, refused.detail) from refused
    _check_header(header, limits)
    return CheckedImage(format_name, mime, header.width, header.height), header


def _check_header(header: ImageHeader, limits: ImageLimits) -> None:
    if header.frames > 1:
        # Only a still picture can be checked whole: a scan reads one frame, and the frames of
        # an animation each cost a full picture's memory.
        raise ImageRefused(
            "animated_image",
            f"The file is an animation of {header.frames:,} frames; only still pictures are "
            "accepted.",
        )
    for width, height in header.sizes:
        if width == 0 or height == 0:
            raise ImageRefused("corrupt_image", "The image has no pixels.")
        if width * height > limits.max_pixels:
            raise ImageRefused(
                "too_many_pixels",
                f"The image is {width} x {height} pixels; the limit is "
                f"{limits.max_pixels:,} pixels.",
            )
        if max(width, height) > limits.max_side:
            raise ImageRefused(
                "image_side_too_long",
                f"The image is {width} x {height} pixels; no side may be longer than "
                f"{limits.max_side:,} pixels.",
            )
        if max(width, height) / min(width, height) > limits.max_aspect_ratio:
            raise ImageRefused(
                "extreme_aspect_ratio",
                f"The image is {width} x {height} pixels; one side may be at most "
                f"{limits.max_aspect_ratio:g} times the other.",
            )
    if header.metadata_bytes > limits.max_metadata_bytes:
        raise ImageRefused(
            "metadata_too_large",
            f"The file carries more than {limits.max_metadata_bytes:,} bytes of metadata "
            "(text, profiles, EXIF).",
        )
    if header.disagreement is not None:
        raise ImageRefused("corrupt_image", header.disagreement)
    if header.scans > MAX_JPEG_SCANS:
        raise ImageRefused(
            "corrupt_image",
            f"The JPEG file is split into more than {MAX_JPEG_SCANS} scans.",
        )


def check_header(data: bytes, limits: ImageLimits) -> CheckedImage:
    """What the file is and its size, from its header alone (see ``inspect``)."""
    checked, _ = inspect(data, limits)
    return checked


def open_image(
    data: bytes, limits: ImageLimits, *, reduce_to: int | None = None
) -> tuple[Image.Image, CheckedImage]:
    """Check the header, then open and fully decode ``data``; raise ``ImageRefused`` if it
    must not be accepted.

    Every size the file declares is checked (``inspect``) before Pillow sees it, and the size
    Pillow reads must match: a file whose parts disagree about its size is refused.

    With ``reduce_to``, a JPEG is decoded in grayscale at the smallest of 1/2, 1/4 or 1/8 scale
    whose longest side is still at least ``reduce_to`` pixels (libjpeg scales while decoding, at
    a fraction of the cost; every byte is still read, so a truncated file is still refused).
    ``CheckedImage`` always gives the full size.
    """
    checked, _ = inspect(data, limits)
    format_name = checked.format
    pillow_format = _PILLOW_FORMATS[format_name]
    try:
        # Our own limits were checked above; Pillow's warning about large images would only
        # repeat them (and tests turn warnings into errors), so it is silenced here. The filter
        # is process-wide while it lasts: another thread's DecompressionBombWarning in that
        # moment is silenced too, which is harmless for the same reason.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[pillow_format])
    except Image.DecompressionBombError as error:
        raise ImageRefused(
            "too_many_pixels",
            f"The image claims more pixels than the limit of {limits.max_pixels:,}.",
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise ImageRefused("corrupt_image", f"The {format_name} file cannot be read.") from error
    if image.size != (checked.width, checked.height):
        image.close()
        raise ImageRefused(
            "corrupt_image",
            f"The {format_name} file's parts disagree about its size.",
        )
    width, height = image.size
    if reduce_to is not None and format_name == "jpeg" and max(width, height) > reduce_to:
        ratio = reduce_to / max(width, height)
        image.draft("L", (math.ceil(width * ratio), math.ceil(height * ratio)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as error:
        raise ImageRefused(
            "too_many_pixels",
            f"The image claims more pixels than the limit of {limits.max_pixels:,}.",
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise ImageRefused(
            "corrupt_image", f"The {format_name} file is truncated or damaged."
        ) from error
    return image, checked


def check_image(data: bytes, limits: ImageLimits) -> CheckedImage:
    """Check the header and decode the whole image once (a scan worker's job: see ``workers``)."""
    image, checked = open_image(data, limits)
    image.close()
    return checked
