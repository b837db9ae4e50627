"""Real image files made in tests: names drawn in the pixels or written into EXIF, XMP, IPTC and
PNG text chunks, GPS positions, a drawn face, and files that must be refused (a decompression
bomb, a truncated JPEG, text pretending to be a JPEG)."""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageFilter, ImageFont
from PIL.PngImagePlugin import PngInfo

EXIF_IFD = 0x8769
GPS_IFD = 0x8825


def photo(width: int = 800, height: int = 600, *, seed: int = 1) -> Image.Image:
    """Something like a photo: a sky-to-grass gradient, soft shapes and sensor noise."""
    rng = random.Random(seed)
    sky = Image.new("RGB", (width, height), (110, 160, 215))
    grass = Image.new("RGB", (width, height), (70, 130, 60))
    image = Image.composite(grass, sky, Image.linear_gradient("L").resize((width, height)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(width, height) // 40, max(width, height) // 8)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(max(width, height) / 300))
    grain = np.random.default_rng(seed).normal(128, 12, (height, width)).clip(0, 255)
    noise = Image.fromarray(grain.astype(np.uint8)).convert("RGB")
    return Image.blend(image, noise, 0.08)


def draw_text(
    image: Image.Image,
    text: str,
    *,
    at: tuple[int, int] = (40, 40),
    size: int = 64,
    colour: tuple[int, int, int] = (255, 255, 255),
    background: tuple[int, int, int] | None = (20, 20, 20),
) -> tuple[int, int, int, int]:
    """Write ``text`` into the pixels, large enough for OCR; returns its box (x, y, w, h)."""
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox(at, text, font=font)
    if background is not None:
        pad = size // 4
        draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=background)
    draw.text(at, text, font=font, fill=colour)
    return int(left), int(top), int(right - left), int(bottom - top)


def draw_face(image: Image.Image, centre: tuple[int, int], size: int) -> tuple[int, int, int, int]:
    """A drawn, front-on face that OpenCV's frontal Haar cascade finds, checked by
    ``test_m3_drawn_face_is_found`` (opencv-python-headless ships cascades but no sample photos,
    and tests download nothing). Returns the face's bounding box (x, y, w, h)."""
    layer = Image.new("L", image.size, 0)
    mask = Image.new("L", image.size, 0)
    cx, cy = centre
    s = size
    face = ImageDraw.Draw(layer)
    outline = (cx - 0.45 * s, cy - 0.6 * s, cx + 0.45 * s, cy + 0.6 * s)
    face.ellipse(outline, fill=200)
    for side in (-1, 1):
        eye_x = cx + side * 0.18 * s
        face.ellipse((eye_x - 0.1 * s, cy - 0.2 * s, eye_x + 0.1 * s, cy - 0.1 * s), fill=40)
    face.ellipse((cx - 0.06 * s, cy + 0.12 * s, cx + 0.06 * s, cy + 0.17 * s), fill=130)
    face.ellipse((cx - 0.17 * s, cy + 0.3 * s, cx + 0.17 * s, cy + 0.37 * s), fill=80)
    ImageDraw.Draw(mask).ellipse(
        (cx - 0.6 * s, cy - 0.75 * s, cx + 0.6 * s, cy + 0.75 * s), fill=255
    )
    layer = layer.filter(ImageFilter.GaussianBlur(s * 0.02))
    # A dark surround behind the head, as hair and background give a real face.
    ImageDraw.Draw(image).ellipse((cx - 0.6 * s, cy - 0.75 * s, cx + 0.6 * s, cy + 0.75 * s),
                                  fill=(30, 30, 30))  # fmt: skip
    image.paste(Image.merge("RGB", (layer, layer, layer)), (0, 0), mask)
    return int(cx - 0.45 * s), int(cy - 0.6 * s), int(0.9 * s), int(1.2 * s)


def srgb_profile() -> bytes:
    """An ICC colour profile (sRGB, as littlecms writes it), with its description text."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif(
    *,
    description: str | None = None,
    artist: str | None = None,
    copyright_notice: str | None = None,
    user_comment: str | None = None,
    user_comment_encoding: str = "UNICODE",
    xp: Mapping[str, str] | None = None,
    gps: tuple[float, float] | None = None,
    orientation: int | None = None,
) -> Image.Exif:
    """An EXIF block with the given text fields (XP tags are Windows' UTF-16 ones: XPTitle,
    XPComment, XPAuthor, XPKeywords, XPSubject) and, optionally, a GPS position."""
    block = Image.Exif()
    if description is not None:
        block[0x010E] = description
    if artist is not None:
        block[0x013B] = artist
    if copyright_notice is not None:
        block[0x8298] = copyright_notice
    if orientation is not None:
        block[0x0112] = orientation
    xp_tags = {"XPTitle": 0x9C9B, "XPComment": 0x9C9C, "XPAuthor": 0x9C9D,
               "XPKeywords": 0x9C9E, "XPSubject": 0x9C9F}  # fmt: skip
    for name, value in (xp or {}).items():
        block[xp_tags[name]] = (value + "\x00").encode("utf-16-le")
    if user_comment is not None:
        if user_comment_encoding == "UNICODE":
            raw = b"UNICODE\x00" + user_comment.encode("utf-16-le")
        else:
            raw = b"ASCII\x00\x00\x00" + user_comment.encode("ascii")
        block.get_ifd(EXIF_IFD)[0x9286] = raw
    if gps is not None:
        latitude, longitude = gps
        gps_ifd = block.get_ifd(GPS_IFD)
        gps_ifd[1] = "N" if latitude >= 0 else "S"
        gps_ifd[2] = _degrees(abs(latitude))
        gps_ifd[3] = "E" if longitude >= 0 else "W"
        gps_ifd[4] = _degrees(abs(longitude))
    return block


def _degrees(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 2)
    return float(degrees), float(minutes), seconds


def xmp_packet(
    *,
    title: str | None = None,
    description: str | None = None,
    subjects: Sequence[str] = (),
    creator: str | None = None,
    people: Sequence[str] = (),
    headline: str | None = None,
    hierarchical: Sequence[str] = (),
    gps: tuple[str, str] | None = None,
    doctype: bool = False,
) -> bytes:
    """An XMP packet as Adobe tools write it: dc:title/description (language alternatives),
    dc:subject (bag), dc:creator (seq), Iptc4xmpExt:PersonInImage, photoshop:Headline (written
    as an attribute), lr:hierarchicalSubject and, optionally, exif:GPSLatitude/Longitude."""

    def alt(value: str) -> str:
        return f'<rdf:Alt><rdf:li xml:lang="x-default">{escape(value)}</rdf:li></rdf:Alt>'

    def bag(kind: str, values: Sequence[str]) -> str:
        items = "".join(f"<rdf:li>{escape(value)}</rdf:li>" for value in values)
        return f"<rdf:{kind}>{items}</rdf:{kind}>"

    attributes = ""
    if headline is not None:
        attributes += f' photoshop:Headline="{escape(headline, {chr(34): "&quot;"})}"'
    if gps is not None:
        attributes += f' exif:GPSLatitude="{gps[0]}" exif:GPSLongitude="{gps[1]}"'
    properties = ""
    if title is not None:
        properties += f"<dc:title>{alt(title)}</dc:title>"
    if description is not None:
        properties += f"<dc:description>{alt(description)}</dc:description>"
    if subjects:
        properties += f"<dc:subject>{bag('Bag', subjects)}</dc:subject>"
    if creator is not None:
        properties += f"<dc:creator>{bag('Seq', [creator])}</dc:creator>"
    if people:
        properties += f"<Iptc4xmpExt:PersonInImage>{bag('Bag', people)}</Iptc4xmpExt:PersonInImage>"
    if hierarchical:
        properties += f"<lr:hierarchicalSubject>{bag('Bag', hierarchical)}</lr:hierarchicalSubject>"
    doctype_text = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>' if doctype else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        + doctype_text
        + '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Hallpass tests">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:lr="http://ns.adobe.com/lightroom/1.0/"'
        ' xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        f"{attributes}>{properties}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def iptc_block(datasets: Sequence[tuple[int, str]]) -> bytes:
    """IPTC IIM record 2 datasets (number, text), UTF-8 declared in record 1 (1:90)."""
    out = b"\x1c\x01\x5a\x00\x03\x1b%G"
    for number, text in datasets:
        value = text.encode()
        out += b"\x1c\x02" + bytes([number]) + struct.pack(">H", len(value)) + value
    return out


def _app13(iim: bytes) -> bytes:
    # Photoshop image resource 0x0404 (IPTC-NAA) inside an APP13 "Photoshop 3.0" segment.
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim))
    resource += iim + (b"\x00" if len(iim) % 2 else b"")
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def jpeg(
    image: Image.Image,
    *,
    exif_block: Image.Exif | None = None,
    xmp: bytes | None = None,
    iptc: Sequence[tuple[int, str]] = (),
    comment: str | None = None,
    icc_profile: bytes | None = None,
    quality: int = 90,
) -> bytes:
    """``image`` as JPEG bytes with the given metadata blocks."""
    out = io.BytesIO()
    options: dict[str, object] = {"quality": quality}
    if exif_block is not None:
        options["exif"] = exif_block.tobytes()
    if xmp is not None:
        options["xmp"] = xmp
    if comment is not None:
        options["comment"] = comment
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    image.convert("RGB").save(out, "JPEG", **options)
    data = out.getvalue()
    if iptc:
        data = data[:2] + _app13(iptc_block(iptc)) + data[2:]
    return data


def png(
    image: Image.Image,
    *,
    text: Mapping[str, str] | None = None,
    itxt: Mapping[str, str] | None = None,
    ztxt: Mapping[str, str] | None = None,
    exif_block: Image.Exif | None = None,
    xmp: bytes | None = None,
) -> bytes:
    """``image`` as PNG with tEXt, iTXt and zTXt chunks, an eXIf chunk and XMP (iTXt)."""
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    for key, value in (itxt or {}).items():
        info.add_itxt(key, value)
    for key, value in (ztxt or {}).items():
        info.add_text(key, value, zip=True)
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    out = io.BytesIO()
    options: dict[str, object] = {"pnginfo": info}
    if exif_block is not None:
        options["exif"] = exif_block.tobytes()
    image.save(out, "PNG", **options)
    return out.getvalue()


def webp(
    image: Image.Image, *, exif_block: Image.Exif | None = None, xmp: bytes | None = None
) -> bytes:
    """``image`` as WebP with EXIF and XMP chunks."""
    out = io.BytesIO()
    options: dict[str, object] = {"quality": 90}
    if exif_block is not None:
        options["exif"] = exif_block.tobytes()
    if xmp is not None:
        options["xmp"] = xmp
    image.save(out, "WEBP", **options)
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def decompression_bomb(side: int = 30_000) -> bytes:
    """A valid PNG of ``side`` x ``side`` black pixels (1 bit each) that is ~100 KB on disk and
    would take ``side``² bytes of memory (900 MB for the default) once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    """The first half of a real JPEG: the header is fine, the pixels stop."""
    data = jpeg(photo(640, 480, seed=3))
    return data[: len(data) // 2]


def text_file() -> bytes:
    """A text file, as someone might upload one renamed to ``.jpg``."""
    return b"Sports day results\nEmily-Rose O'Brien: 1st\n"
