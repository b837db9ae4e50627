"""A scan worker process: caps its own memory, loads the scanner once, then checks and scans
the pictures the API process sends it until the API process closes the pipe (see ``workers``)."""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
from dataclasses import asdict
from typing import Any

from hallpass_media.scanning.images import ImageLimits, ImageRefused, check_image
from hallpass_media.scanning.scanner import Scanner
from hallpass_media.scanning.workers import LENGTH, SCAN

# Scans are background work beside the requests of the API process: a worker yields the CPU to
# it (a no-op answered while OCR runs stays as quick as it is idle, bench/publish_check.py).
NICENESS = 10


def _read_exactly(descriptor: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(descriptor, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _reply(descriptor: int, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    os.write(descriptor, LENGTH.pack(len(body)))
    view = memoryview(body)
    while view:
        view = view[os.write(descriptor, view) :]


def serve(config: dict[str, Any], requests: int, replies: int) -> None:
    """The worker's loop: cap memory, load the scanner once, answer requests until EOF."""
    # The cap comes first, so loading the models is bounded too.
    memory = int(config["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.nice(NICENESS)
    limits = ImageLimits(**config["limits"])
    scanner = Scanner(ocr=bool(config["ocr"]), limits=limits)
    _reply(replies, {"reply": "ready"})
    while True:
        head = _read_exactly(requests, 1 + LENGTH.size)
        if head is None:
            return  # the API process is gone, or closed the pool
        data = _read_exactly(requests, LENGTH.unpack(head[1:])[0])
        if data is None:
            return
        try:
            if head[:1] == SCAN:
                answer: dict[str, Any] = {"result": scanner.scan(data).to_json()}
            else:
                answer = {"result": asdict(check_image(data, limits))}
            answer["reply"] = "done"
        except ImageRefused as refused:
            answer = {"reply": "refused", "code": refused.code, "detail": refused.detail}
        except MemoryError:
            # The heap may be in any state now: say so, and let the pool replace this process.
            del data
            _reply(replies, {"reply": "exhausted"})
            return
        except Exception as error:  # a file that trips the scanner: reported, worker kept
            answer = {"reply": "failed", "error": type(error).__name__}
        del data
        _reply(replies, answer)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config, requests, replies = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Anything a library prints goes to stderr, never into the replies.
    os.dup2(2, 1)
    serve(json.loads(config), requests, replies)


if __name__ == "__main__":
    main()
