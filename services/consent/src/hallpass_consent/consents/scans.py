"""What a scan of a signed form may be, decided from its bytes alone (no I/O).

The declared content type and the file name come from the uploader's computer and say nothing
reliable: a web page renamed ``scan.pdf`` must never be served back as a document. The type is
read from the file's first bytes, and the stored name is rebuilt from a safe alphabet with the
extension of the type that was found.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# The formats a scanner or a phone camera produces, by their file signatures.
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
)
# How many pages (files) one request may carry: a consent form is a page or two.
MAX_SCANS_PER_REQUEST = 5
MAX_FILE_NAME = 120
_UNSAFE = re.compile(r"[^\w .()+-]+")
_RUNS = re.compile(r"[ ._-]{2,}")


@dataclass(frozen=True, slots=True)
class ScanType:
    content_type: str
    extension: str


def sniff(data: bytes) -> ScanType | None:
    """The scan's type from its first bytes, or None when it is not a PDF, JPEG or PNG."""
    for signature, content_type, extension in _SIGNATURES:
        if data.startswith(signature):
            return ScanType(content_type, extension)
    return None


def safe_file_name(declared: str | None, kind: ScanType, page: int) -> str:
    """A name fit to store and to offer back in Content-Disposition.

    Only the last path part is kept, control and shell characters go, and the extension is the
    one of the type found in the bytes (``scan.pdf`` holding a PNG is stored as ``scan.png``).
    """
    base = re.split(r"[\\/]", declared or "")[-1]
    base = unicodedata.normalize("NFC", base)
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _UNSAFE.sub("_", stem)
    stem = _RUNS.sub("_", stem).strip(" ._-")
    stem = stem[: MAX_FILE_NAME - len(kind.extension) - 1] or f"scan-{page}"
    return f"{stem}.{kind.extension}"
