"""A corpus of hostile files, made by code at test time (nothing binary is committed).

Extreme geometry in PNG, JPEG and WebP, decompression bombs, headers that lie about the size,
animations, truncations at many points, polyglots, metadata bombs and hostile file names. Each
entry says which refusal codes are right for it; ``None`` means any answer that is not a server
error will do (accepted, or refused with a reason).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from tests.media import images

Codes = frozenset[str] | None

GEOMETRY = frozenset({"too_many_pixels", "image_side_too_long", "extreme_aspect_ratio"})
CORRUPT = frozenset({"corrupt_image"})
UNSUPPORTED = frozenset({"unsupported_media_type"})
ANIMATED = frozenset({"animated_image"})
METADATA = frozenset({"metadata_too_large"})


@dataclass(frozen=True)
class Hostile:
    """One hostile file: a label for reports, the name it is sent under, its bytes, and the
    refusal codes that are right for it (``None``: anything short of a server error)."""

    label: str
    filename: str
    data: bytes
    refused_with: Codes
    content_type: str = "image/jpeg"


def chunk(kind: bytes, body: bytes) -> bytes:
    """A PNG chunk with its length and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _zeros_compressed(size: int) -> bytes:
    """``size`` zero bytes, deflated, in milliseconds whatever the size.

    After a full flush deflate starts afresh, so every megabyte of zeros compresses to the same
    bytes: one block is compressed and repeated, and the checksum (Adler-32 of zeros: 1 in the
    low half, the count in the high half) is written for the whole length.
    """
    compressor = zlib.compressobj(9)
    start = compressor.compress(b"") + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(_BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.compress(bytes(size % _BLOCK)) + compressor.flush()
    checksum = ((size % 65521) << 16) | 1
    return start + block * (size // _BLOCK) + end[:-4] + struct.pack(">I", checksum)


_BLOCK = 1 << 20


@functools.cache
def png_of_size(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    """A real, valid PNG of black pixels of any size: tiny on disk, huge once decoded."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = 1 + (width * channels * depth + 7) // 8
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    palette = chunk(b"PLTE", b"\x00\x00\x00") if colour == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + palette
        + chunk(b"IDAT", _zeros_compressed(row * height))
        + chunk(b"IEND", b"")
    )


def strip_png(width: int, height: int) -> bytes:
    """The strip from the report: 1 x 49,000,000 and its cousins, each under 50 megapixels."""
    return png_of_size(width, height)


@functools.cache
def small_jpeg(progressive: bool = False) -> bytes:
    out = io.BytesIO()
    images.photo(64, 48, seed=5).save(out, "JPEG", quality=80, progressive=progressive)
    return out.getvalue()


@functools.cache
def small_webp(lossless: bool = False) -> bytes:
    out = io.BytesIO()
    images.photo(64, 48, seed=6).save(out, "WEBP", lossless=lossless, quality=80)
    return out.getvalue()


def jpeg_claiming(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A real JPEG whose frame header is rewritten to claim ``width`` x ``height``."""
    data = bytearray(small_jpeg(progressive))
    position = 2
    while True:
        marker = data[position + 1]
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, position + 5, height, width)
            return bytes(data)
        position += 2 + length


def _riff(chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def _webp_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")


def _webp_parts(data: bytes) -> list[tuple[bytes, bytes]]:
    parts = []
    offset = 12
    while offset + 8 <= len(data):
        kind = data[offset : offset + 4]
        length = struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        parts.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length + (length & 1)
    return parts


def webp_claiming(width: int, height: int, *, lossless: bool = False) -> bytes:
    """A real WebP whose picture header (VP8 or VP8L) is rewritten to claim a size."""
    kind, body = _webp_parts(small_webp(lossless))[-1]
    patched = bytearray(body)
    if kind == b"VP8 ":
        struct.pack_into("<HH", patched, 6, width & 0x3FFF, height & 0x3FFF)
    else:
        bits = int.from_bytes(patched[1:5], "little") & ~((1 << 28) - 1)
        bits |= ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)
        patched[1:5] = bits.to_bytes(4, "little")
    return _riff(_webp_chunk(kind, bytes(patched)))


def webp_with_canvas(width: int, height: int, *, flags: int = 0, extra: bytes = b"") -> bytes:
    """A real 64 x 48 WebP inside an extended header that claims a ``width`` x ``height`` canvas."""
    kind, body = _webp_parts(small_webp())[-1]
    vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    return _riff(_webp_chunk(b"VP8X", vp8x) + extra + _webp_chunk(kind, body))


def webp_frames(count: int, frame_size: tuple[int, int] = (64, 48)) -> bytes:
    """An animated 64 x 48 WebP of ``count`` frames, each a copy of one small picture whose
    frame header claims ``frame_size``."""
    kind, body = _webp_parts(small_webp())[-1]
    frame = _webp_chunk(kind, body)
    width, height = frame_size
    anmf = bytes(6) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    anmf += bytes(4) + frame
    vp8x = bytes([0x02, 0, 0, 0]) + (64 - 1).to_bytes(3, "little")
    vp8x += (48 - 1).to_bytes(3, "little")
    body_chunks = _webp_chunk(b"VP8X", vp8x) + _webp_chunk(b"ANIM", bytes(6))
    return _riff(body_chunks + _webp_chunk(b"ANMF", anmf) * count)


def animation(format_name: str, frames: int) -> bytes:
    """A real animation saved by Pillow."""
    pictures = [images.photo(48, 32, seed=s) for s in range(frames)]
    out = io.BytesIO()
    pictures[0].save(out, format_name, save_all=True, append_images=pictures[1:], duration=100)
    return out.getvalue()


def png_with(*extra: bytes, after_idat: bool = False) -> bytes:
    """A small real PNG with extra chunks before (or after) its picture data."""
    out = io.BytesIO()
    images.photo(32, 24, seed=7).save(out, "PNG")
    data = out.getvalue()
    idat = data.index(b"IDAT") - 4
    iend = data.index(b"IEND") - 4
    added = b"".join(extra)
    if after_idat:
        return data[:iend] + added + data[iend:]
    return data[:idat] + added + data[idat:]


def jpeg_with_segments(marker: int, body: bytes, count: int) -> bytes:
    """A small real JPEG with ``count`` extra segments (APPn or COM) right after its start."""
    data = small_jpeg()
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
    return data[:2] + segment * count + data[2:]


def truncations(label: str, data: bytes, content_type: str) -> Iterator[Hostile]:
    for fraction in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97, 0.995):
        cut = max(1, int(len(data) * fraction))
        yield Hostile(
            f"{label} cut at {fraction:.1%}",
            f"cut.{content_type.rsplit('/', 1)[1]}",
            data[:cut],
            CORRUPT | UNSUPPORTED,
            content_type,
        )
    yield Hostile(f"{label} without its last byte", "cut", data[:-1], CORRUPT, content_type)


def geometry() -> Iterator[Hostile]:
    for width, height in [
        (1, 49_000_000),
        (2, 24_000_000),
        (10, 4_900_000),
        (100, 490_000),
        (49_000_000, 1),
        (24_000_000, 2),
        (20_001, 100),
        (15_000, 1_000),
        (13_000, 1_000),
        (30_000, 30_000),
        (0, 100),
        (100, 0),
    ]:
        codes = CORRUPT if 0 in (width, height) else GEOMETRY
        yield Hostile(
            f"PNG {width} x {height}",
            "strip.png",
            strip_png(width, height),
            codes,
            "image/png",
        )
    for width, height in [
        (1, 65_535),
        (65_535, 1),
        (2, 40_000),
        (10, 20_000),
        (100, 20_001),
        (65_535, 65_535),
        (15_000, 1_000),
        (8_000, 8_000),
        (0, 100),
        (100, 0),
    ]:
        codes = CORRUPT if 0 in (width, height) else GEOMETRY
        for progressive in (False, True):
            kind = "progressive JPEG" if progressive else "JPEG"
            yield Hostile(
                f"{kind} claiming {width} x {height}",
                "claims.jpg",
                jpeg_claiming(width, height, progressive=progressive),
                codes,
            )
    for width, height in [(1, 16_383), (16_383, 1), (16_383, 16_383), (16_000, 1_000)]:
        for lossless in (False, True):
            kind = "lossless WebP" if lossless else "WebP"
            yield Hostile(
                f"{kind} claiming {width} x {height}",
                "claims.webp",
                webp_claiming(width, height, lossless=lossless),
                GEOMETRY,
                "image/webp",
            )
    for width, height in [(16_777_216, 1), (1, 16_777_216), (100_000, 100_000), (2, 2)]:
        # The canvas and the picture disagree; either way it is refused before any decode.
        yield Hostile(
            f"WebP canvas of {width} x {height} around a 64 x 48 picture",
            "canvas.webp",
            webp_with_canvas(width, height),
            GEOMETRY | CORRUPT,
            "image/webp",
        )


def bombs() -> Iterator[Hostile]:
    yield Hostile("PNG 7,071 x 7,071, 1 bit", "bomb.png", png_of_size(7_071, 7_071, 1), None,
                  "image/png")  # fmt: skip
    yield Hostile("PNG 50,000 x 50,000, 1 bit", "bomb.png", png_of_size(50_000, 50_000, 1),
                  GEOMETRY, "image/png")  # fmt: skip
    yield Hostile("PNG 7,000 x 7,000, 16-bit RGBA", "deep.png",
                  png_of_size(7_000, 7_000, 16, 6), None, "image/png")  # fmt: skip
    yield Hostile("PNG 8,000 x 8,000, 16-bit RGBA", "deep.png",
                  png_of_size(8_000, 8_000, 16, 6), GEOMETRY, "image/png")  # fmt: skip
    yield Hostile("palette PNG 4,000 x 4,000", "palette.png", png_of_size(4_000, 4_000, 8, 3),
                  None, "image/png")  # fmt: skip
    # The picture data inflates to far less than the header promises.
    short = png_of_size(64, 64)
    body = _zeros_compressed(10)
    yield Hostile(
        "PNG whose data is shorter than its size",
        "short.png",
        short[: short.index(b"IDAT") - 4] + chunk(b"IDAT", body) + chunk(b"IEND", b""),
        CORRUPT,
        "image/png",
    )
    yield Hostile(
        "PNG whose data is a zlib bomb past its size",
        "long.png",
        short[: short.index(b"IDAT") - 4]
        + chunk(b"IDAT", _zeros_compressed(200_000_000))
        + chunk(b"IEND", b""),
        None,
        "image/png",
    )
    yield Hostile(
        "JPEG with 400 scans",
        "scans.jpg",
        small_jpeg(True)[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x00" * 400 + b"\xff\xd9",
        CORRUPT,
    )


def lies() -> Iterator[Hostile]:
    png = images.png(images.photo(40, 30))
    bad_crc = bytearray(png)
    bad_crc[png.index(b"IDAT") + 10] ^= 0xFF
    yield Hostile("PNG with a damaged picture chunk", "crc.png", bytes(bad_crc), CORRUPT,
                  "image/png")  # fmt: skip
    yield Hostile("PNG with a chunk length of 4 GB", "len.png",
                  png[:33] + b"\xff\xff\xff\xffIDAT" + png[41:], CORRUPT, "image/png")  # fmt: skip
    yield Hostile("PNG without a header chunk", "noihdr.png", png[:8] + png[33:], CORRUPT,
                  "image/png")  # fmt: skip
    impossible = bytearray(png)
    impossible[24] = 7  # bit depth 7
    yield Hostile("PNG with an impossible bit depth", "depth.png", bytes(impossible), CORRUPT,
                  "image/png")  # fmt: skip
    no_idat = png[:33] + chunk(b"IEND", b"")
    yield Hostile("PNG without picture data", "empty.png", no_idat, CORRUPT, "image/png")
    jpeg = small_jpeg()
    yield Hostile("JPEG with two frame headers", "two.jpg",
                  jpeg_claiming(64, 48)[:2] + _sof(64, 48) + jpeg[2:], CORRUPT)  # fmt: skip
    yield Hostile("JPEG with two colour components", "two-colours.jpg",
                  jpeg[:2] + _sof(64, 48, components=2) + jpeg[2:], CORRUPT)  # fmt: skip
    yield Hostile("JPEG that ends after its start marker", "soi.jpg", b"\xff\xd8\xff", CORRUPT)
    yield Hostile("JPEG of zeros", "zeros.jpg", b"\xff\xd8\xff\xe0" + bytes(200), CORRUPT)
    yield Hostile("JPEG segment length past the end", "seg.jpg",
                  b"\xff\xd8\xff\xe1\xff\xff" + bytes(100), CORRUPT)  # fmt: skip
    webp = small_webp()
    yield Hostile("WebP whose RIFF size is 4 GB", "riff.webp",
                  webp[:4] + b"\xff\xff\xff\xff" + webp[8:], CORRUPT, "image/webp")  # fmt: skip
    yield Hostile("WebP with no picture", "nothing.webp", _riff(b""), CORRUPT, "image/webp")
    yield Hostile("WebP with a damaged VP8 start code", "vp8.webp",
                  webp.replace(b"\x9d\x01\x2a", b"\x00\x00\x00", 1), CORRUPT,
                  "image/webp")  # fmt: skip
    yield Hostile("WebP animation frame larger than the canvas", "frame.webp",
                  webp_frames(1, (16_383, 16_383)), GEOMETRY, "image/webp")  # fmt: skip


def _sof(width: int, height: int, components: int = 3) -> bytes:
    body = bytes([8]) + struct.pack(">HH", height, width) + bytes([components])
    body += b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    return b"\xff\xc0" + struct.pack(">H", len(body) + 2) + body


def animations() -> Iterator[Hostile]:
    yield Hostile("animated PNG of 3 frames", "anim.png", animation("PNG", 3), ANIMATED,
                  "image/png")  # fmt: skip
    yield Hostile("animated WebP of 3 frames", "anim.webp", animation("WEBP", 3), ANIMATED,
                  "image/webp")  # fmt: skip
    yield Hostile("WebP of 5,000 frames", "frames.webp", webp_frames(5_000), ANIMATED,
                  "image/webp")  # fmt: skip
    actl = chunk(b"acTL", struct.pack(">II", 0x7FFFFFFF, 0))
    yield Hostile("PNG claiming two billion frames", "actl.png", png_with(actl), ANIMATED,
                  "image/png")  # fmt: skip
    huge_frame = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 20_000, 20_000, 0, 0, 1, 1, 0, 0))
    yield Hostile("PNG frame control for a 20,000 x 20,000 frame", "fctl.png",
                  png_with(huge_frame), GEOMETRY, "image/png")  # fmt: skip


