"""Every piece of text an image file carries besides its pixels, and whether it says where it was.

Cameras, phones and photo tools write captions, keywords, people's names and locations into
EXIF, XMP and IPTC blocks (and PNG text chunks); a published copy would carry them to anyone who
downloads it. Each text value is returned with where it was found ("metadata.EXIF:Artist",
"metadata.XMP:dc:title", "metadata.IPTC:Keywords", "metadata.PNG:Comment").
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from PIL import ExifTags, Image

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_INTEROP_IFD = 0xA005
_USER_COMMENT = 0x9286
# Windows Explorer's tags, stored as UTF-16LE bytes.
_XP_TAGS = {0x9C9B: "XPTitle", 0x9C9C: "XPComment", 0x9C9D: "XPAuthor", 0x9C9E: "XPKeywords",
            0x9C9F: "XPSubject"}  # fmt: skip
_SKIPPED_EXIF = {0x927C, 0x02BC, 0x83BB, 0x8649}  # MakerNote, XMP, IPTC, Photoshop: binary blocks

# IPTC IIM record 2 datasets, named as in the IPTC standard.
_IPTC_NAMES = {
    5: "ObjectName", 7: "EditStatus", 10: "Urgency", 12: "SubjectReference", 15: "Category",
    20: "SupplementalCategories", 22: "FixtureIdentifier", 25: "Keywords",
    26: "ContentLocationCode", 27: "ContentLocationName", 40: "SpecialInstructions",
    65: "OriginatingProgram", 80: "By-line", 85: "By-lineTitle", 90: "City",
    92: "Sub-location", 95: "Province-State", 100: "Country-PrimaryLocationCode",
    101: "Country-PrimaryLocationName", 103: "OriginalTransmissionReference", 105: "Headline",
    110: "Credit", 115: "Source", 116: "CopyrightNotice", 118: "Contact", 120: "Caption-Abstract",
    122: "Writer-Editor",
}  # fmt: skip
# Record 2 datasets that hold numbers or dates, not words.
_IPTC_NOT_TEXT = {0, 30, 35, 37, 38, 55, 60, 62, 63, 70, 125, 130, 131, 200, 201, 202}

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML = "http://www.w3.org/XML/1998/namespace"
_EXIF_NS = ("http://ns.adobe.com/exif/1.0/", "http://cipa.jp/exif/1.0/")
_KNOWN_PREFIXES = {
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "Iptc4xmpCore",
    "http://ns.adobe.com/lightroom/1.0/": "lr",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://www.metadataworkinggroup.com/schemas/regions/": "mwg-rs",
    "http://ns.microsoft.com/photo/1.2/": "MP",
    "http://ns.microsoft.com/photo/1.2/t/RegionInfo#": "MPRI",
    "http://ns.microsoft.com/photo/1.2/t/Region#": "MPReg",
    "http://ns.adobe.com/xmp/1.0/DynamicMedia/": "xmpDM",
    "http://ns.adobe.com/photoshop/1.0/camera-raw-settings/": "crs",
    _RDF: "rdf",
    _XML: "xml",
    "adobe:ns:meta/": "x",
}
# XMP values that are identifiers, not words anyone wrote.
_XMP_SKIPPED = {"rdf:about", "rdf:parseType", "rdf:resource", "rdf:nodeID", "rdf:datatype",
                "xml:lang", "x:xmptk", "xmpMM:DocumentID", "xmpMM:InstanceID",
                "xmpMM:OriginalDocumentID", "stEvt:instanceID", "stRef:instanceID",
                "stRef:documentID"}  # fmt: skip


@dataclass(frozen=True)
class MetadataText:
    """A text value from the file's metadata and where it was found."""

    where: str
    text: str


@dataclass(frozen=True)
class Metadata:
    texts: list[MetadataText]
    has_location: bool


