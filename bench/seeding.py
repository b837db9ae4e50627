"""Seeding helpers for benchmarks that need many schools: copies of one seeded school, in SQL.

A school seeded through the service layer (bench/decisions.py's ``seed_school``: the importer,
recorded consents, withdrawals, restrictions) is the template; ``clone_school`` copies every row
that belongs to it as further schools inside the same database, one ``INSERT … SELECT`` per
table, so 49 more schools of 2,000 pupils take a minute rather than an hour. Copies keep every
row's shape: ids are derived from the school and the template row's id (``md5``), so foreign
keys still meet, and unique strings get the school in front. The services' own bookkeeping
(audit chain, outbox, idempotency, webhooks) is not copied: it is sequence-numbered and
hash-chained per service, and the copies did not happen through the services.

Also the little HTTP client the media seeding needs, and per-table sizes for docs/scale.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import Column, MetaData, String, Table, Uuid, create_engine, text
from sqlalchemy.pool import NullPool

HOST = "127.0.0.1"


def school_scoped_tables(metadata: MetaData) -> list[Table]:
    """The tables whose rows belong to one school, parents first: those with a ``school_id``,
    the ``school`` table itself, and those hanging off one of them by a foreign key."""
    scoped: list[Table] = []
    names: set[str] = set()
    for table in metadata.sorted_tables:
        parents = {key.column.table.name for key in table.foreign_keys}
        if table.name == "school" or "school_id" in table.columns or parents & names:
            scoped.append(table)
            names.add(table.name)
    return scoped


def _copied(table: Table, column: Column[Any]) -> str:
    name = f't."{column.name}"'
    if column.name == "school_id" or (table.name == "school" and column.name == "id"):
        return "s.school"
    if isinstance(column.type, Uuid):
        # The same template id gives the same copy in every table: foreign keys still meet.
        return f"md5(s.school || {name}::text)::uuid"
    if column.unique and isinstance(column.type, String):
        return f"s.school || '/' || {name}"
    return name


def clone_school(
    database_url: str, metadata: MetaData, schools: Sequence[str], *, interleave: bool = False
) -> float:
    """Copy every school-scoped row of the database (one school's, the template's) once per
    name in ``schools``; one transaction. Returns the seconds it took.

    Each school's rows are written together, as an import writes a school's pupils; with
    ``interleave`` row by row across the schools instead, as answers arriving from many schools
    at once land in the heap, so that every page holds rows of every school."""
    order = "t.ctid, s.n" if interleave else "s.n, t.ctid"
    started = time.perf_counter()
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            for table in school_scoped_tables(metadata):
                columns = list(table.columns)
                names = ", ".join(f'"{column.name}"' for column in columns)
                values = ", ".join(_copied(table, column) for column in columns)
                connection.execute(
                    text(
                        f'INSERT INTO "{table.name}" ({names}) '  # noqa: S608 - model names
                        f'SELECT {values} FROM "{table.name}" AS t '
                        "CROSS JOIN unnest(CAST(:schools AS text[])) "
                        "WITH ORDINALITY AS s(school, n) "
                        f"ORDER BY {order}"
                    ),
                    {"schools": list(schools)},
                )
    finally:
        engine.dispose()
    return time.perf_counter() - started


def cloned_id(school: str, template_id: str) -> str:
    """The id ``clone_school`` gives ``school``'s copy of the template row ``template_id``."""
    digest = hashlib.md5((school + template_id).encode(), usedforsecurity=False).hexdigest()
    return str(uuid.UUID(digest))


@dataclass(frozen=True)
class TableSize:
    table: str
    rows: int
    bytes: int  # pg_total_relation_size: heap, indexes and TOAST


def table_sizes(database_url: str) -> list[TableSize]:
    """Rows and bytes on disk of every table in the public schema, largest first."""
    engine = create_engine(database_url, poolclass=NullPool)
    sizes: list[TableSize] = []
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            for name in list(tables):
                rows = connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()  # noqa: S608
                size = connection.execute(
                    text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": name}
                ).scalar_one()
                sizes.append(TableSize(name, int(rows), int(size)))
    finally:
        engine.dispose()
    return sorted(sizes, key=lambda size: -size.bytes)


# --------------------------------------------------------------------------------------------
# HTTP seeding (what only the services can make: scanned media)


def call(port: int, token: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    data: bytes | None = None
    if "raw" in kw:
        data, headers["Content-Type"] = kw["raw"], kw["content_type"]
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data=data, method=method, headers=headers
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - local server
        return json.loads(response.read() or b"null")


def photo(seed: int) -> bytes:
    """A 1600x1200 JPEG of coloured discs: something for the scanner to read, no text."""
    rng = random.Random(seed)
    image = Image.new("RGB", (1600, 1200), (120, 170, 210))
    draw = ImageDraw.Draw(image)
    for _ in range(20):
        x, y, r = rng.randrange(1600), rng.randrange(1200), rng.randrange(20, 160)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def seed_scanned_photos(
    port: int, *, office: str, staff: str, pupil_ids: Sequence[str], timeout: float = 600
) -> list[str]:
    """A device and one scanned photo per pupil (each photo tagged with its pupil); media ids."""
    device = call(port, office, "POST", "/media/v1/devices", {"name": "Cam", "serial": "S-1"})
    media: list[str] = []
    for index, pupil in enumerate(pupil_ids):
        fields = {"device_id": device["id"], "pupils": json.dumps([{"pupil_id": pupil}])}
        body, content_type = multipart(fields, f"IMG_{index}.jpg", photo(index))
        uploaded = call(port, staff, "POST", "/media/v1/media", raw=body, content_type=content_type)
        media.append(uploaded["id"])
    deadline = time.monotonic() + timeout
    while any(
        call(port, office, "GET", f"/media/v1/media?scan_status={status}")["items"]
        for status in ("pending", "scanning")
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"scans did not finish in {timeout:g} s")
        time.sleep(0.5)
    return media
