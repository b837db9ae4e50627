"""A 64-bit perceptual hash: the same picture resized, recompressed or lightly edited keeps
nearly the same bits, so a copy sent back by a website's CMS can be recognised."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# Hamming distance at or below which two hashes are taken to be the same picture.
SAME_IMAGE_DISTANCE = 10


def phash(image: Image.Image) -> int:
    """DCT hash of the picture: 32x32 grayscale, low 8x8 frequencies against their median.

    Returned as a signed 64-bit integer so it fits a database BIGINT.
    """
    small = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float32)
    frequencies = cv2.dct(pixels)[:8, :8]
    bits = (frequencies > np.median(frequencies)).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_distance(a: int, b: int) -> int:
    """How many of the 64 bits differ; ``SAME_IMAGE_DISTANCE`` or less means the same picture."""
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()