def read_metadata(image: Image.Image) -> Metadata:
    """All text values in the image's EXIF, XMP, IPTC, PNG text chunks and JPEG comment."""
    texts: list[MetadataText] = []
    exif = image.getexif()
    texts.extend(_exif_texts(exif))
    has_location = bool(exif.get_ifd(_GPS_IFD)) or _GPS_IFD in exif
    info = image.info
    xmp_packets: list[bytes] = []
    if isinstance(info.get("xmp"), bytes | str):
        xmp_packets.append(_as_bytes(info["xmp"]))
    if image.format == "PNG":
        for key, value in getattr(image, "text", {}).items():
            if key == "XML:com.adobe.xmp":
                xmp_packets.append(_as_bytes(value))
            else:
                texts.append(MetadataText(f"metadata.PNG:{key}", str(value)))
    for packet in dict.fromkeys(xmp_packets):
        xmp = _xmp_texts(packet)
        texts.extend(xmp.texts)
        has_location = has_location or xmp.has_location
    photoshop = info.get("photoshop")
    if isinstance(photoshop, dict) and isinstance(photoshop.get(0x0404), bytes):
        texts.extend(_iptc_texts(photoshop[0x0404]))
    comment = info.get("comment")
    if isinstance(comment, bytes | str) and comment:
        texts.append(MetadataText("metadata.JPEG:Comment", _decode(_as_bytes(comment))))
    return Metadata([text for text in texts if text.text.strip()], has_location)


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _exif_texts(exif: Image.Exif) -> Iterator[MetadataText]:
    sources: list[tuple[int, Any]] = list(exif.items())
    sources += list(exif.get_ifd(_EXIF_IFD).items())
    for tag, value in sources:
        if tag in _SKIPPED_EXIF or tag in (_EXIF_IFD, _GPS_IFD, _INTEROP_IFD):
            continue
        name = _XP_TAGS.get(tag) or ExifTags.TAGS.get(tag, f"0x{tag:04X}")
        text: str | None = None
        if tag in _XP_TAGS:
            raw = bytes(value) if isinstance(value, bytes | tuple) else b""
            text = raw.decode("utf-16-le", errors="replace").rstrip("\x00")
        elif tag == _USER_COMMENT and isinstance(value, bytes):
            text = _user_comment(value)
        elif isinstance(value, str):
            text = value.rstrip("\x00")
        elif isinstance(value, bytes) and tag in ExifTags.TAGS and _looks_like_text(value):
            text = _decode(value).rstrip("\x00")
        if text and text.strip():
            yield MetadataText(f"metadata.EXIF:{name}", text)


def _user_comment(value: bytes) -> str:
    # An 8-byte character code comes first: ASCII, UNICODE (UTF-16, either byte order), JIS.
    prefix, body = value[:8], value[8:]
    if prefix.startswith(b"UNICODE"):
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", errors="replace").rstrip("\x00")
        # Without a byte-order mark, writers differ; the one whose text reads as letters wins.
        little = body.decode("utf-16-le", errors="replace")
        big = body.decode("utf-16-be", errors="replace")
        return (little if _letters(little) >= _letters(big) else big).rstrip("\x00")
    if prefix.startswith(b"JIS"):
        return body.decode("shift_jis", errors="replace").rstrip("\x00")
    if prefix.startswith(b"ASCII") or prefix == b"\x00" * 8:
        return _decode(body).rstrip("\x00 ")
    return _decode(value).rstrip("\x00 ")


def _letters(text: str) -> int:
    return sum(1 for character in text if character.isascii() and character.isalpha())


def _looks_like_text(value: bytes) -> bool:
    return bool(value) and all(32 <= byte < 127 or byte in (0, 9, 10, 13) for byte in value[:256])


def _iptc_texts(data: bytes) -> Iterator[MetadataText]:
    # IIM: each dataset is 0x1C, record, dataset number, a 2-byte length (extended lengths, with
    # the top bit set, are for binary data and are skipped), then the value.
    utf8 = b"\x1b%G" in data[:64]
    offset = 0
    while offset + 5 <= len(data):
        if data[offset] != 0x1C:
            offset += 1
            continue
        record, dataset = data[offset + 1], data[offset + 2]
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        offset += 5
        if length & 0x8000:
            size_bytes = length & 0x7FFF
            length = int.from_bytes(data[offset : offset + size_bytes], "big")
            offset += size_bytes + length
            continue
        value = data[offset : offset + length]
        offset += length
        if record != 2 or dataset in _IPTC_NOT_TEXT:
            continue
        text = value.decode("utf-8", errors="replace") if utf8 else _decode(value)
        name = _IPTC_NAMES.get(dataset, f"2:{dataset}")
        yield MetadataText(f"metadata.IPTC:{name}", text)


