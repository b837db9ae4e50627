"""What an image file says about itself, read from its structure without decoding a pixel.

A decoder allocates memory from the sizes a file declares, so the sizes are checked first: the
width and height (of the picture, of the WebP canvas and of every frame), how long and thin it is,
how many frames it has and how much metadata it carries (compressed chunks inflated with a cap).
Reading a header costs a walk over the file's chunk or segment lengths and nothing else, so the
API process can refuse a hostile file before a scan worker ever sees it.

A file cut short is noticed here too, where its structure shows it: a PNG without its end chunk,
a JPEG without its end marker after the picture data, a WebP shorter than its RIFF size.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# PNG: colour type -> the bit depths it allows (PNG spec, table 11.1).
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# Chunks that carry the picture or a few bytes about its colours, not text or profiles.
_PNG_PICTURE_CHUNKS = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT",
    b"bKGD", b"pHYs", b"tIME", b"hIST", b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers that stand alone, without a length: TEM, RST0-7, SOI.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8}
# A progressive JPEG is usually 10 scans or so; every scan is a pass over the whole picture, so a
# file of thousands of tiny scans costs thousands of passes.
MAX_JPEG_SCANS = 100


class HeaderRefused(Exception):
    """The header is damaged or says something the school does not accept; ``code`` says what."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ImageHeader:
    """The sizes a file declares. ``sizes`` lists every width and height it declares (the
    picture, a WebP canvas, each animation frame): a decoder may allocate any of them."""

    format: str
    width: int
    height: int
    sizes: tuple[tuple[int, int], ...]
    frames: int
    metadata_bytes: int
    scans: int = 1
    # Parts of the file that disagree (told after the sizes, which say more about a bomb).
    disagreement: str | None = None


def read_header(data: bytes, format_name: str, *, metadata_cap: int) -> ImageHeader:
    """The header of a file already recognised as ``format_name`` (jpeg, png or webp).

    Compressed metadata is inflated only up to ``metadata_cap`` bytes: past that the exact size
    no longer matters, and ``metadata_bytes`` is reported as just over the cap.
    """
    if format_name == "png":
        return _png(data, metadata_cap)
    if format_name == "jpeg":
        return _jpeg(data)
    if format_name == "webp":
        return _webp(data)
    raise ValueError(f"no header reader for {format_name}")


def _corrupt(detail: str) -> HeaderRefused:
    return HeaderRefused("corrupt_image", detail)


# --- PNG ---------------------------------------------------------------------------------------


def _png(data: bytes, metadata_cap: int) -> ImageHeader:
    offset = 8
    width = height = 0
    frames = 1
    metadata = 0
    seen_idat = False
    sizes: list[tuple[int, int]] = []
    first = True
    while True:
        if offset + 8 > len(data):
            raise _corrupt("The PNG file ends before its last chunk (IEND): it is truncated.")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body_start = offset + 8
        body_end = body_start + length
        if length > 0x7FFFFFFF or body_end + 4 > len(data):
            raise _corrupt("A PNG chunk runs past the end of the file: it is truncated.")
        body = data[body_start:body_end]
        if first:
            if kind != b"IHDR" or length != 13:
                raise _corrupt("A PNG file must start with its header chunk (IHDR).")
            width, height, depth, colour, compression, filtering, interlace = struct.unpack(
                ">IIBBBBB", body
            )
            if depth not in _PNG_DEPTHS.get(colour, set()) or compression or filtering:
                raise _corrupt("The PNG header names an impossible pixel format.")
            if interlace > 1:
                raise _corrupt("The PNG header names an unknown interlace method.")
            sizes.append((width, height))
            first = False
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"acTL" and length >= 4:
            frames = max(frames, struct.unpack(">I", body[:4])[0])
        elif kind == b"fcTL" and length >= 12:
            sizes.append(struct.unpack(">II", body[4:12]))
        elif kind == b"IEND":
            break
        elif kind not in _PNG_PICTURE_CHUNKS:
            metadata += _png_metadata_size(kind, body, metadata_cap - metadata)
        offset = body_end + 4
    if not seen_idat:
        raise _corrupt("The PNG file has no picture data (IDAT).")
    return ImageHeader("png", width, height, tuple(sizes), frames, metadata)


def _png_metadata_size(kind: bytes, body: bytes, room: int) -> int:
    """Bytes a metadata chunk takes once read: compressed text and profiles count inflated."""
    compressed: bytes | None = None
    if kind in (b"zTXt", b"iCCP"):
        _, _, rest = body.partition(b"\x00")
        compressed = rest[1:]  # after the compression method byte
    elif kind == b"iTXt":
        _, _, rest = body.partition(b"\x00")
        if rest[:1] == b"\x01":
            _, _, rest = rest[2:].partition(b"\x00")  # language tag
            _, _, compressed = rest.partition(b"\x00")  # translated keyword
    if compressed is None:
        return len(body)
    inflater = zlib.decompressobj()
    try:
        # At most room + 1 bytes are ever produced: enough to know the cap is passed.
        inflated = inflater.decompress(compressed, max(room, 0) + 1)
    except zlib.error:
        # A damaged chunk is skipped by the decoder; it costs only its own bytes.
        return len(body)
    return len(body) + len(inflated)


# --- JPEG --------------------------------------------------------------------------------------


