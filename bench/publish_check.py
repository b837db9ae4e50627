"""Publish-check benchmark: the all-in-one server under uvicorn, through the gateway.

Seeds a school of 2,000 pupils (roster for name detection), registers a device, uploads four
photos and waits for their scans; then drives ``POST /media/v1/publications:check`` (4 media ids
and 500 characters of caption, post body and alt text, on the website channel) from keep-alive
connections, alternated with the authenticated no-op ``GET /media/v1/ping`` as the baseline in
the same run, with 1 and then 2 uvicorn workers on the same data. Then ``check-file`` beside the
no-op: the no-op's p99 alone and while check-file requests keep the scan workers busy. Then,
unless ``--no-proxy``, the same load in proxy mode (bench/proxy_stack.py). Prints the tables and
writes them to docs/benchmarks.md ("Publish check", "Proxy mode, publish check").

``--profile LABEL`` instead samples the server with py-spy (run by uv as a tool when it is not
installed) under the 4-connection check and prints where the busy samples fall; the tables in
"Publish checks: where the time goes" come from it.

    .venv/bin/python bench/publish_check.py [--duration 10] [--concurrency 4] [--workers 1 2]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--no-proxy]
        [--no-check-file] [--no-docs] [--profile LABEL [--profile-raw FILE]]

Targets (issue 13): check ÷ no-op throughput >= 0.25 and check p99 <= 4x the no-op's, at 4
connections; the no-op's p99 beside check-file <= 2x its p99 alone. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import decisions as kit
from hallpass_kit.auth import DevIssuer

ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = ROOT / "docs" / "benchmarks.md"
SECTION = "## Publish check (bench/publish_check.py)"
SCHOOL = "bench"
PUPILS = 2000
PROXY_RATIO_TARGET = 0.7
PROXY_SECTION = "## Proxy mode, publish check (bench/publish_check.py)"
TEXT = (
    "What a wonderful sports day we had on the school field this afternoon! Every class took "
    "part in the relay, the sack race and the egg and spoon race, and the sun shone for all of "
    "it. Thank you to the parents and carers who came to cheer, to the PTA for the ice lollies "
    "and to our Year 6 helpers who ran the stalls so well. The house cup went to Kestrels by "
    "just two points. Photos of the day are below; more follow in the newsletter next week. "
)


def _call(port: int, token: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    data: bytes | None = None
    if "raw" in kw:
        data, headers["Content-Type"] = kw["raw"], kw["content_type"]
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(
        f"http://{kit.HOST}:{port}{path}", data=data, method=method, headers=headers
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def _photo(seed: int) -> bytes:
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


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
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


def seed(port: int, issuer: DevIssuer) -> list[str]:
    """School, 2,000 pupils, four consented pupils in four scanned photos; returns media ids."""

    def token(role: str) -> str:
        return issuer.issue(sub=f"bench-{role}", school=SCHOOL, roles=[role])

    head, office = token("head"), token("office")
    _call(port, head, "PUT", "/consent/v1/school", {"name": "Bench Primary"})
    csv = kit.school_csv(pupils_total=PUPILS, classes=70, rng=random.Random(7))
    _call(port, office, "POST", "/consent/v1/pupils:import", raw=csv, content_type="text/csv")
    pupils = _call(port, office, "GET", "/consent/v1/pupils?limit=4")["items"]
    device = _call(port, office, "POST", "/media/v1/devices", {"name": "Cam", "serial": "B-1"})
    media: list[str] = []
    for index, pupil in enumerate(pupils):
        guardian = _call(
            port,
            office,
            "POST",
            "/consent/v1/guardians",
            {
                "given_name": "Carer",
                "family_name": f"Bench{index}",
                "children": [{"pupil_id": pupil["id"], "parental_responsibility": True}],
            },
        )
        _call(
            port,
            office,
            "POST",
            "/consent/v1/consents",
            {
                "pupil_id": pupil["id"],
                "purpose": "website_photo",
                "decision": "granted",
                "guardian_id": guardian["id"],
                "method": "paper",
            },
        )
        fields = {"device_id": device["id"], "pupils": json.dumps([{"pupil_id": pupil["id"]}])}
        body, content_type = _multipart(fields, f"IMG_{index}.jpg", _photo(index))
        media.append(
            _call(
                port, token("staff"), "POST", "/media/v1/media", raw=body, content_type=content_type
            )["id"]
        )
    deadline = time.monotonic() + 300
    while (
        _call(port, head, "GET", "/media/v1/media?scan_status=pending")["items"]
        or _call(port, head, "GET", "/media/v1/media?scan_status=scanning")["items"]
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("scans did not finish in 5 minutes")
        time.sleep(0.5)
    return media


async def drive(port: int, requests: Sequence[bytes], *, concurrency: int, seconds: float) -> Any:
    latencies: list[int] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def client(index: int) -> None:
        nonlocal errors
        connection = kit.Connection(port)
        await connection.open()
        try:
            n = index
            while time.monotonic() < stop:
                started = time.perf_counter_ns()
                status, _, _ = await connection.exchange(requests[n % len(requests)])
                latencies.append(time.perf_counter_ns() - started)
                errors += status != 200
                n += concurrency
        finally:
            connection.close()

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return sorted(latencies), errors, time.monotonic() - started


def row(name: str, result: Any) -> str:
    latencies, errors, seconds = result
    p = [kit.percentile_ms(latencies, q) for q in (50, 95, 99)]
    return (
        f"| {name} | {len(latencies):,} | {errors} | {len(latencies) / seconds:,.0f} | "
        f"{p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} |"
    )


def write_docs(body: str, backend: str) -> None:
    # One section per database backend, so a PostgreSQL run does not replace the SQLite one.
    title = f"{SECTION}, {backend.split()[0]}"
    section = f"{title}\n\n{body.strip()}\n"
    current = DOCS_FILE.read_text() if DOCS_FILE.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    if start is None:
        updated = current.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        after = "".join(lines[end:])
        updated = "".join(lines[:start]) + section + ("\n" + after if after else "")
    DOCS_FILE.write_text(updated)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4])
    parser.add_argument("--postgres-url", help="PostgreSQL server for both services' databases")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument(
        "--profile",
        metavar="LABEL",
        help="only sample the server with py-spy under the 4-connection check and print where "
        "the time goes (LABEL names the run in the printed table)",
    )
    parser.add_argument(
        "--profile-raw", type=Path, help="keep py-spy's raw stacks in this file (with --profile)"
    )
    parser.add_argument("--no-proxy", action="store_true", help="skip the proxy-mode run")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker processes"
    )
    parser.add_argument(
        "--no-check-file", action="store_true", help="skip the check-file beside the no-op run"
    )
    parser.add_argument(
        "--scan-workers",
        type=int,
        metavar="N",
        help="HALLPASS_MEDIA_SCAN_WORKERS for the server (default: the server's own default)",
    )
    parser.add_argument(
        "--proxy-docs-only", action="store_true", help="write only the proxy-mode section"
    )
    parser.add_argument(
        "--summarise", type=Path, metavar="RAW", help="only print the table of a kept profile"
    )
    args = parser.parse_args(argv)
    if args.summarise:
        print(summarise_profile(args.summarise.read_text()))
        return 0

    with tempfile.TemporaryDirectory(prefix="hallpass-bench-") as tmp:
        data_dir = Path(tmp)
        env = kit.server_env(data_dir, "")
        del env["HALLPASS_CONSENT_DATABASE_URL"]
        # Seeding imports 2,000 pupils while four photos are scanned: on a busy machine a scan's
        # result can wait past the default 3 s for SQLite's write lock, and its claim then
        # lapses only after 11 minutes. A longer wait changes nothing on the measured paths.
        env["HALLPASS_DB_LOCK_TIMEOUT_SECONDS"] = "15"
        if args.scan_workers is not None:
            env["HALLPASS_MEDIA_SCAN_WORKERS"] = str(args.scan_workers)
        backend = "SQLite (embedded)"
        if args.postgres_url:
            env["HALLPASS_CONSENT_DATABASE_URL"] = kit.recreate_database(
                args.postgres_url, "hallpass_bench_check_consent"
            )
            env["HALLPASS_MEDIA_DATABASE_URL"] = kit.recreate_database(
                args.postgres_url, "hallpass_bench_check_media"
            )
            backend = "PostgreSQL"
        issuer = DevIssuer.load_or_create(
            data_dir / "dev-signing-key.json", "hallpass-dev", "hallpass"
        )
        token = issuer.issue(sub="bench-cms", school=SCHOOL, roles=["cms"], ttl_seconds=3600)
        media: list[str] = []
        by_workers: dict[int, dict[str, Any]] = {}
        beside: dict[str, Any] = {}
        for workers in args.workers:
            # The same data dir and databases for every worker count: only the processes differ.
            port = kit.free_port()
            with kit.running_server(
                port=port, workers=workers, env=env, log_path=data_dir / f"server-{workers}.log"
            ) as server:
                if not media:
                    print("seeding 2,000 pupils and four scanned photos…", flush=True)
                    media = seed(port, issuer)
                body = check_body(media)
                if args.profile:
                    path = "/media/v1/publications:check"
                    check = [kit.build_request("POST", path, port, token, body)]
                    result, table = profile(
                        port,
                        server.pid,
                        check,
                        seconds=args.duration,
                        out=args.profile_raw or data_dir / "profile.txt",
                    )
                    print(f"### {args.profile}: {backend}, 4 connections\n")
                    print(row("publish check, 4 connections (sampled)", result))
                    print()
                    print(table)
                    return 0
                print(f"{backend}, {workers} worker(s)…", flush=True)
                by_workers[workers] = measure(port, token, body, args)
                if not beside and not args.no_check_file:
                    print("check-file beside the no-op…", flush=True)
                    beside = measure_check_file(port, token, args.duration)
        results = by_workers[args.workers[0]]
        proxy_results: dict[str, Any] = {}
        if not args.no_proxy:
            # The same data dir and databases, each service now a process of its own behind the
            # gateway in proxy mode: only the processes differ.
            port = kit.free_port()
            print("proxy mode: services as processes behind the gateway…", flush=True)
            with kit.running_server(
                port=port,
                workers=1,
                env=env,
                log_path=data_dir / "proxy" / "stack.log",
                mode="proxy",
            ):
                proxy_results = measure(port, token, check_body(media), args)
        if args.postgres_url:
            for name in ("hallpass_bench_check_consent", "hallpass_bench_check_media"):
                kit.drop_database(args.postgres_url, name)

    machine = kit.machine_description()
    table = "\n".join(
        [
            f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. 4 images + 500 characters of "
            f"text, roster of {PUPILS:,} pupils, through the gateway under uvicorn, keep-alive "
            "connections from one asyncio client on the same machine, "
            f"{args.duration:g} s per endpoint after 1 s of warm-up; {backend}; "
            f"{machine['nproc']} CPUs ({machine['cpu']}), Python {machine['python']}; load "
            f"average {os.getloadavg()[0]:.1f} when the run ended (other processes on the machine "
            "slow both rows alike).",
            "",
            "| workers | endpoint | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {workers} " + row(name, result)
                for workers, measured in by_workers.items()
                for name, result in measured.items()
            ),
            "",
            render_ratios(by_workers),
            "",
            *(render_check_file(beside, args.scan_workers) if beside else []),
            "Each check matches names in all the text and in the four stored scans with the "
            "roster media holds, asks the consent service for one decision batch (whose answer "
            "names the roster version it was decided against: the roster is asked for again only "
            "when that is newer than the one held, never in a steady run), and appends to the "
            "audit chain: one in-process call to the consent service, one read-only transaction "
            "and a share of one write transaction (the audit entries of checks that finish "
            "together are committed together). Reproduce with `make bench` "
            "(`.venv/bin/python bench/publish_check.py`).",
        ]
    )
    print(table)
    if not args.no_docs and not args.proxy_docs_only:
        write_docs(table, backend)
    if proxy_results:
        proxy_table = render_proxy_table(results, proxy_results)
        print()
        print(proxy_table)
        if not args.no_docs:
            kit.replace_docs_section(
                PROXY_SECTION,
                "\n".join(
                    [
                        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
                        + table.splitlines()[0],
                        "",
                        "Both modes in one run on the same data with the same client. "
                        "All-in-one: `hallpass serve`, every service in one process. "
                        "Proxy: `bench/proxy_stack.py`, consent, media and comms each as its own "
                        "`hallpass serve <service>` process and `hallpass serve gateway` in proxy "
                        "mode in front (rate limits on, with limits no client reaches); a check "
                        "then crosses three processes: gateway → media → consent over HTTP.",
                        "",
                        proxy_table,
                    ]
                ),
            )
    return 0


PROFILE_SECTION = "## Publish checks: where the time goes"
RATIO_TARGET = 0.25  # check req/s ÷ no-op req/s
P99_RATIO_TARGET = 4.0  # check p99 ÷ no-op p99
BESIDE_TARGET = 2.0  # no-op p99 beside check-file ÷ no-op p99 alone
CHECK_FILE_CONNECTIONS = 2


def check_body(media: Sequence[str]) -> bytes:
    return json.dumps(
        {
            "channel": "website",
            "media_ids": list(media),
            "caption": TEXT[:150],
            "post_body": TEXT[150:450],
            "alt_text": TEXT[450:500],
        }
    ).encode()


def check_file_request(port: int, token: str) -> bytes:
    """``POST /media/v1/publications:check-file`` with a copy of a stored photo, as raw HTTP."""
    body, content_type = _multipart({"channel": "website"}, "sports-day.jpg", _photo(0))
    head = "\r\n".join(
        [
            "POST /media/v1/publications:check-file HTTP/1.1",
            f"Host: {kit.HOST}:{port}",
            f"Authorization: Bearer {token}",
            "Accept: application/json",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
    )
    return (head + "\r\n\r\n").encode("ascii") + body


def measure_check_file(port: int, token: str, seconds: float) -> dict[str, Any]:
    """The no-op alone, then the same no-op while check-file requests keep the scan workers
    busy: the scans run off the request path, so the no-op should barely notice."""
    ping = [kit.build_request("GET", "/media/v1/ping", port, token)]
    files = [check_file_request(port, token)]
    first = asyncio.run(drive(port, files, concurrency=1, seconds=0.1))  # workers started
    assert first[1] == 0, "check-file failed; see the server log"
    asyncio.run(drive(port, ping, concurrency=4, seconds=1))
    alone = asyncio.run(drive(port, ping, concurrency=4, seconds=seconds))

    async def together() -> tuple[Any, Any]:
        loaded = asyncio.ensure_future(
            drive(port, files, concurrency=CHECK_FILE_CONNECTIONS, seconds=seconds + 2)
        )
        await asyncio.sleep(1)  # the scans are under way
        beside = await drive(port, ping, concurrency=4, seconds=seconds)
        return beside, await loaded

    beside, scans = asyncio.run(together())
    return {
        "no-op `GET /media/v1/ping`, 4 connections, alone": alone,
        "no-op `GET /media/v1/ping`, 4 connections, beside check-file": beside,
        f"check-file, {CHECK_FILE_CONNECTIONS} connections": scans,
    }


def render_ratios(by_workers: dict[int, dict[str, Any]]) -> str:
    lines = [
        "| workers | connections | check ÷ no-op req/s | ≥ 0.25? | check p99 ÷ no-op p99 | ≤ 4x? |",
        "|---:|---:|---:|---|---:|---|",
    ]
    for workers, measured in by_workers.items():
        for label, (latencies, _errors, seconds) in measured.items():
            if not label.startswith("publish check"):
                continue
            connections = label.split(", ")[1]
            noop = measured[f"no-op `GET /media/v1/ping`, {connections}"]
            ratio = (len(latencies) / seconds) / max(len(noop[0]) / noop[2], 1e-9)
            p99 = kit.percentile_ms(latencies, 99) / kit.percentile_ms(noop[0], 99)
            lines.append(
                f"| {workers} | {connections.split()[0]} | {ratio:.3f} | "
                f"{'met' if ratio >= RATIO_TARGET else '**no**'} | {p99:.1f}x | "
                f"{'met' if p99 <= P99_RATIO_TARGET else '**no**'} |"
            )
    return "\n".join(lines)


def render_check_file(beside: dict[str, Any], scan_workers: int | None) -> list[str]:
    (alone, loaded, _scans) = beside.values()
    ratio = kit.percentile_ms(loaded[0], 99) / kit.percentile_ms(alone[0], 99)
    workers = (
        "the default number of scan workers"
        if scan_workers is None
        else f"{scan_workers} scan worker{'s' if scan_workers > 1 else ''}"
    )
    return [
        "`check-file` off the request path (1 worker): the no-op alone, then beside "
        f"{CHECK_FILE_CONNECTIONS} connections sending check-file requests (a 1600 x 1200 copy "
        f"of a stored photo, scanned with OCR in {workers}):",
        "",
        "| endpoint | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(row(name, result) for name, result in beside.items()),
        "",
        f"No-op p99 beside check-file ÷ alone: {ratio:.2f}x (target ≤ {BESIDE_TARGET:g}x: "
        f"{'met' if ratio <= BESIDE_TARGET else '**not met**'}).",
        "",
    ]


def py_spy() -> list[str]:
    """py-spy as installed, or run by uv as a tool (nothing added to the project's lock)."""
    installed = Path(sys.executable).with_name("py-spy")
    if installed.exists():
        return [str(installed)]
    uv = ROOT / ".tools" / "bin" / "uv"
    return [str(uv) if uv.exists() else "uv", "tool", "run", "--from", "py-spy", "py-spy"]


def profile(
    port: int, server_pid: int, requests: Sequence[bytes], *, seconds: float, out: Path
) -> tuple[Any, str]:
    """Sample the server with py-spy while 4 connections drive the check; returns the load's
    result and a table of where the samples fell (inclusive, per function)."""
    asyncio.run(drive(port, requests, concurrency=4, seconds=1))
    sampler = subprocess.Popen(
        [
            *py_spy(),
            "record",
            "--pid",
            str(server_pid),
            "--subprocesses",
            "--nonblocking",
            # Only the thread holding the GIL: where the process's Python CPU goes (a thread
            # waiting for a lock, the GIL or the database is not counted).
            "--gil",
            "--rate",
            "250",
            "--format",
            "raw",
            "--duration",
            str(int(seconds)),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # py-spy attaches before the load starts
    result = asyncio.run(drive(port, requests, concurrency=4, seconds=seconds - 2))
    sampler.wait(timeout=120)
    return result, summarise_profile(out.read_text())


# Where a sample falls: the first area in this list with a frame anywhere in the sample's stack
# (a token verified inside the consent call counts as the consent call).
PROFILE_AREAS: tuple[tuple[str, str], ...] = (
    ("consent: roster revalidation (`GET /v1/roster`)", "roster (hallpass_consent/roster/"),
    ("consent: roster revalidation (`GET /v1/roster`)", "roster_async (hallpass_media/"),
    ("consent: roster revalidation (`GET /v1/roster`)", "_Revalidations._run (hallpass_media/"),
    ("consent: decision batch (`POST /v1/decisions`)", "decisions_async (hallpass_media/"),
    ("consent: decision batch (`POST /v1/decisions`)", "(hallpass_consent/decisions/"),
    ("consent: decision batch (`POST /v1/decisions`)", "decisions (hallpass_consent/"),
    ("sessions opened and closed by request dependencies", "get_session (hallpass_kit/app.py"),
    ("sessions opened and closed by request dependencies", "get_read_session (hallpass_kit/"),
    ("media: audit of the check (write transaction)", "record_check"),
    ("media: stored facts (read transaction)", "gather (hallpass_media/"),
    ("media: name matching", "find_names (hallpass_media/"),
    ("media: policy verdict", "judge (hallpass_media/"),
    ("background job runners (outbox, webhooks, mail)", "Runner._loop (hallpass_kit/jobs.py"),
    ("thread-pool hand-offs", "(queue.py"),
    ("thread-pool hand-offs", "(anyio/to_thread.py"),
    ("token verification", "(hallpass_kit/auth.py"),
    ("the check's own request: FastAPI, Pydantic, middleware", "(fastapi/"),
    ("HTTP server (uvicorn)", "(uvicorn/"),
)


def summarise_profile(raw: str) -> str:
    """py-spy's raw stacks as a table: the share of GIL-holding samples in each area."""
    counts: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = stack.split(";")
        area = "other"
        for name, marker in PROFILE_AREAS:
            if any(marker in frame for frame in frames):
                area = name
                break
        counts[area] = counts.get(area, 0) + samples
    lines = ["| where | share of samples holding the GIL |", "|---|---:|"]
    for area, samples in sorted(counts.items(), key=lambda item: -item[1]):
        lines.append(f"| {area} | {100 * samples / max(total, 1):.0f} % |")
    lines.append(f"| (samples in all) | {total:,} |")
    return "\n".join(lines)


def measure(port: int, token: str, body: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """The no-op and the check at each concurrency, after 1 s of warm-up each."""
    check = [kit.build_request("POST", "/media/v1/publications:check", port, token, body)]
    ping = [kit.build_request("GET", "/media/v1/ping", port, token)]
    first = asyncio.run(drive(port, check, concurrency=1, seconds=1))
    assert first[1] == 0, "the check failed; see the server log"
    results = {}
    for connections in args.concurrency:
        for name, requests in (("no-op `GET /media/v1/ping`", ping), ("publish check", check)):
            label = f"{name}, {connections} connection{'s' if connections > 1 else ''}"
            asyncio.run(drive(port, requests, concurrency=connections, seconds=1))
            results[label] = asyncio.run(
                drive(port, requests, concurrency=connections, seconds=args.duration)
            )
    return results


def render_proxy_table(whole: dict[str, Any], proxy: dict[str, Any]) -> str:
    lines = [
        "| endpoint | all-in-one req/s | proxy req/s | proxy ÷ all-in-one | target | met? "
        "| all-in-one p99 ms | proxy p99 ms | proxy errors |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for label, (latencies, _errors, seconds) in whole.items():
        proxy_latencies, proxy_errors, proxy_seconds = proxy[label]
        rps = len(latencies) / seconds
        proxy_rps = len(proxy_latencies) / proxy_seconds
        ratio = proxy_rps / rps if rps else 0.0
        met = "yes" if ratio >= PROXY_RATIO_TARGET else "**no**"
        lines.append(
            f"| {label} | {rps:,.0f} | {proxy_rps:,.0f} | {ratio:.2f} "
            f"| ≥ {PROXY_RATIO_TARGET:g} | {met} | {kit.percentile_ms(latencies, 99):.2f} "
            f"| {kit.percentile_ms(proxy_latencies, 99):.2f} | {proxy_errors} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