@dataclass(frozen=True)
class _Xmp:
    texts: list[MetadataText]
    has_location: bool


_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def _xmp_texts(packet: bytes) -> _Xmp:
    """Every text value in an XMP packet, named by the property that holds it."""
    if _DOCTYPE.search(packet):
        # Entity declarations have no place in XMP and are how XML parsers are made to expand
        # a few bytes into gigabytes; such a packet is read as plain text instead.
        return _xmp_as_plain_text(packet)
    start = packet.find(b"<x:xmpmeta")
    if start < 0:
        start = packet.find(b"<rdf:RDF")
    body = packet[start:] if start >= 0 else packet
    end = body.rfind(b"</x:xmpmeta>")
    if end >= 0:
        body = body[: end + len(b"</x:xmpmeta>")]
    prefixes = dict(_KNOWN_PREFIXES)
    texts: list[MetadataText] = []
    has_location = False
    stack: list[str] = []
    try:
        parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(
            events=("start-ns", "start", "end")
        )
        parser.feed(body)
        parser.close()
        events = cast(list[tuple[str, Any]], list(parser.read_events()))
        for event, payload in events:
            if event == "start-ns":
                prefix, uri = cast(tuple[str, str], payload)
                prefixes.setdefault(uri, prefix)
            elif event == "start":
                element = cast(ElementTree.Element, payload)
                name = _qualified(element.tag, prefixes)
                stack.append(name)
                for attribute, value in element.attrib.items():
                    attribute_name = _qualified(attribute, prefixes)
                    if _is_gps(attribute, attribute_name):
                        has_location = True
                    if attribute_name not in _XMP_SKIPPED and value.strip():
                        texts.append(MetadataText(f"metadata.XMP:{attribute_name}", value))
                if _is_gps(element.tag, name):
                    has_location = True
            elif event == "end":
                element = cast(ElementTree.Element, payload)
                name = stack.pop()
                property_name = _property([*stack, name])
                if element.text and element.text.strip() and property_name not in _XMP_SKIPPED:
                    texts.append(MetadataText(f"metadata.XMP:{property_name}", element.text))
    except ElementTree.ParseError:
        return _xmp_as_plain_text(packet)
    return _Xmp(texts, has_location)


def _qualified(tag: str, prefixes: dict[str, str]) -> str:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return f"{prefixes.get(uri, uri)}:{local}"
    return tag


def _property(path: list[str]) -> str:
    # A value in a list (rdf:Bag/Seq/Alt, rdf:li) or a structure is named by the nearest
    # enclosing property, e.g. dc:subject for a keyword.
    for name in reversed(path):
        if not name.startswith("rdf:") and name not in ("x:xmpmeta",):
            return name
    return path[-1] if path else "xmp"


def _is_gps(tag: str, name: str) -> bool:
    local = name.partition(":")[2]
    return (
        tag.startswith("{")
        and tag[1:].partition("}")[0] in _EXIF_NS
        and local
        in (
            "GPSLatitude",
            "GPSLongitude",
            "GPSAltitude",
            "GPSDestLatitude",
            "GPSDestLongitude",
        )
    )


_REFERENCE = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")
_PREDEFINED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape(text: str) -> str:
    """XML's own character references only; declared entities are left as written."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("#"):
            codepoint = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
            return chr(codepoint) if 0 < codepoint < 0x110000 else match.group()
        return _PREDEFINED[name]

    return _REFERENCE.sub(replace, text)


_PLAIN_VALUES = re.compile(rb">([^<>]+)<|=\s*\"([^\"]*)\"|=\s*'([^']*)'")


def _xmp_as_plain_text(packet: bytes) -> _Xmp:
    texts = []
    for match in _PLAIN_VALUES.finditer(packet):
        raw = next(group for group in match.groups() if group is not None)
        text = _unescape(_decode(raw)).strip()
        if text:
            texts.append(MetadataText("metadata.XMP", text))
    has_location = re.search(rb"GPS(Latitude|Longitude)", packet) is not None
    return _Xmp(texts, has_location)
