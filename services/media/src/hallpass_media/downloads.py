"""Handing a stored file to a client: streamed from disk, or a presigned link to S3."""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse, Response, StreamingResponse

from hallpass_media.storage import Storage

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")

DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file itself (local storage).",
        "content": {
            mime: {"schema": {"type": "string", "format": "binary"}} for mime in IMAGE_TYPES
        },
    },
    307: {
        "description": "S3 storage: a short-lived presigned link to the file (Location).",
        "headers": {"Location": {"schema": {"type": "string"}}},
    },
}


def file_response(storage: Storage, key: str, *, file_name: str, mime: str) -> Response:
    url = storage.download_url(key, file_name=file_name, content_type=mime)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    return StreamingResponse(
        storage.stream(key),
        media_type=mime,
        headers={
            "Content-Disposition": f'attachment; filename="{file_name}"',
            "Cache-Control": "private, no-store",
        },
    )
