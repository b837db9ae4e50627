"""What a scan found, in a form that can be stored in a JSON column and read back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hallpass_media.scanning.metadata import MetadataText


@dataclass(frozen=True)
class Box:
    """A rectangle in the upright picture, in pixels."""

    x: int
    y: int
    width: int
    height: int

    def to_json(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Box:
        return cls(int(data["x"]), int(data["y"]), int(data["width"]), int(data["height"]))


@dataclass(frozen=True)
class ImageText:
    """Text that OCR read in the picture, with where it is and how sure OCR was."""

    text: str
    box: Box
    confidence: float


@dataclass(frozen=True)
class ScanResult:
    """Everything a scan found in one image. Sizes and boxes are those of the upright picture
    (EXIF orientation applied), which is also how the clean rendition is drawn."""

    format: str
    width: int
    height: int
    metadata: list[MetadataText]
    has_location: bool
    image_text: list[ImageText]
    faces: list[Box]
    phash: int

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "metadata": [{"where": item.where, "text": item.text} for item in self.metadata],
            "has_location": self.has_location,
            "image_text": [
                {"text": item.text, "box": item.box.to_json(), "confidence": item.confidence}
                for item in self.image_text
            ],
            "faces": [face.to_json() for face in self.faces],
            "phash": self.phash,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanResult:
        return cls(
            format=str(data["format"]),
            width=int(data["width"]),
            height=int(data["height"]),
            metadata=[MetadataText(str(m["where"]), str(m["text"])) for m in data["metadata"]],
            has_location=bool(data["has_location"]),
            image_text=[
                ImageText(str(t["text"]), Box.from_json(t["box"]), float(t["confidence"]))
                for t in data["image_text"]
            ],
            faces=[Box.from_json(face) for face in data["faces"]],
            phash=int(data["phash"]),
        )