def metadata_bombs() -> Iterator[Hostile]:
    bomb = _zeros_compressed(64 * 1024 * 1024)
    yield Hostile("PNG iCCP profile inflating to 64 MB", "iccp.png",
                  png_with(chunk(b"iCCP", b"sRGB\x00\x00" + bomb)), METADATA,
                  "image/png")  # fmt: skip
    yield Hostile("PNG zTXt inflating to 64 MB", "ztxt.png",
                  png_with(chunk(b"zTXt", b"Comment\x00\x00" + bomb)), METADATA,
                  "image/png")  # fmt: skip
    yield Hostile("PNG iTXt inflating to 64 MB", "itxt.png",
                  png_with(chunk(b"iTXt", b"Comment\x00\x01\x00en\x00\x00" + bomb)), METADATA,
                  "image/png")  # fmt: skip
    yield Hostile("PNG zTXt after the picture inflating to 64 MB", "late.png",
                  png_with(chunk(b"zTXt", b"Comment\x00\x00" + bomb), after_idat=True),
                  METADATA, "image/png")  # fmt: skip
    many = b"".join(chunk(b"zTXt", b"k%d\x00\x00" % i + _zeros_compressed(900_000))
                    for i in range(12))  # fmt: skip
    yield Hostile("PNG with twelve 900 KB zTXt chunks", "many.png", png_with(many), METADATA,
                  "image/png")  # fmt: skip
    yield Hostile("PNG with 2,000 text chunks of 8 KB", "text.png",
                  png_with(*[chunk(b"tEXt", b"Comment\x00" + b"A" * 8192)] * 2000), METADATA,
                  "image/png")  # fmt: skip
    yield Hostile("PNG with a 9 MB EXIF chunk", "exif.png",
                  png_with(chunk(b"eXIf", b"MM\x00\x2a" + bytes(9 * 1024 * 1024))), METADATA,
                  "image/png")  # fmt: skip
    yield Hostile("PNG with a damaged zTXt", "badz.png",
                  png_with(chunk(b"zTXt", b"Comment\x00\x00not zlib at all")), None,
                  "image/png")  # fmt: skip
    segment = bytes(65_000)
    yield Hostile("JPEG with 200 APP1 segments of 64 KB", "app1.jpg",
                  jpeg_with_segments(0xE1, b"Exif\x00\x00" + segment, 200), METADATA)  # fmt: skip
    yield Hostile("JPEG with 200 ICC profile segments", "icc.jpg",
                  jpeg_with_segments(0xE2, b"ICC_PROFILE\x00\x01\xc8" + segment, 200),
                  METADATA)  # fmt: skip
    yield Hostile("JPEG with 200 comments of 64 KB", "com.jpg",
                  jpeg_with_segments(0xFE, segment, 200), METADATA)  # fmt: skip
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10)
            for i in range(1, 10)
        )
        + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>'
    )
    yield Hostile("JPEG with a billion-laughs XMP packet", "laughs.jpg",
                  jpeg_with_segments(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + laughs, 1),
                  None)  # fmt: skip
    loop = _exif_loop()
    yield Hostile("JPEG whose EXIF directories point at each other", "loop.jpg",
                  jpeg_with_segments(0xE1, b"Exif\x00\x00" + loop, 1), None)  # fmt: skip
    yield Hostile("WebP with a 9 MB EXIF chunk", "exif.webp",
                  webp_with_canvas(64, 48, flags=0x08,
                                   extra=_webp_chunk(b"EXIF", bytes(9 * 1024 * 1024))),
                  METADATA, "image/webp")  # fmt: skip
    yield Hostile("WebP with a 9 MB ICC profile", "icc.webp",
                  webp_with_canvas(64, 48, flags=0x20,
                                   extra=_webp_chunk(b"ICCP", bytes(9 * 1024 * 1024))),
                  METADATA, "image/webp")  # fmt: skip


