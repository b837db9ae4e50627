"""Image checks and scans: what is refused, what text a file carries, what is in the picture,
and that the published copy carries nothing but blurred-where-asked pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from hallpass_media.scanning import (
    Box,
    ImageLimits,
    ImageRefused,
    MetadataText,
    Scanner,
    ScanResult,
    check_image,
    clean_rendition,
    phash_distance,
)
from hallpass_media.scanning.images import open_image
from hallpass_media.scanning.metadata import read_metadata
from tests.media import images

LIMITS = ImageLimits()


def texts(data: bytes) -> dict[str, list[str]]:
    image, _ = open_image(data, LIMITS)
    found: dict[str, list[str]] = {}
    for item in read_metadata(image).texts:
        found.setdefault(item.where, []).append(item.text)
    return found


def has_location(data: bytes) -> bool:
    image, _ = open_image(data, LIMITS)
    return read_metadata(image).has_location


def refusal(data: bytes, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(ImageRefused) as refused:
        check_image(data, limits)
    return refused.value.code


def overlap(a: Box, b: tuple[int, int, int, int]) -> float:
    width = min(a.x + a.width, b[0] + b[2]) - max(a.x, b[0])
    height = min(a.y + a.height, b[1] + b[3]) - max(a.y, b[1])
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / min(a.width * a.height, b[2] * b[3])


# --- check_image --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "format_name", "mime"),
    [(images.jpeg, "jpeg", "image/jpeg"), (images.png, "png", "image/png"),
     (images.webp, "webp", "image/webp")],
)  # fmt: skip
def test_jpeg_png_and_webp_are_accepted_with_their_size(
    encode: object, format_name: str, mime: str
) -> None:
    assert callable(encode)
    checked = check_image(encode(images.photo(320, 200)), LIMITS)
    assert (checked.format, checked.mime, checked.width, checked.height) == (
        format_name,
        mime,
        320,
        200,
    )


def test_text_file_named_as_a_jpeg_is_refused_as_unsupported() -> None:
    assert refusal(images.text_file()) == "unsupported_media_type"


def test_gif_is_refused_as_unsupported_whatever_it_claims_to_be() -> None:
    out = io.BytesIO()
    images.photo(64, 64).save(out, "GIF")
    assert refusal(out.getvalue()) == "unsupported_media_type"


def test_truncated_jpeg_is_refused_as_corrupt() -> None:
    assert refusal(images.truncated_jpeg()) == "corrupt_image"


def test_jpeg_header_with_garbage_after_it_is_refused_as_corrupt() -> None:
    assert refusal(b"\xff\xd8\xff\xe0" + b"\x00" * 200) == "corrupt_image"


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = images.decompression_bomb()
    assert len(bomb) < 1_000_000
    assert refusal(bomb) == "too_many_pixels"


def test_image_just_over_pillows_warning_size_is_refused_without_a_warning() -> None:
    # 10,000 x 10,000 is past Pillow's own warning threshold (about 89 megapixels) but not its
    # error threshold: the warning must not escape (warnings are errors here), our limit decides.
    assert refusal(images.decompression_bomb(10_000)) == "too_many_pixels"


def test_image_over_the_pixel_limit_is_refused() -> None:
    data = images.jpeg(images.photo(200, 100))
    assert refusal(data, ImageLimits(max_pixels=19_999)) == "too_many_pixels"
    assert check_image(data, ImageLimits(max_pixels=20_000)).width == 200


def test_file_over_the_byte_limit_is_refused() -> None:
    data = images.jpeg(images.photo(200, 100))
    assert refusal(data, ImageLimits(max_bytes=len(data) - 1)) == "image_too_large"


# --- metadata -----------------------------------------------------------------------------


def test_m1_exif_text_fields_are_read() -> None:
    block = images.exif(
        description="Amelia Jones at sports day",
        artist="Mrs D'Souza",
        copyright_notice="Oakfield Primary",
        user_comment="Zoë Smith-Jones",
        xp={"XPTitle": "Emily", "XPComment": "Lucas", "XPAuthor": "Isla",
            "XPKeywords": "Ava;Mia", "XPSubject": "Noah"},
    )  # fmt: skip
    found = texts(images.jpeg(images.photo(), exif_block=block))
    assert found["metadata.EXIF:ImageDescription"] == ["Amelia Jones at sports day"]
    assert found["metadata.EXIF:Artist"] == ["Mrs D'Souza"]
    assert found["metadata.EXIF:Copyright"] == ["Oakfield Primary"]
    assert found["metadata.EXIF:UserComment"] == ["Zoë Smith-Jones"]
    assert found["metadata.EXIF:XPTitle"] == ["Emily"]
    assert found["metadata.EXIF:XPComment"] == ["Lucas"]
    assert found["metadata.EXIF:XPAuthor"] == ["Isla"]
    assert found["metadata.EXIF:XPKeywords"] == ["Ava;Mia"]
    assert found["metadata.EXIF:XPSubject"] == ["Noah"]


def test_m1_exif_user_comment_in_ascii_is_read() -> None:
    block = images.exif(user_comment="Amelia Jones", user_comment_encoding="ASCII")
    assert texts(images.jpeg(images.photo(), exif_block=block))["metadata.EXIF:UserComment"] == [
        "Amelia Jones"
    ]


def test_m1_xmp_properties_are_read_under_their_names() -> None:
    packet = images.xmp_packet(
        title="Amelia Jones",
        description="Sports day",
        subjects=["Emily-Rose O'Brien", "relay"],
        creator="Mr Ng",
        people=["Zoë Smith-Jones"],
        headline="Winners & runners-up",
        hierarchical=["People|Lucas van der Berg"],
    )
    found = texts(images.jpeg(images.photo(), xmp=packet))
    assert found["metadata.XMP:dc:title"] == ["Amelia Jones"]
    assert found["metadata.XMP:dc:description"] == ["Sports day"]
    assert found["metadata.XMP:dc:subject"] == ["Emily-Rose O'Brien", "relay"]
    assert found["metadata.XMP:dc:creator"] == ["Mr Ng"]
    assert found["metadata.XMP:Iptc4xmpExt:PersonInImage"] == ["Zoë Smith-Jones"]
    assert found["metadata.XMP:photoshop:Headline"] == ["Winners & runners-up"]
    assert found["metadata.XMP:lr:hierarchicalSubject"] == ["People|Lucas van der Berg"]


def test_m1_xmp_with_entity_declarations_is_read_as_plain_text_without_expanding_them() -> None:
    packet = images.xmp_packet(title="Amelia ENTITY Jones", doctype=True)
    packet = packet.replace(b"ENTITY Jones", b"&a; Jones")
    found = texts(images.jpeg(images.photo(), xmp=packet))
    assert "Amelia &a; Jones" in found["metadata.XMP"]
    assert not any("aaaaaaaaaa" in text for text in found["metadata.XMP"])


def test_m1_iptc_caption_keywords_headline_and_byline_are_read() -> None:
    data = images.jpeg(
        images.photo(),
        iptc=[(120, "Amelia Jones wins"), (25, "Zoë"), (25, "relay"), (105, "Sports day"),
              (80, "Mr O'Brien"), (5, "Emily")],
    )  # fmt: skip
    found = texts(data)
    assert found["metadata.IPTC:Caption-Abstract"] == ["Amelia Jones wins"]
    assert found["metadata.IPTC:Keywords"] == ["Zoë", "relay"]
    assert found["metadata.IPTC:Headline"] == ["Sports day"]
    assert found["metadata.IPTC:By-line"] == ["Mr O'Brien"]
    assert found["metadata.IPTC:ObjectName"] == ["Emily"]


def test_m1_jpeg_comment_is_read() -> None:
    found = texts(images.jpeg(images.photo(), comment="Amelia Jones"))
    assert found["metadata.JPEG:Comment"] == ["Amelia Jones"]


def test_m1_png_text_chunks_exif_and_xmp_are_read() -> None:
    data = images.png(
        images.photo(),
        text={"Title": "Amelia Jones"},
        itxt={"Description": "Zoë Smith-Jones"},
        ztxt={"Comment": "Lucas van der Berg"},
        exif_block=images.exif(artist="Isla Ng"),
        xmp=images.xmp_packet(people=["Emily-Rose O'Brien"]),
    )
    found = texts(data)
    assert found["metadata.PNG:Title"] == ["Amelia Jones"]
    assert found["metadata.PNG:Description"] == ["Zoë Smith-Jones"]
    assert found["metadata.PNG:Comment"] == ["Lucas van der Berg"]
    assert found["metadata.EXIF:Artist"] == ["Isla Ng"]
    assert found["metadata.XMP:Iptc4xmpExt:PersonInImage"] == ["Emily-Rose O'Brien"]


def test_m1_webp_exif_and_xmp_chunks_are_read() -> None:
    data = images.webp(
        images.photo(),
        exif_block=images.exif(description="Amelia Jones"),
        xmp=images.xmp_packet(title="Zoë Smith-Jones"),
    )
    found = texts(data)
    assert found["metadata.EXIF:ImageDescription"] == ["Amelia Jones"]
    assert found["metadata.XMP:dc:title"] == ["Zoë Smith-Jones"]


def test_image_without_metadata_has_no_text_and_no_location() -> None:
    data = images.jpeg(images.photo())
    assert texts(data) == {}
    assert not has_location(data)


@pytest.mark.parametrize("encode", [images.jpeg, images.png, images.webp])
def test_m5_exif_gps_position_is_detected(encode: object) -> None:
    assert callable(encode)
    assert has_location(encode(images.photo(), exif_block=images.exif(gps=(51.5, -0.12))))


def test_m5_xmp_gps_position_is_detected() -> None:
    packet = images.xmp_packet(gps=("51,30.0N", "0,7.2W"))
    assert has_location(images.jpeg(images.photo(), xmp=packet))


# --- OCR, faces, hash ---------------------------------------------------------------------


def test_m1_ocr_reads_a_name_drawn_in_the_picture(ocr_scanner: Scanner) -> None:
    picture = images.photo(900, 600)
    drawn = images.draw_text(picture, "Amelia Jones", at=(200, 380), size=56)
    result = ocr_scanner.scan(images.jpeg(picture))
    [found] = [item for item in result.image_text if "Amelia" in item.text]
    assert found.text == "Amelia Jones"
    assert found.confidence > 0.8
    assert overlap(found.box, drawn) > 0.8


def test_m1_ocr_boxes_on_a_large_photo_are_in_its_own_coordinates(ocr_scanner: Scanner) -> None:
    # 3200 pixels wide: OCR reads a copy half that size; the box must come back doubled.
    picture = images.photo(3200, 2000)
    drawn = images.draw_text(picture, "Zoe Smith", at=(2100, 1500), size=120)
    result = ocr_scanner.scan(images.jpeg(picture))
    [found] = [item for item in result.image_text if "Zoe" in item.text]
    assert overlap(found.box, drawn) > 0.8


def test_m3_drawn_face_is_found(scanner: Scanner) -> None:
    picture = images.photo(900, 600)
    drawn = images.draw_face(picture, (300, 300), 220)
    result = scanner.scan(images.jpeg(picture))
    assert len(result.faces) == 1
    assert overlap(result.faces[0], drawn) > 0.7


def test_m3_faces_on_a_large_photo_are_counted_and_boxed_in_its_coordinates(
    scanner: Scanner,
) -> None:
    picture = images.photo(4000, 3000)
    drawn = [
        images.draw_face(picture, (1000, 1400), 700),
        images.draw_face(picture, (2900, 1300), 600),
    ]
    result = scanner.scan(images.jpeg(picture))
    assert len(result.faces) == 2
    for face, box in zip(result.faces, drawn, strict=True):
        assert overlap(face, box) > 0.7


def test_m3_photo_without_faces_has_none(scanner: Scanner) -> None:
    assert scanner.scan(images.jpeg(images.photo(900, 600, seed=7))).faces == []


def test_scan_reports_the_upright_picture_when_exif_rotates_it(scanner: Scanner) -> None:
    picture = images.photo(600, 400)
    images.draw_face(picture, (150, 200), 180)
    # Stored lying on its side with orientation 8 ("rotate 90° clockwise to view").
    stored = picture.transpose(Image.Transpose.ROTATE_270)
    data = images.jpeg(stored, exif_block=images.exif(orientation=8))
    result = scanner.scan(data)
    assert (result.width, result.height) == (600, 400)
    assert len(result.faces) == 1
    assert overlap(result.faces[0], (150 - 81, 200 - 108, 162, 216)) > 0.7


def test_resized_and_recompressed_copy_has_a_near_hash(scanner: Scanner) -> None:
    picture = images.photo(1200, 800, seed=4)
    original = scanner.scan(images.jpeg(picture)).phash
    copy = scanner.scan(images.jpeg(picture.resize((600, 400)), quality=60)).phash
    other = scanner.scan(images.jpeg(images.photo(1200, 800, seed=5))).phash
    assert phash_distance(original, copy) <= 10
    assert phash_distance(original, other) > 10
    assert -(2**63) <= original < 2**63


def test_scan_result_round_trips_through_json(scanner: Scanner) -> None:
    picture = images.photo(900, 600)
    images.draw_face(picture, (300, 300), 220)
    data = images.jpeg(picture, exif_block=images.exif(artist="Amelia Jones", gps=(51.5, -0.1)))
    result = scanner.scan(data)
    assert result.has_location
    assert MetadataText("metadata.EXIF:Artist", "Amelia Jones") in result.metadata
    assert ScanResult.from_json(result.to_json()) == result


def test_scan_refuses_what_check_image_refuses(scanner: Scanner) -> None:
    with pytest.raises(ImageRefused) as refused:
        scanner.scan(images.truncated_jpeg())
    assert refused.value.code == "corrupt_image"


# --- clean rendition ----------------------------------------------------------------------


def loaded_metadata(data: bytes) -> tuple[set[str], list[MetadataText], bool]:
    image, _ = open_image(data, LIMITS)
    metadata = read_metadata(image)
    keys = {key for key in image.info if isinstance(key, str)}
    return keys, metadata.texts, metadata.has_location


def test_m1_m5_jpeg_rendition_keeps_no_exif_xmp_iptc_gps_icc_or_comment() -> None:
    data = images.jpeg(
        images.photo(),
        exif_block=images.exif(description="Amelia Jones", gps=(51.5, -0.1)),
        xmp=images.xmp_packet(title="Amelia Jones", gps=("51,30.0N", "0,7.2W")),
        iptc=[(120, "Amelia Jones")],
        comment="Amelia Jones",
        icc_profile=images.srgb_profile(),
    )
    assert b"ICC_PROFILE" in data
    clean, mime = clean_rendition(data)
    info, found, location = loaded_metadata(clean)
    assert mime == "image/jpeg"
    assert found == []
    assert not location
    assert not {"exif", "xmp", "photoshop", "comment", "icc_profile"} & info
    assert b"Amelia" not in clean
    assert b"ICC_PROFILE" not in clean


def test_m1_m5_png_rendition_keeps_no_text_chunks_exif_or_xmp() -> None:
    data = images.png(
        images.photo(),
        text={"Title": "Amelia Jones"},
        itxt={"Description": "Amelia Jones"},
        ztxt={"Comment": "Amelia Jones"},
        exif_block=images.exif(artist="Amelia Jones", gps=(51.5, -0.1)),
        xmp=images.xmp_packet(title="Amelia Jones"),
    )
    clean, mime = clean_rendition(data)
    info, found, location = loaded_metadata(clean)
    assert mime == "image/png"
    assert (found, location) == ([], False)
    assert not {"exif", "xmp", "Title", "Description", "Comment"} & info
    assert b"tEXt" not in clean
    assert b"iTXt" not in clean
    assert b"zTXt" not in clean


def test_m1_m5_webp_rendition_keeps_no_exif_or_xmp() -> None:
    data = images.webp(
        images.photo(),
        exif_block=images.exif(artist="Amelia Jones", gps=(51.5, -0.1)),
        xmp=images.xmp_packet(title="Amelia Jones"),
    )
    clean, mime = clean_rendition(data)
    _info, found, location = loaded_metadata(clean)
    assert mime == "image/webp"
    assert (found, location) == ([], False)
    assert b"EXIF" not in clean
    assert b"XMP " not in clean


def test_m5_rendition_applies_exif_orientation_before_dropping_it() -> None:
    picture = images.photo(300, 200)
    stored = picture.transpose(Image.Transpose.ROTATE_270)
    data = images.jpeg(stored, exif_block=images.exif(orientation=8))
    clean, _ = clean_rendition(data)
    image = Image.open(io.BytesIO(clean))
    assert image.size == (300, 200)
    assert ImageOps.exif_transpose(image).size == (300, 200)


def test_m3_rendition_blurs_the_boxes_it_is_given_and_nothing_else() -> None:
    picture = images.photo(600, 400)
    images.draw_face(picture, (150, 200), 180)
    images.draw_text(picture, "Amelia", at=(360, 300), size=48)
    box = Box(60, 90, 180, 220)
    clean, _ = clean_rendition(images.png(picture), blur=[box])
    before = np.asarray(picture.convert("L"), dtype=np.float64)
    after = np.asarray(Image.open(io.BytesIO(clean)).convert("L"), dtype=np.float64)
    region = np.s_[box.y : box.y + box.height, box.x : box.x + box.width]
    assert after[region].var() < before[region].var() / 4
    # Outside the box the lossless copy is pixel for pixel the original.
    outside = np.s_[:, 300:]
    assert np.array_equal(after[outside], before[outside])


def test_m3_face_found_and_blurred_keeps_no_detail(scanner: Scanner) -> None:
    picture = images.photo(900, 600)
    images.draw_face(picture, (300, 300), 220)
    data = images.jpeg(picture)
    [face] = scanner.scan(data).faces
    clean, _ = clean_rendition(data, blur=[face])

    def detail(image_bytes: bytes) -> float:
        gray = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("L"), dtype=np.float64)
        region = gray[face.y : face.y + face.height, face.x : face.x + face.width]
        # Edges (eyes, mouth, outline) are what the second difference of the pixels measures.
        laplacian = np.diff(region, 2, axis=0)[:, 1:-1] + np.diff(region, 2, axis=1)[1:-1, :]
        return float(laplacian.var())

    assert detail(clean) < detail(data) / 50