def _jpeg(data: bytes) -> ImageHeader:
    offset = 2
    size: tuple[int, int] | None = None
    metadata = 0
    while True:
        # Any number of 0xFF fill bytes may come before a marker.
        if offset >= len(data) or data[offset] != 0xFF:
            raise _corrupt("The JPEG file's markers are damaged or it ends early.")
        while offset < len(data) and data[offset] == 0xFF:
            offset += 1
        if offset >= len(data):
            raise _corrupt("The JPEG file ends before its picture data.")
        marker = data[offset]
        offset += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            raise _corrupt("The JPEG file ends before its picture data.")
        if offset + 2 > len(data):
            raise _corrupt("The JPEG file ends inside a header segment.")
        length = struct.unpack(">H", data[offset : offset + 2])[0]
        if length < 2 or offset + length > len(data):
            raise _corrupt("A JPEG header segment runs past the end of the file.")
        segment = data[offset + 2 : offset + length]
        if marker in _JPEG_SOF:
            if size is not None:
                raise _corrupt("The JPEG file declares two frames.")
            if len(segment) < 6:
                raise _corrupt("The JPEG frame header is too short.")
            height, width = struct.unpack(">HH", segment[1:5])
            if height == 0:
                # A height given later (DNL marker) is not supported by the decoder.
                raise _corrupt("The JPEG frame header gives no height.")
            if segment[5] not in (1, 3, 4):
                raise _corrupt("The JPEG frame has an unsupported number of colour components.")
            size = (width, height)
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += length - 2
        offset += length
        if marker == 0xDA:
            break
    if size is None:
        raise _corrupt("The JPEG file has no frame header.")
    scans, complete = _jpeg_scans(data, offset)
    if not complete:
        raise _corrupt("The JPEG file has no end marker after its picture data: it is truncated.")
    return ImageHeader("jpeg", size[0], size[1], (size,), 1, metadata, scans)


def _jpeg_scans(data: bytes, start: int) -> tuple[int, bool]:
    """Scans up to the first end-of-image marker, and whether that marker is there.

    In entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so 0xFFDA
    and 0xFFD9 there are real markers. Whatever follows the end marker (a second picture of a
    multi-picture file, or anything appended) is not part of this picture.
    """
    scans = 1
    position = start
    while True:
        end = data.find(b"\xff\xd9", position)
        next_scan = data.find(b"\xff\xda", position, end if end >= 0 else len(data))
        if next_scan < 0:
            return scans, end >= 0
        scans += 1
        if scans > MAX_JPEG_SCANS:
            return scans, end >= 0
        position = next_scan + 2


# --- WebP --------------------------------------------------------------------------------------


def _webp(data: bytes) -> ImageHeader:
    riff_size = struct.unpack("<I", data[4:8])[0]
    end = 8 + riff_size
    if riff_size < 4 or end > len(data):
        raise _corrupt("The WebP file is shorter than its RIFF header says: it is truncated.")
    offset = 12
    canvas: tuple[int, int] | None = None
    bitstreams: list[tuple[int, int]] = []
    frames = 0
    metadata = 0
    animated = False
    while offset + 8 <= end:
        kind = data[offset : offset + 4]
        length = struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        body = data[offset + 8 : offset + 8 + length]
        if len(body) != length or offset + 8 + length > end:
            raise _corrupt("A WebP chunk runs past the end of the file: it is truncated.")
        if kind == b"VP8X":
            if offset != 12 or length < 10:
                raise _corrupt("The WebP extended header is misplaced or too short.")
            animated = bool(body[0] & 0x02)
            canvas = (
                int.from_bytes(body[4:7], "little") + 1,
                int.from_bytes(body[7:10], "little") + 1,
            )
        elif kind in (b"VP8 ", b"VP8L"):
            bitstreams.append(_webp_bitstream(kind, body))
        elif kind == b"ANMF":
            frames += 1
            if length < 16:
                raise _corrupt("A WebP animation frame header is too short.")
            bitstreams.append(
                (
                    int.from_bytes(body[6:9], "little") + 1,
                    int.from_bytes(body[9:12], "little") + 1,
                )
            )
        elif kind not in (b"ALPH", b"ANIM"):
            # ICC profile, EXIF, XMP or a chunk the decoder does not know: all kept or skipped
            # whole, never inflated.
            metadata += length
        offset += 8 + length + (length & 1)
    if not bitstreams:
        raise _corrupt("The WebP file has no picture data.")
    if canvas is None:
        if len(bitstreams) != 1:
            raise _corrupt("A simple WebP file holds exactly one picture.")
        canvas = bitstreams[0]
    disagreement = None
    if not animated and bitstreams[0] != canvas:
        # The decoder sizes its buffer from one and fills it from the other.
        disagreement = "The WebP canvas and the picture in it disagree about its size."
    return ImageHeader(
        "webp",
        canvas[0],
        canvas[1],
        (canvas, *bitstreams),
        max(frames, 1) if animated else 1,
        metadata,
        disagreement=disagreement,
    )


def _webp_bitstream(kind: bytes, body: bytes) -> tuple[int, int]:
    if kind == b"VP8 ":
        # Frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height.
        if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
            raise _corrupt("The WebP picture (VP8) header is damaged.")
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    # VP8L: signature 0x2F, then 14 bits of width - 1 and 14 bits of height - 1.
    if len(body) < 5 or body[0] != 0x2F:
        raise _corrupt("The WebP picture (VP8L) header is damaged.")
    bits = int.from_bytes(body[1:5], "little")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