def _exif_loop() -> bytes:
    # A TIFF header whose first directory's "next directory" and EXIF pointer lead back to it.
    entries = struct.pack(">HHII", 0x8769, 4, 1, 8) + struct.pack(">HHII", 0x010E, 2, 4, 0)
    header = b"MM\x00\x2a" + struct.pack(">I", 8)
    return header + struct.pack(">H", 2) + entries + struct.pack(">I", 8)


def polyglots() -> Iterator[Hostile]:
    jpeg = small_jpeg()
    zip_file = _zip({"index.html": b"<script>alert(1)</script>"})
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    yield Hostile("JPEG that is also a ZIP", "poly.jpg", jpeg + zip_file, None)
    yield Hostile("JPEG with HTML in a comment", "poly.jpg",
                  jpeg_with_segments(0xFE, html, 1), None)  # fmt: skip
    yield Hostile("JPEG followed by HTML", "poly.jpg", jpeg + html, None)
    yield Hostile("PNG followed by HTML", "poly.png", images.png(images.photo(20, 20)) + html,
                  None, "image/png")  # fmt: skip
    yield Hostile("PNG with a script in a text chunk", "poly.png",
                  png_with(chunk(b"tEXt", b"Comment\x00" + html)), None, "image/png")  # fmt: skip
    yield Hostile("WebP followed by a ZIP", "poly.webp", small_webp() + zip_file, None,
                  "image/webp")  # fmt: skip
    yield Hostile("ZIP named as a JPEG", "archive.jpg", zip_file, UNSUPPORTED)
    yield Hostile("HTML named as a JPEG", "page.jpg", html, UNSUPPORTED)
    yield Hostile("SVG with a script", "vector.svg",
                  b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                  UNSUPPORTED, "image/svg+xml")  # fmt: skip
    yield Hostile("GIF that is also JavaScript", "gif.jpg", b"GIF89a/*\x01\x00\x01\x00*/=1;",
                  UNSUPPORTED, "image/gif")  # fmt: skip
    yield Hostile("PDF with a JPEG inside", "doc.jpg", b"%PDF-1.4\n" + jpeg, UNSUPPORTED)
    yield Hostile("JPEG start followed by HTML", "fake.jpg", b"\xff\xd8\xff" + html, CORRUPT)
    yield Hostile("an empty file", "empty.jpg", b"", UNSUPPORTED)
    yield Hostile("a single byte", "byte.jpg", b"\xff", UNSUPPORTED)
    yield Hostile("the PNG signature alone", "sig.png", b"\x89PNG\r\n\x1a\n", CORRUPT,
                  "image/png")  # fmt: skip
    yield Hostile("RIFF WAVE named as WebP", "sound.webp",
                  b"RIFF" + struct.pack("<I", 4) + b"WAVE", UNSUPPORTED, "image/webp")  # fmt: skip


