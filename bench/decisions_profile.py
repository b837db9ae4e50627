"""Where a consent decision's time goes: the all-in-one app in this process, under cProfile.

Seeds a school (the same seed as bench/decisions.py, fewer pupils by default) on SQLite or
PostgreSQL, builds the gateway with every service mounted, and sends requests straight into the
ASGI app one after another, with no HTTP server and no network: what remains is the app's own
cost. cProfile sees one thread only, so the thread pool runs its work inline here (the hop
itself is timed apart, as ``thread hop``); every SQL statement and transaction is counted.

    .venv/bin/python bench/decisions_profile.py [--backend sqlite|postgres] [--requests 2000]

Prints, per endpoint, µs per request (wall and CPU), statements and transactions per request,
and the functions with the most cumulative and own time. Nothing is written to the docs: the
profile that docs/benchmarks.md quotes is copied from this output by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.decisions import (
    PING_PATH,
    SCHOOL,
    drop_database,
    pupil_ids,
    recreate_database,
    seed_school,
    vacuum_analyze,
)
from hallpass_consent.migrations import upgrade
from hallpass_kit.auth import DevIssuer, Role
from hallpass_kit.db import Database

PURPOSE = "website_photo"
DECISIONS_PATH = "/consent/v1/decisions"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class Counts:
    statements = 0
    commits = 0
    rollbacks = 0


def count_sql() -> None:
    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(*_args: Any) -> None:
        Counts.statements += 1

    @event.listens_for(Engine, "commit")
    def _commit(*_args: Any) -> None:
        Counts.commits += 1

    @event.listens_for(Engine, "rollback")
    def _rollback(*_args: Any) -> None:
        Counts.rollbacks += 1


def inline_thread_pool() -> None:
    """Run what FastAPI hands the thread pool in the calling thread, so cProfile sees it."""

    async def run_sync(func: Callable[..., Any], *args: Any, **_kwargs: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]


async def thread_hop_us(rounds: int = 2000) -> float:
    """µs one trip through anyio's thread pool costs (a no-op function there and back)."""
    started = time.perf_counter()
    for _ in range(rounds):
        await anyio.to_thread.run_sync(lambda: None)
    return (time.perf_counter() - started) / rounds * 1e6


async def call(app: Any, method: str, path: str, token: str, body: bytes = b"") -> bytes:
    headers = [
        (b"host", b"testserver"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"accept", b"application/json"),
    ]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    if status != 200:
        raise RuntimeError(f"{method} {path} answered {status}: {b''.join(chunks)[:400]!r}")
    return b"".join(chunks)


async def lifespan(app: Any) -> tuple[Callable[[], Coroutine[Any, Any, None]], asyncio.Task[None]]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"start-up failed: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop, task


def report(name: str, profile: cProfile.Profile, requests: int, limit: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    for order in ("cumulative", "tottime"):
        out.write(f"\n--- {name}: top {limit} by {order} ---\n")
        stats.sort_stats(order).print_stats(limit)
    print(out.getvalue())


async def measure(
    app: Any, name: str, requests: list[tuple[str, str, bytes]], token: str, args: Any
) -> None:
    for method, path, body in requests[:50]:  # warm caches (statement cache, token cache)
        await call(app, method, path, token, body)
    Counts.statements = Counts.commits = Counts.rollbacks = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(args.requests):
        method, path, body = requests[index % len(requests)]
        await call(app, method, path, token, body)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = args.requests
    print(
        f"{name:<28} {wall / n * 1e6:8.0f} µs wall {cpu / n * 1e6:8.0f} µs CPU   "
        f"{Counts.statements / n:.2f} statements, {Counts.commits / n:.2f} commits, "
        f"{Counts.rollbacks / n:.2f} rollbacks per request",
        flush=True,
    )
    if args.profile:
        # On the CPU clock, waits for PostgreSQL's answer (a blocking select) cost nothing.
        profile = cProfile.Profile(time.process_time) if args.cpu_clock else cProfile.Profile()
        profile.enable()
        for index in range(min(args.requests, 1000)):
            method, path, body = requests[index % len(requests)]
            await call(app, method, path, token, body)
        profile.disable()
        report(name, profile, min(args.requests, 1000), args.limit)


async def run(args: argparse.Namespace, database_url: str, data_dir: Path) -> None:
    from hallpass_gateway.app import create_gateway
    from hallpass_kit.settings import CommonSettings

    os.environ.update(
        HALLPASS_ENV="development",
        HALLPASS_DATA_DIR=str(data_dir),
        HALLPASS_CONSENT_DATABASE_URL=database_url,
        HALLPASS_RUN_BACKGROUND="false",
        HALLPASS_LOG_LEVEL="WARNING",
    )
    common = CommonSettings()
    database = Database(database_url)
    try:
        upgrade(database)
        if args.seed_pupils:
            print(f"seeding {args.pupils} pupils …", flush=True)
            seed_school(
                database, pupils_total=args.pupils, classes=20, seed=20261121, data_dir=data_dir
            )
            if args.backend == "postgres":
                vacuum_analyze(database_url)
        ids = pupil_ids(database)
    finally:
        database.dispose()
    print(f"thread hop (anyio, no-op function): {await thread_hop_us():.0f} µs", flush=True)
    if args.inline:
        inline_thread_pool()
    count_sql()
    issuer = DevIssuer.load_or_create(
        common.dev_signing_key_path, common.auth_issuer, common.auth_audience
    )
    token = issuer.issue(sub="bench-cms", school=SCHOOL, roles=[Role.cms], ttl_seconds=3600)
    app = create_gateway(common, run_background=False)
    stop, _task = await lifespan(app)
    if args.gc_freeze:
        # What a server could do once started: the start-up's objects out of the collector's
        # sight, so a collection walks only what requests made.
        gc.collect()
        gc.freeze()
    rng = random.Random(1)
    try:
        await measure(app, "no-op", [("GET", PING_PATH, b"")], token, args)
        for batch in args.batch:
            bodies = [
                (
                    "POST",
                    DECISIONS_PATH,
                    json.dumps(
                        {"purpose": PURPOSE, "pupil_ids": rng.sample(ids, min(batch, len(ids)))}
                    ).encode(),
                )
                for _ in range(64)
            ]
            await measure(app, f"decisions ({batch} pupils)", bodies, token, args)
    finally:
        await stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pupils", type=int, default=1200)
    parser.add_argument("--batch", type=int, nargs="+", default=[30, 1000])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=30, help="functions listed per table")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up")
    parser.add_argument(
        "--cpu-clock", action="store_true", help="profile CPU time, not wall time (waits drop out)"
    )
    parser.add_argument(
        "--threads",
        dest="inline",
        action="store_false",
        help="keep the real thread pool (the profile then misses what runs there)",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "HALLPASS_BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--database", default="hallpass_profile")
    parser.add_argument("--reuse", metavar="DIR", help="data dir of an earlier --keep run")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and database")
    args = parser.parse_args()
    data_dir = Path(args.reuse or tempfile.mkdtemp(prefix="hallpass-profile-"))
    args.seed_pupils = args.reuse is None
    if args.backend == "postgres":
        if args.seed_pupils:
            database_url = recreate_database(args.admin_url, args.database)
        else:
            from sqlalchemy.engine import make_url

            database_url = (
                make_url(args.admin_url).set(database=args.database).render_as_string(False)
            )
    else:
        database_url = f"sqlite:///{data_dir / 'consent.db'}"
    print(f"data in {data_dir}", flush=True)
    try:
        asyncio.run(run(args, database_url, data_dir))
    finally:
        if not args.keep and args.backend == "postgres":
            drop_database(args.admin_url, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
