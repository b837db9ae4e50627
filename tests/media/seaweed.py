"""A real S3 server on loopback for the tests: SeaweedFS (``weed mini``) with enforced keys."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

ACCESS_KEY = "hallpass-test"
SECRET_KEY = "seaweed-secret-for-tests-only"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str


def _free_ports(count: int) -> list[int]:
    # Held open together so no two are the same; SeaweedFS adds 10000 for some gRPC ports it
    # does not let us choose, so stay below 50000.
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port < 50000 and port + 10000 not in ports:
                ports.append(port)
        return ports


def weed_binary() -> Path:
    return Path(sys.executable).parent / "weed"


def start_seaweed(directory: Path, *, timeout: float = 60.0) -> Iterator[S3Server]:
    """Start ``weed mini`` with S3 credentials enforced; yield once S3 answers; stop it after."""
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "hallpass",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    data = directory / "data"
    data.mkdir()
    p = _free_ports(10)
    command = [
        str(weed_binary()),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={p[0]}",
        f"-master.port.grpc={p[1]}",
        f"-volume.port={p[2]}",
        f"-volume.port.grpc={p[3]}",
        f"-filer.port={p[4]}",
        f"-filer.port.grpc={p[5]}",
        f"-s3.port={p[6]}",
        f"-s3.port.grpc={p[7]}",
        f"-admin.port={p[8]}",
        f"-admin.port.grpc={p[9]}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    log = (directory / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    endpoint = f"http://127.0.0.1:{p[6]}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed mini exited early; see {directory / 'weed.log'}")
            try:
                # Unsigned: the server answers 403 once S3 is up (credentials are enforced).
                if httpx.get(endpoint, timeout=1.0).status_code in (200, 403):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed mini did not start; see {directory / 'weed.log'}")
            time.sleep(0.3)
        yield S3Server(endpoint, ACCESS_KEY, SECRET_KEY)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
