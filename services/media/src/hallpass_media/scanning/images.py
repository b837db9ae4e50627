"""Accept an uploaded file only if its bytes are a whole JPEG, PNG or WebP image of bounded size."""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

# Formats are recognised from their first bytes; the client's file name and content type are
# never trusted.
_SIGNATURES: tuple[tuple[str, str, str], ...] = (
    ("jpeg", "image/jpeg", "JPEG"),
    ("png", "image/png", "PNG"),
    ("webp", "image/webp", "WEBP"),
)


class ImageRefused(Exception):
    """The file is not an image the school may upload; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds checked before any pixel is decoded."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000


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


def open_image(
    data: bytes, limits: ImageLimits, *, reduce_to: int | None = None
) -> tuple[Image.Image, CheckedImage]:
    """Open and fully decode ``data``; raise ``ImageRefused`` if it must not be accepted.

    The pixel count comes from the header, read before any pixel is decoded, so a small file that
    claims an enormous picture (a decompression bomb) is refused without allocating it.

    With ``reduce_to``, a JPEG is decoded in grayscale at the smallest of 1/2, 1/4 or 1/8 scale
    whose longest side is still at least ``reduce_to`` pixels (libjpeg scales while decoding, at
    a fraction of the cost; every byte is still read, so a truncated file is still refused).
    ``CheckedImage`` always gives the full size.
    """
    if len(data) > limits.max_bytes:
        raise ImageRefused(
            "image_too_large",
            f"The file is {len(data):,} bytes; the limit is {limits.max_bytes:,}.",
        )
    signature = sniff(data)
    if signature is None:
        raise ImageRefused("unsupported_media_type", "The file is not a JPEG, PNG or WebP image.")
    format_name, mime, pillow_format = signature
    try:
        # Our own pixel limit is checked below; Pillow's warning about large images would only
        # repeat it (and tests turn warnings into errors), so it is silenced here. The filter is
        # process-wide while it lasts: another thread's DecompressionBombWarning in that moment
        # is silenced too, which is harmless for the same reason.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[pillow_format])
    except Image.DecompressionBombError as error:
        raise ImageRefused(
            "too_many_pixels",
            f"The image claims more pixels than the limit of {limits.max_pixels:,}.",
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageRefused("corrupt_image", f"The {format_name} file cannot be read.") from error
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageRefused(
            "too_many_pixels",
            f"The image is {width} x {height} pixels; the limit is {limits.max_pixels:,} pixels.",
        )
    if width == 0 or height == 0:
        raise ImageRefused("corrupt_image", "The image has no pixels.")
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
    return image, CheckedImage(format_name, mime, width, height)


def check_image(data: bytes, limits: ImageLimits) -> CheckedImage:
    """Sniff the type from the bytes, check size and pixel limits, decode the whole image once."""
    image, checked = open_image(data, limits)
    image.close()
    return checked