def _zip(files: dict[str, bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


PUPIL_NAMES = ("Amara Okafor", "Emily-Rose O'Brien", "Zoë Łukasiewicz")


def hostile_names() -> Iterator[Hostile]:
    photo = small_jpeg()
    names = [
        "../../../../etc/passwd",
        "..\\..\\..\\windows\\system32\\config\\sam.jpg",
        "/absolute/path/photo.jpg",
        "photo\x00.jpg",
        "photo.jpg\x00.exe",
        "photo\u202egpj.exe",
        "\u202e\u2066evil\u2069.jpg",
        "a" * 1000 + ".jpg",
        "é" * 1000 + ".jpg",
        "CON.jpg",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "<script>alert(1)</script>.jpg",
        "photo\r\nContent-Type: text/html.jpg",
        "",
        ".",
        "..",
        "'; DROP TABLE media_item; --.jpg",
        "\U0001f467\U0001f3fd.jpg",
        "photo\t\x7f\x1b[31m.jpg",
        "photo.jpg" + " " * 300,
        "\ufeffphoto.jpg",
    ]
    for position, name in enumerate(names):
        yield Hostile(f"file name #{position}: {name[:40]!r}", name, photo, None)
    for name in PUPIL_NAMES:
        yield Hostile(f"file named after a pupil: {name}", f"{name}.jpg", photo, None)
        yield Hostile(
            f"file named after a pupil, traversing: {name}", f"../{name}/../{name}.jpg", photo, None
        )


def corpus() -> list[Hostile]:
    """Every hostile file, freshly made."""
    jpeg = images.jpeg(images.photo(320, 240, seed=11))
    progressive = io.BytesIO()
    images.photo(320, 240, seed=12).save(progressive, "JPEG", progressive=True)
    files = [
        *geometry(),
        *bombs(),
        *lies(),
        *animations(),
        *metadata_bombs(),
        *polyglots(),
        *hostile_names(),
        *truncations("JPEG", jpeg, "image/jpeg"),
        *truncations("progressive JPEG", progressive.getvalue(), "image/jpeg"),
        *truncations("PNG", images.png(images.photo(320, 240, seed=13)), "image/png"),
        *truncations("WebP", images.webp(images.photo(320, 240, seed=14)), "image/webp"),
        *truncations(
            "lossless WebP", _lossless_webp(images.photo(160, 120, seed=15)), "image/webp"
        ),
    ]
    return files


def _lossless_webp(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "WEBP", lossless=True)
    return out.getvalue()
