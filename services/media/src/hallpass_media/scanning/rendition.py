"""The copy of an image that is published: pixels only, faces blurred where asked."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageCms, ImageFilter, ImageOps

from hallpass_media.scanning.images import ImageLimits, open_image
from hallpass_media.scanning.results import Box

_SAVE_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "jpeg": ("JPEG", {"quality": 90, "optimize": True}),
    "png": ("PNG", {"optimize": True}),
    "webp": ("WEBP", {"quality": 90}),
}


def clean_rendition(
    data: bytes, *, blur: Sequence[Box] = (), limits: ImageLimits | None = None
) -> tuple[bytes, str]:
    """Re-encode the image's pixels and nothing else; returns (bytes, mime).

    EXIF orientation is applied first (so the picture looks as before once the EXIF block is
    gone), colours are converted to sRGB when the file carries another colour profile, and the
    pixels are copied into a new image so no EXIF, XMP, IPTC, GPS, ICC profile, comment or text
    chunk can come along. Boxes (in the upright picture's coordinates, as ``Scanner`` reports
    them) are widened by a quarter on each side, pixelated and blurred beyond recognition.
    JPEG stays JPEG, PNG PNG, WebP WebP.
    """
    source, checked = open_image(data, limits or ImageLimits())
    upright = ImageOps.exif_transpose(source)
    upright = _to_srgb(upright, source.info.get("icc_profile"))
    mode = _output_mode(upright, checked.format)
    converted = upright.convert(mode) if upright.mode != mode else upright
    clean = Image.frombytes(mode, converted.size, converted.tobytes())
    for box in blur:
        _obscure(clean, box)
    out = io.BytesIO()
    pillow_format, options = _SAVE_OPTIONS[checked.format]
    clean.save(out, pillow_format, **options)
    return out.getvalue(), checked.mime


def _output_mode(image: Image.Image, format_name: str) -> str:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if format_name == "jpeg":
        return "L" if image.mode in ("L", "1", "I;16") else "RGB"
    if image.mode == "L" and not has_alpha:
        return "L"
    return "RGBA" if has_alpha else "RGB"


def _to_srgb(image: Image.Image, profile: object) -> Image.Image:
    if not isinstance(profile, bytes) or not profile:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        target = ImageCms.createProfile("sRGB")
        mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"
        converted = ImageCms.profileToProfile(image, source, target, outputMode=mode)
    except (OSError, ValueError, ImageCms.PyCMSError):
        # A profile that cannot be read is dropped with the rest of the metadata.
        return image
    return converted if converted is not None else image


# A face detector's box covers eyes to mouth; hair, ears and chin are widened into the blur too.
BLUR_MARGIN = 0.25


def _obscure(image: Image.Image, box: Box) -> None:
    margin_x, margin_y = round(box.width * BLUR_MARGIN), round(box.height * BLUR_MARGIN)
    left, top = max(box.x - margin_x, 0), max(box.y - margin_y, 0)
    right = min(box.x + box.width + margin_x, image.width)
    bottom = min(box.y + box.height + margin_y, image.height)
    if right <= left or bottom <= top:
        return
    region = image.crop((left, top, right, bottom))
    # Pixelate to about 6 blocks across, then blur the blocks' edges away: nothing of the face's
    # detail survives either step.
    block = max(1, min(region.width, region.height) // 6)
    tiny = region.resize(
        (max(1, region.width // block), max(1, region.height // block)),
        Image.Resampling.BOX,
    )
    pixelated = tiny.resize(region.size, Image.Resampling.NEAREST)
    radius = max(2.0, max(region.width, region.height) / 8)
    image.paste(pixelated.filter(ImageFilter.GaussianBlur(radius)), (left, top))
