"""Consent decisions benchmark: the all-in-one server under uvicorn on PostgreSQL and SQLite.

Seeds a school of 2,000 pupils in a fresh database (PostgreSQL, then a SQLite file), starts
``hallpass serve`` in a subprocess and drives it from 16 keep-alive HTTP/1.1 connections:
``POST /consent/v1/decisions`` with 30 random pupils per request, alternated with an
authenticated no-op (``GET /consent/v1/ping``) as the baseline measured in the same run. After
each all-in-one run on PostgreSQL the same load goes to proxy mode (bench/proxy_stack.py: each
service as its own process, the gateway in front) on the same database, and a second table gives
proxy ÷ all-in-one throughput (target >= 0.7). Then times the pure ``decide()`` function.
Prints the tables and writes them to docs/benchmarks.md; raw numbers go to bench/.runs/.

    .venv/bin/python bench/decisions.py [--backend postgres sqlite] [--workers 1 2]
        [--duration 10] [--no-docs] [--no-proxy]

Targets (issue 13): decisions req/s / no-op req/s >= 0.5, decisions p99 <= 2x the no-op's,
server CPU <= 1.6 ms and PostgreSQL CPU <= 0.5 ms per decision request, decide() <= 20 us per
pupil. ``--batch 1000`` measures the largest batch (it is to cost <= 10x a 30-pupil one).
Numbers are reported, never asserted: the script always exits 0 when it could measure, whether
or not the targets are met.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import functools
import io
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hallpass_consent.consents import service as consents
from hallpass_consent.consents.policy import PurposeRule, RecordView, decide
from hallpass_consent.consents.schemas import ConsentCreate, Withdrawal
from hallpass_consent.migrations import upgrade
from hallpass_consent.models import Basis, Decision, GivenBy, Method, RestrictionKind
from hallpass_consent.pupils import service as pupils
from hallpass_consent.pupils.importer import CARER_FIELDS, import_csv_file
from hallpass_consent.pupils.schemas import RestrictionSet
from hallpass_consent.schools import service as schools
from hallpass_consent.schools.schemas import SchoolSettings
from hallpass_kit.auth import DevIssuer, Principal, Role
from hallpass_kit.db import Database, UTCDateTime, utcnow
from hallpass_kit.settings import CommonSettings

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = ROOT / "bench" / ".runs"
DOCS_FILE = ROOT / "docs" / "benchmarks.md"
SECTION = "## Consent decisions (bench/decisions.py)"

HOST = "127.0.0.1"
SCHOOL = "bench"
PURPOSE = "website_photo"
PING_PATH = "/consent/v1/ping"
DECISIONS_PATH = "/consent/v1/decisions"
# Purposes that get recorded answers; the benchmark asks about the first.
SEEDED_PURPOSES = ("website_photo", "social_media_photo", "print_publication")

P99_RATIO_TARGET = 2.0  # decisions p99 ÷ no-op p99 (issue 13)
RATIO_TARGET = 0.5
SERVER_CPU_TARGET_MS = 1.6  # server CPU per decision request
POSTGRES_CPU_TARGET_MS = 0.5  # PostgreSQL CPU per decision request
PER_PUPIL_TARGET_US = 20.0
PROXY_RATIO_TARGET = 0.7
PROXY_SECTION = "## Proxy mode (bench/decisions.py)"


# --------------------------------------------------------------------------------------------
# Database and seed data


Backend = Literal["postgres", "sqlite"]
BACKEND_NAMES: dict[str, str] = {"postgres": "PostgreSQL", "sqlite": "SQLite"}


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create ``name`` on the server of ``admin_url``; returns the new database's URL."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class SeedSummary:
    pupils: int
    classes: int
    guardians: int
    consent_records: int
    restricted: int
    seconds: float


def school_csv(*, pupils_total: int, classes: int, rng: random.Random) -> bytes:
    """An MIS export (docs/import.md): pupils spread evenly over the classes, 1 or 2 carers each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    carer_columns = [f"carer{n}_{f}" for n in (1, 2) for f in CARER_FIELDS]
    writer.writerow(["mis_id", "given_name", "family_name", "year_group", "class", *carer_columns])
    for number in range(1, pupils_total + 1):
        class_index = (number - 1) * classes // pupils_total
        family = f"Family{number % 997}"
        carers: list[str] = []
        for index in range(1 if rng.random() < 0.35 else 2):
            email = f"carer.{number:05d}.{index}@parents.example.org"
            carers += [f"Carer{index}", family, email, "", "parent", "yes"]
        carers += [""] * (len(carer_columns) - len(carers))
        writer.writerow(
            [
                f"BENCH{number:05d}",
                f"Pupil{number}",
                family,
                class_index % 7,
                f"Class {class_index + 1:02d}",
                *carers,
            ]
        )
    return out.getvalue().encode()


def seed_school(
    database: Database, *, pupils_total: int, classes: int, seed: int, data_dir: Path
) -> SeedSummary:
    """Pupils and carers through the CSV importer, consents through the service layer.

    Consents go in chunks of pupils, one transaction each, the way demo.py records them.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    head = Principal(sub="bench-seed", school=SCHOOL, roles=frozenset({Role.head}))
    office = Principal(sub="bench-seed", school=SCHOOL, roles=frozenset({Role.office}))
    dsl = Principal(sub="bench-seed", school=SCHOOL, roles=frozenset({Role.dsl}))
    with database.session() as session:
        schools.put_school(
            session, head, SchoolSettings(name="Hallpass Bench Academy"), now=utcnow()
        )
    export = data_dir / "mis-export.csv"
    export.write_bytes(school_csv(pupils_total=pupils_total, classes=classes, rng=rng))
    imported = import_csv_file(
        database, SCHOOL, export, actor="bench-seed", dry_run=False, max_rows=pupils_total
    )

    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.id, g.id FROM pupil p JOIN guardian_link l ON l.pupil_id = p.id "
                "JOIN guardian g ON g.id = l.guardian_id "
                "WHERE p.school_id = :school ORDER BY p.mis_id, g.email"
            ),
            {"school": SCHOOL},
        ).all()
    carers_of: dict[uuid.UUID, list[uuid.UUID]] = {}
    for pupil_id, guardian_id in rows:
        # SQLite hands raw SQL's UUID columns back as hex strings.
        carers_of.setdefault(uuid.UUID(str(pupil_id)), []).append(uuid.UUID(str(guardian_id)))

    records = restricted = 0
    methods = list(Method)
    pupil_list = list(carers_of.items())
    for chunk_start in range(0, len(pupil_list), 100):
        with database.session() as session:
            for pupil_id, carers in pupil_list[chunk_start : chunk_start + 100]:
                for purpose in SEEDED_PURPOSES:
                    roll = rng.random()
                    if roll < 0.15:
                        continue  # no answer yet: opt-in means no (C2)
                    decision: Literal["granted", "refused"] = (
                        "refused" if roll < 0.30 else "granted"
                    )
                    for carer in carers[: 1 if roll < 0.8 else 2]:
                        view = consents.record_consent(
                            session,
                            office,
                            ConsentCreate(
                                pupil_id=pupil_id,
                                purpose=purpose,
                                decision=decision,
                                guardian_id=carer,
                                method=rng.choice(methods),
                                evidence_ref="admission-pack",
                            ),
                            now=utcnow(),
                        )
                        records += 1
                        # Some grants were later withdrawn: two records from one carer.
                        if decision == "granted" and rng.random() < 0.08:
                            consents.withdraw_record(
                                session,
                                office,
                                view.id,
                                Withdrawal(method=Method.email, evidence_ref="withdrawal"),
                                now=utcnow(),
                            )
                            records += 1
                if rng.random() < 0.005:
                    pupils.set_restriction(
                        session,
                        dsl,
                        pupil_id,
                        RestrictionSet(
                            kind=RestrictionKind.court_order,
                            reason="Bench: must not be locatable.",
                        ),
                        now=utcnow(),
                    )
                    restricted += 1
    return SeedSummary(
        pupils=imported.created,
        classes=imported.classes_created,
        guardians=imported.guardians_created,
        consent_records=records,
        restricted=restricted,
        seconds=time.perf_counter() - started,
    )


def vacuum_analyze(database_url: str) -> None:
    """What autovacuum would long have done on a live database: fresh statistics for the planner."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("VACUUM (ANALYZE)"))
    finally:
        engine.dispose()


def pupil_ids(database: Database) -> list[str]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id FROM pupil WHERE school_id = :school ORDER BY mis_id"),
            {"school": SCHOOL},
        ).all()
    return [str(uuid.UUID(str(row[0]))) for row in rows]


# --------------------------------------------------------------------------------------------
# The server under test


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(data_dir: Path, database_url: str) -> dict[str, str]:
    # Only the bench's own HALLPASS_* settings reach the server: a developer's shell may point
    # at another database or identity provider.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLPASS_")}
    env.update(
        HALLPASS_ENV="development",
        HALLPASS_DATA_DIR=str(data_dir),
        HALLPASS_CONSENT_DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def _get_status(url: str, timeout: float) -> int:
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"the bench only talks to {HOST}: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


Mode = Literal["all-in-one", "proxy"]


@contextmanager
def running_server(
    *, port: int, workers: int, env: dict[str, str], log_path: Path, mode: Mode = "all-in-one"
) -> Iterator[subprocess.Popen[bytes]]:
    """``hallpass serve`` in its own process group; stopped on the way out, whatever happened.

    In proxy mode the process is bench/proxy_stack.py: each service and the gateway in front as
    processes of their own, children of that one, so the server's CPU is the whole tree's.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "proxy":
        command = [sys.executable, str(ROOT / "bench" / "proxy_stack.py"), "--port", str(port)]
        command += ["--workers", str(workers), "--log-dir", str(log_path.parent)]
    else:
        hallpass = Path(sys.executable).with_name("hallpass")
        command = [str(hallpass), "serve", "--host", HOST, "--port", str(port)]
        command += ["--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {process.returncode}:\n{_tail(log_path)}"
                    )
                try:
                    if _get_status(f"http://{HOST}:{port}/healthz", timeout=1) == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy after 90 s:\n{_tail(log_path)}")
                time.sleep(0.2)
            yield process
        finally:
            stop_server(process)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # uvicorn shuts its workers down gracefully
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    # The group is the one this script created for the server; it may hold orphaned workers.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------
# Load generator: raw asyncio streams, keep-alive, pre-built requests


def build_request(
    method: str, path: str, port: int, token: str, body: bytes | None = None
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        f"Authorization: Bearer {token}",
        "Accept: application/json",
    ]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    keep_alive = True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif name == b"transfer-encoding":
            raise RuntimeError("chunked responses are not expected from these endpoints")
    if length is None:
        raise RuntimeError("response without Content-Length")
    body = await reader.readexactly(length) if length else b""
    return status, body, keep_alive


@dataclass
class Sample:
    latencies_ns: list[int] = field(default_factory=list)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    postgres_cpu_seconds: float = 0.0
    new_db_connections: int = 0
    process_cpu_seconds: dict[int, float] = field(default_factory=dict)

    def add(self, other: Sample) -> None:
        self.latencies_ns += other.latencies_ns
        self.ok += other.ok
        self.errors.update(other.errors)
        self.seconds += other.seconds
        self.client_cpu_seconds += other.client_cpu_seconds
        self.server_cpu_seconds += other.server_cpu_seconds
        self.postgres_cpu_seconds += other.postgres_cpu_seconds
        self.new_db_connections += other.new_db_connections
        for pid, seconds in other.process_cpu_seconds.items():
            self.process_cpu_seconds[pid] = self.process_cpu_seconds.get(pid, 0.0) + seconds


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds used so far: the server's processes one by one, and PostgreSQL in all."""

    server: dict[int, float]
    postgres: float


def process_cpu(server_pid: int) -> CpuReading:
    """Read from /proc (Linux; empty elsewhere). Processes that ended count through their
    parent's reaped-children time, so PostgreSQL's connection churn is not lost."""
    stats: dict[int, tuple[int, str, int, int]] = {}  # pid -> (parent, name, own, reaped)
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return CpuReading({}, float("nan"))
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        # After the name: state, ppid, ..., utime, stime, cutime, cstime (12th to 15th).
        own, reaped = int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])
        stats[int(entry.name)] = (int(rest[1]), name, own, reaped)
    tree = {server_pid}
    grew = True
    while grew:
        grew = False
        for pid, (parent, *_) in stats.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    server = {pid: (stats[pid][2] + stats[pid][3]) / _TICKS for pid in tree if pid in stats}
    postgres = 0
    for parent, name, own, reaped in stats.values():
        if name.startswith("postgres"):
            postmaster = not stats.get(parent, (0, "", 0, 0))[1].startswith("postgres")
            postgres += own + (reaped if postmaster else 0)
    return CpuReading(server, postgres / _TICKS)


class Connection:
    """One keep-alive connection, reopened if the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        if self.reader is None or self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        return await read_response(self.reader)


async def _client(
    connection: Connection,
    requests: Sequence[bytes],
    rng: random.Random,
    measure_from: int,
    stop_at: int,
    sample: Sample,
) -> None:
    """Requests back to back on one connection until ``stop_at`` (perf_counter_ns)."""
    while True:
        request = requests[rng.randrange(len(requests))]
        start = time.perf_counter_ns()
        try:
            status, _body, keep_alive = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, RuntimeError) as error:
            end = time.perf_counter_ns()
            if measure_from <= end < stop_at:
                sample.errors[type(error).__name__] += 1
            connection.close()
            if end >= stop_at:
                return
            continue
        end = time.perf_counter_ns()
        if not keep_alive:
            connection.close()
        if end >= stop_at:
            return
        if end >= measure_from:
            if status == 200:
                sample.ok += 1
                sample.latencies_ns.append(end - start)
            else:
                sample.errors[f"HTTP {status}"] += 1


async def drive(
    connections: Sequence[Connection],
    requests: Sequence[bytes],
    *,
    warmup: float,
    duration: float,
    seed: int,
    server_pid: int,
) -> Sample:
    """Every connection busy for ``warmup + duration`` seconds; only the tail is kept."""
    sample = Sample()
    now = time.perf_counter_ns()
    measure_from = now + int(warmup * 1e9)
    stop_at = measure_from + int(duration * 1e9)
    at_start: tuple[float, CpuReading] | None = None

    async def mark_cpu() -> None:
        nonlocal at_start
        await asyncio.sleep(warmup)
        at_start = (time.process_time(), process_cpu(server_pid))

    marker = asyncio.create_task(mark_cpu())
    await asyncio.gather(
        *(
            _client(connection, requests, random.Random(seed + i), measure_from, stop_at, sample)
            for i, connection in enumerate(connections)
        )
    )
    await marker
    end_client, end = time.process_time(), process_cpu(server_pid)
    start_client, start = at_start or (end_client, end)
    sample.seconds = duration
    sample.client_cpu_seconds = end_client - start_client
    sample.process_cpu_seconds = {
        pid: seconds - start.server.get(pid, 0.0) for pid, seconds in end.server.items()
    }
    sample.server_cpu_seconds = sum(sample.process_cpu_seconds.values())
    sample.postgres_cpu_seconds = end.postgres - start.postgres
    return sample


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(factory())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(factory())


def check_once(port: int, request: bytes, expect_decisions: int | None) -> None:
    """One request before the load: a wrong route or token fails loudly, not as 100 % errors."""

    async def once() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(request)
            status, body, _ = await read_response(reader)
            return status, body
        finally:
            writer.close()

    status, body = run_async(once)
    if status != 200:
        raise RuntimeError(f"probe answered {status}: {body[:500]!r}")
    if expect_decisions is not None:
        answered = len(json.loads(body)["decisions"])
        if answered != expect_decisions:
            raise RuntimeError(f"expected {expect_decisions} decisions, got {answered}")


# --------------------------------------------------------------------------------------------
# Statistics and the pure function


def percentile_ms(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    if not sorted_ns:
        return float("nan")
    rank = max(1, min(len(sorted_ns), math.ceil(q / 100 * len(sorted_ns))))
    return sorted_ns[rank - 1] / 1e6


@dataclass(frozen=True)
class EndpointResult:
    name: str
    workers: int
    requests: int
    errors: dict[str, int]
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    client_cpu_percent: float
    server_cpu_percent: float
    postgres_cpu_percent: float
    server_cpu_ms_per_request: float
    postgres_cpu_ms_per_request: float
    new_db_connections_per_second: float
    server_process_cpu_percent: list[float]
    background_cpu_percent: float
    backend: str = "PostgreSQL"

    @property
    def label(self) -> str:
        """ "PostgreSQL, 1 worker": the run this result belongs to."""
        return f"{self.backend}, {self.workers} worker{'s' if self.workers > 1 else ''}"


def summarise(
    name: str, workers: int, sample: Sample, background: float, backend: str = "PostgreSQL"
) -> EndpointResult:
    ordered = sorted(sample.latencies_ns)
    seconds = sample.seconds or float("nan")
    requests = sample.ok or float("nan")
    return EndpointResult(
        name=name,
        workers=workers,
        requests=sample.ok,
        errors=dict(sample.errors),
        seconds=sample.seconds,
        rps=sample.ok / sample.seconds if sample.seconds else 0.0,
        p50_ms=percentile_ms(ordered, 50),
        p95_ms=percentile_ms(ordered, 95),
        p99_ms=percentile_ms(ordered, 99),
        mean_ms=statistics.fmean(ordered) / 1e6 if ordered else float("nan"),
        max_ms=ordered[-1] / 1e6 if ordered else float("nan"),
        client_cpu_percent=100 * sample.client_cpu_seconds / seconds,
        server_cpu_percent=100 * sample.server_cpu_seconds / seconds,
        postgres_cpu_percent=100 * sample.postgres_cpu_seconds / seconds,
        server_cpu_ms_per_request=1e3 * sample.server_cpu_seconds / requests,
        postgres_cpu_ms_per_request=1e3 * sample.postgres_cpu_seconds / requests,
        new_db_connections_per_second=sample.new_db_connections / seconds,
        server_process_cpu_percent=sorted(
            (100 * v / seconds for v in sample.process_cpu_seconds.values() if v / seconds >= 0.02),
            reverse=True,
        ),
        background_cpu_percent=100 * background,
        backend=backend,
    )


@dataclass(frozen=True)
class PureResult:
    pupils: int
    records: int
    rounds: int
    median_us_per_pupil: float
    best_us_per_pupil: float


def bench_pure(*, pupils_total: int, rounds: int, seed: int) -> PureResult:
    """``decide()`` for every pupil of the school with 1 to 3 records each, like evaluate()."""
    rng = random.Random(seed)
    rule = PurposeRule(PURPOSE, Basis.opt_in, requires_consent=True, needs_pupil_agreement=False)
    now = dt.datetime.now(dt.UTC)
    year_end = now + dt.timedelta(days=200)
    cases: list[tuple[frozenset[uuid.UUID], list[RecordView], bool]] = []
    total_records = 0
    for _ in range(pupils_total):
        carers = [uuid.uuid4() for _ in range(1 if rng.random() < 0.35 else 2)]
        records: list[RecordView] = []
        for _ in range(rng.randint(1, 3)):
            carer = rng.choice(carers)
            recorded = now - dt.timedelta(days=rng.uniform(1, 300))
            decision = rng.choices(
                [Decision.granted, Decision.refused, Decision.withdrawn], weights=[75, 15, 10]
            )[0]
            lapsed = decision is Decision.granted and rng.random() < 0.1
            records.append(
                RecordView(
                    id=uuid.uuid4(),
                    given_by=GivenBy.guardian,
                    guardian_id=carer,
                    decision=decision,
                    recorded_at=recorded,
                    valid_from=recorded,
                    valid_until=(recorded + dt.timedelta(days=1)) if lapsed else year_end,
                )
            )
        total_records += len(records)
        cases.append((frozenset(carers), records, rng.random() < 0.005))

    timings: list[int] = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for responsible, records, restricted in cases:
            decide(
                rule,
                at=now,
                on_roll=True,
                restricted=restricted,
                responsible_guardians=responsible,
                records=records,
            )
        timings.append(time.perf_counter_ns() - start)
    return PureResult(
        pupils=pupils_total,
        records=total_records,
        rounds=rounds,
        median_us_per_pupil=statistics.median(timings) / pupils_total / 1e3,
        best_us_per_pupil=min(timings) / pupils_total / 1e3,
    )


# --------------------------------------------------------------------------------------------
# Report


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def _split(result: EndpointResult) -> str:
    """CPU share of one core per busy server process, e.g. "95 %" or "70 % + 66 %"."""
    shares = result.server_process_cpu_percent or [result.server_cpu_percent]
    return " + ".join(f"{share:.0f} %" for share in shares)


def _errors(result: EndpointResult) -> str:
    if not result.errors:
        return "0"
    return ", ".join(f"{k}: {v}" for k, v in sorted(result.errors.items()))


def render_tables(
    runs: Sequence[tuple[EndpointResult, EndpointResult]], pure: PureResult, batch: int
) -> str:
    lines = [
        "| measurement | req/s | p50 ms | p95 ms | p99 ms | target | met? |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for ping, decisions in runs:
        workers = ping.label
        lines.append(
            f"| no-op `GET {PING_PATH}`, {workers} | {ping.rps:,.0f} | {ping.p50_ms:.2f} | "
            f"{ping.p95_ms:.2f} | {ping.p99_ms:.2f} | baseline | — |"
        )
        lines.append(
            f"| `POST {DECISIONS_PATH}` ({batch} pupils), {workers} | {decisions.rps:,.0f} | "
            f"{decisions.p50_ms:.2f} | {decisions.p95_ms:.2f} | {decisions.p99_ms:.2f} | "
            f"p99 ≤ {P99_RATIO_TARGET:g} x the no-op's | "
            f"{_yes(decisions.p99_ms <= P99_RATIO_TARGET * ping.p99_ms)} |"
        )
    lines += [
        "",
        "| measurement | value | target | met? |",
        "|---|---:|---|---|",
    ]
    for ping, decisions in runs:
        ratio = decisions.rps / ping.rps if ping.rps else 0.0
        workers = ping.label
        lines.append(
            f"| decisions req/s ÷ no-op req/s, {workers} | {ratio:.2f} | "
            f"≥ {RATIO_TARGET:g} | {_yes(ratio >= RATIO_TARGET)} |"
        )
        p99_ratio = decisions.p99_ms / ping.p99_ms if ping.p99_ms else float("nan")
        lines.append(
            f"| decisions p99 ÷ no-op p99, {workers} | {p99_ratio:.1f} | "
            f"≤ {P99_RATIO_TARGET:g} | {_yes(p99_ratio <= P99_RATIO_TARGET)} |"
        )
        server, postgres = (
            decisions.server_cpu_ms_per_request,
            decisions.postgres_cpu_ms_per_request,
        )
        lines.append(
            f"| server CPU ms per decision request, {workers} | {server:.2f} | "
            f"≤ {SERVER_CPU_TARGET_MS:g} | {_yes(server <= SERVER_CPU_TARGET_MS)} |"
        )
        if decisions.backend == BACKEND_NAMES["postgres"]:
            lines.append(
                f"| PostgreSQL CPU ms per decision request, {workers} | {postgres:.2f} | "
                f"≤ {POSTGRES_CPU_TARGET_MS:g} | {_yes(postgres <= POSTGRES_CPU_TARGET_MS)} |"
            )
    lines.append(
        f"| pure `decide()`, µs per pupil (median of {pure.rounds} rounds over "
        f"{pure.pupils:,} pupils, {pure.records:,} records) | {pure.median_us_per_pupil:.2f} | "
        f"≤ {PER_PUPIL_TARGET_US:g} µs | {_yes(pure.median_us_per_pupil <= PER_PUPIL_TARGET_US)} |"
    )
    lines += [
        "",
        "| run | requests measured | errors (non-200) | mean ms | max ms "
        "| server CPU ms/request | PostgreSQL CPU ms/request | new DB connections/s "
        "| load client CPU | other processes' CPU before the run |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ping, decisions in runs:
        for result in (ping, decisions):
            postgres_run = result.backend == BACKEND_NAMES["postgres"]
            postgres_cpu = (
                f"{result.postgres_cpu_ms_per_request:.2f} ({result.postgres_cpu_percent:.0f} %)"
                if postgres_run
                else "—"
            )
            new_connections = f"{result.new_db_connections_per_second:.1f}" if postgres_run else "—"
            lines.append(
                f"| {result.name}, {result.backend}, {result.workers}w | {result.requests:,} "
                f"| {_errors(result)} | {result.mean_ms:.2f} | {result.max_ms:.2f} "
                f"| {result.server_cpu_ms_per_request:.2f} ({_split(result)}) "
                f"| {postgres_cpu} "
                f"| {new_connections} "
                f"| {result.client_cpu_percent:.0f} % "
                f"| {result.background_cpu_percent:.0f} % |"
            )
    return "\n".join(lines)


def render_proxy_table(
    runs: Sequence[tuple[EndpointResult, EndpointResult]],
    proxy_runs: Sequence[tuple[EndpointResult, EndpointResult]],
) -> str:
    """Proxy mode against all-in-one, endpoint by endpoint, with as many workers per process."""
    lines = [
        "| endpoint, workers per process | all-in-one req/s | proxy req/s | proxy ÷ all-in-one "
        "| target | met? | all-in-one p99 ms | proxy p99 ms | proxy errors "
        "| server CPU ms/request all-in-one → proxy |",
        "|---|---:|---:|---:|---|---|---:|---:|---|---:|",
    ]
    for whole_pair, proxy_pair in zip(runs, proxy_runs, strict=False):
        for whole, proxy in zip(whole_pair, proxy_pair, strict=True):
            ratio = proxy.rps / whole.rps if whole.rps else 0.0
            path = PING_PATH if whole.name == "no-op" else DECISIONS_PATH
            method = "GET" if whole.name == "no-op" else "POST"
            lines.append(
                f"| `{method} {path}`, {whole.workers} | {whole.rps:,.0f} | {proxy.rps:,.0f} "
                f"| {ratio:.2f} | ≥ {PROXY_RATIO_TARGET:g} | {_yes(ratio >= PROXY_RATIO_TARGET)} "
                f"| {whole.p99_ms:.2f} | {proxy.p99_ms:.2f} | {_errors(proxy)} "
                f"| {whole.server_cpu_ms_per_request:.2f} → "
                f"{proxy.server_cpu_ms_per_request:.2f} |"
            )
    return "\n".join(lines)


def machine_description() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "uvloop": version("uvloop"),
        "httptools": version("httptools"),
        "fastapi": version("fastapi"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
        "httpx": version("httpx"),
    }


def write_docs(section_body: str) -> None:
    """Replace this benchmark's section in docs/benchmarks.md, keeping every other section."""
    replace_docs_section(SECTION, section_body)


def replace_docs_section(title: str, body: str) -> None:
    """Replace the section headed ``title`` in docs/benchmarks.md (up to the next ``## ``), or
    add it at the end; every other section is kept as it is."""
    section = f"{title}\n\n{body.strip()}\n"
    if DOCS_FILE.exists():
        current = DOCS_FILE.read_text()
    else:
        current = "# Benchmarks\n\nMeasured numbers, rewritten by the scripts under `bench/`.\n"
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
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text(updated)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--backend",
        nargs="+",
        choices=sorted(BACKEND_NAMES),
        default=["postgres", "sqlite"],
        help="the consent database(s) to measure, one after the other (default: both)",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pupils", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=70)
    parser.add_argument("--batch", type=int, default=30, help="pupils per decision request")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per endpoint")
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per endpoint")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per endpoint")
    parser.add_argument("--pure-rounds", type=int, default=21)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "HALLPASS_BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a database on the PostgreSQL server to run DROP/CREATE DATABASE from",
    )
    parser.add_argument(
        "--database",
        default="hallpass_bench",
        help="the PostgreSQL database's name (and the SQLite file's, bench/.runs/NAME.sqlite3 "
        "with --keep-db)",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave the bench database(s)")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="measure against the database a --keep-db run left (skips seeding)",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.15,
        help="before each server run, wait for other processes to use less than this share "
        "of the CPU ...",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="... for at most this many seconds"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument(
        "--proxy-docs-only",
        action="store_true",
        help="write only the proxy-mode section of docs/benchmarks.md",
    )
    parser.add_argument(
        "--no-background",
        action="store_true",
        help="servers run no background work (HALLPASS_RUN_BACKGROUND=false), as API replicas "
        "beside `hallpass worker` processes do; needs a database whose outbox is dispatched "
        "(--reuse-db after a run with background work)",
    )
    parser.add_argument(
        "--no-proxy",
        action="store_true",
        help="skip the proxy-mode runs (services as processes behind the gateway)",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="after the measured runs, keep decisions load on the last server this many "
        "seconds (to attach a profiler to it)",
    )
    args = parser.parse_args(argv)
    if make_url(args.admin_url).host not in (HOST, "localhost", None):
        parser.error("the bench runs against a local PostgreSQL only")
    return args


def existing_summary(database: Database) -> SeedSummary:
    def count(sql: str) -> int:
        with database.engine.connect() as connection:
            return int(connection.execute(text(sql), {"school": SCHOOL}).scalar_one())

    return SeedSummary(
        pupils=count("SELECT count(*) FROM pupil WHERE school_id = :school"),
        classes=count("SELECT count(*) FROM school_class WHERE school_id = :school"),
        guardians=count("SELECT count(*) FROM guardian WHERE school_id = :school"),
        consent_records=count("SELECT count(*) FROM consent_record WHERE school_id = :school"),
        restricted=count(
            "SELECT count(*) FROM restriction WHERE school_id = :school AND lifted_at IS NULL"
        ),
        seconds=float("nan"),
    )


def sqlite_path(args: argparse.Namespace, data_dir: Path) -> Path:
    """The SQLite bench database: in bench/.runs/ when it is to outlive the run, else in the
    run's data dir."""
    if args.keep_db or args.reuse_db:
        return RUNS_DIR / f"{args.database}.sqlite3"
    return data_dir / f"{args.database}.sqlite3"


def prepare_database(
    args: argparse.Namespace, data_dir: Path, backend: Backend = "postgres"
) -> tuple[str, SeedSummary, list[str], str]:
    """(URL, what is in it, pupil ids, database version) of a seeded bench database."""
    if backend == "sqlite":
        path = sqlite_path(args, data_dir)
        if args.reuse_db and not path.exists():
            raise SystemExit(f"--reuse-db: no {path.relative_to(ROOT)} (run with --keep-db first)")
        if not args.reuse_db:
            for stale in path.parent.glob(f"{path.name}*"):  # the file and its WAL
                stale.unlink()
        database_url = f"sqlite:///{path}"
    elif args.reuse_db:
        database_url = make_url(args.admin_url).set(database=args.database).render_as_string(False)
    else:
        print(f"database {args.database}: recreating", flush=True)
        database_url = recreate_database(args.admin_url, args.database)
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            version = str(
                connection.execute(
                    text(
                        "SELECT sqlite_version()" if backend == "sqlite" else "SHOW server_version"
                    )
                ).scalar()
            )
        if args.reuse_db:
            summary = existing_summary(database)
        else:
            upgrade(database)
            print(f"seeding {args.pupils:,} pupils in {args.classes} classes …", flush=True)
            summary = seed_school(
                database,
                pupils_total=args.pupils,
                classes=args.classes,
                seed=args.seed,
                data_dir=data_dir,
            )
            if backend == "postgres":
                vacuum_analyze(database_url)
        ids = pupil_ids(database)
    finally:
        database.dispose()
    print(
        f"{'seeded in ' + format(summary.seconds, '.1f') + ' s' if not args.reuse_db else 'reused'}"
        f": {summary.pupils:,} pupils, {summary.classes} classes, {summary.guardians:,} carers, "
        f"{summary.consent_records:,} consent records, {summary.restricted} restricted",
        flush=True,
    )
    return database_url, summary, ids, version


def wait_for_outbox(database_url: str, timeout: float = 600) -> float:
    """Seconds until the server has dispatched the events the seeding left in its outbox.

    The seed emits thousands of ``consent.changed`` events; the server's dispatcher thread
    delivers them at start-up, and measuring during that would measure the backlog.
    """
    engine = create_engine(database_url)
    started = time.perf_counter()
    # The instant as a bound parameter, not the database's clock: SQLite has no now().
    pending_now = text(
        "SELECT count(*) FROM outbox_event WHERE dispatched_at IS NULL AND next_attempt_at <= :now"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    try:
        while True:
            with engine.connect() as connection:
                pending = connection.execute(pending_now, {"now": utcnow()}).scalar_one()
            elapsed = time.perf_counter() - started
            if pending == 0:
                return elapsed
            if elapsed > timeout:
                raise RuntimeError(f"{pending} outbox events still pending after {timeout:g} s")
            time.sleep(0.5)
    finally:
        engine.dispose()


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def background_load(seconds: float = 2.0) -> float:
    """Share of the machine's CPU (0..1) that other processes use while the bench is idle."""
    try:
        busy_before, total_before = _cpu_times()
        time.sleep(seconds)
        busy_after, total_after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (busy_after - busy_before) / max(1, total_after - total_before)


def wait_until_quiet(limit: float, patience: float) -> float:
    """Wait (at most ``patience`` s) for other processes to use less than ``limit`` of the CPU.

    Whatever else runs on the machine competes with the server, PostgreSQL and the client; the
    measured load is reported with the numbers either way.
    """
    deadline = time.monotonic() + patience
    load = background_load()
    while load > limit and time.monotonic() < deadline:
        print(f"  other processes use {load:.0%} of the CPU; waiting for quiet", flush=True)
        time.sleep(5)
        load = background_load()
    return load


def database_sessions(engine: Engine) -> int:
    """Connections ever opened to the bench database (PostgreSQL >= 14; stats lag up to ~1 s).
    A SQLite file has no server to count them: 0."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        ).scalar_one()
    return int(count)


@contextmanager
def closing_engine(engine: Engine) -> Iterator[Engine]:
    try:
        yield engine
    finally:
        engine.dispose()


async def alternate(
    args: argparse.Namespace,
    *,
    port: int,
    server_pid: int,
    ping_requests: Sequence[bytes],
    decision_requests: Sequence[bytes],
    stats_engine: Engine,
    hold: float,
) -> tuple[Sample, Sample]:
    """No-op and decisions in turn over the same keep-alive connections.

    The kernel hands each new connection to whichever worker accepts first, so with several
    workers the split can be uneven; keeping one set of connections for both endpoints at least
    makes the two endpoints see the same split (the per-process CPU shows it).
    """
    connections = [Connection(port) for _ in range(args.concurrency)]
    for connection in connections:
        await connection.open()
    ping_total, decisions_total = Sample(), Sample()
    segment = args.duration / args.rounds
    try:
        for round_index in range(args.rounds):
            warmup = args.warmup if round_index == 0 else 0.0
            for name, requests, total in (
                ("no-op", ping_requests, ping_total),
                ("decisions", decision_requests, decisions_total),
            ):
                # A blocking query, made between segments while no request is in flight.
                sessions_before = database_sessions(stats_engine)
                sample = await drive(
                    connections,
                    requests,
                    warmup=warmup,
                    duration=segment,
                    seed=args.seed + round_index,
                    server_pid=server_pid,
                )
                # Less this probe's own connection.
                sample.new_db_connections = max(
                    0, database_sessions(stats_engine) - sessions_before - 1
                )
                total.add(sample)
                split = " / ".join(
                    f"{seconds / segment:.0%}"
                    for seconds in sorted(sample.process_cpu_seconds.values(), reverse=True)
                    if seconds / segment >= 0.02
                )
                database = (
                    f"PostgreSQL {sample.postgres_cpu_seconds / segment:.0%}, "
                    if stats_engine.dialect.name == "postgresql"
                    else ""
                )
                print(
                    f"  {name:<9} round {round_index + 1}: {sample.ok / segment:8,.0f} req/s, "
                    f"errors {sum(sample.errors.values())}, CPU server {split or '0%'}, "
                    f"{database}client {sample.client_cpu_seconds / segment:.0%}, "
                    f"new DB connections {sample.new_db_connections}",
                    flush=True,
                )
        if hold:
            print(f"  holding decisions load for {hold:g} s", flush=True)
            await drive(
                connections,
                decision_requests,
                warmup=0,
                duration=hold,
                seed=args.seed,
                server_pid=server_pid,
            )
    finally:
        for connection in connections:
            connection.close()
    return ping_total, decisions_total


def measure_server(
    args: argparse.Namespace,
    *,
    workers: int,
    token: str,
    ids: Sequence[str],
    env: dict[str, str],
    database_url: str,
    log_path: Path,
    mode: Mode = "all-in-one",
) -> tuple[EndpointResult, EndpointResult]:
    """Both endpoints against one server, alternating, from the same client."""
    backend = BACKEND_NAMES["postgres" if database_url.startswith("postgresql") else "sqlite"]
    rng = random.Random(args.seed)
    port = free_port()
    ping_requests = [build_request("GET", PING_PATH, port, token)]
    decision_requests = [
        build_request(
            "POST",
            DECISIONS_PATH,
            port,
            token,
            json.dumps(
                {"purpose": PURPOSE, "pupil_ids": rng.sample(list(ids), args.batch)},
                separators=(",", ":"),
            ).encode(),
        )
        for _ in range(1024)
    ]
    print(f"\n{mode} on {backend}, {workers} worker(s) per process on {HOST}:{port}", flush=True)
    background = wait_until_quiet(args.quiet_below, args.quiet_wait)
    print(f"  other processes' CPU use before the run: {background:.0%}", flush=True)
    stats_engine = create_engine(database_url, poolclass=NullPool)
    with (
        running_server(port=port, workers=workers, env=env, log_path=log_path, mode=mode) as server,
        closing_engine(stats_engine),
    ):
        drained = wait_for_outbox(database_url)
        print(f"  outbox drained after {drained:.1f} s", flush=True)
        check_once(port, ping_requests[0], None)
        check_once(port, decision_requests[0], args.batch)
        ping_total, decisions_total = run_async(
            functools.partial(
                alternate,
                args,
                port=port,
                server_pid=server.pid,
                ping_requests=ping_requests,
                decision_requests=decision_requests,
                stats_engine=stats_engine,
                hold=args.hold if workers == args.workers[-1] and mode == "all-in-one" else 0.0,
            )
        )
    if ping_total.errors or decisions_total.errors:
        kept = RUNS_DIR / f"{log_path.stem}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.log"
        shutil.copyfile(log_path, kept)
        print(f"  errors: the server's log is kept in {kept.relative_to(ROOT)}", flush=True)
    return (
        summarise("no-op", workers, ping_total, background, backend),
        summarise("decisions", workers, decisions_total, background, backend),
    )


def measure_backend(
    args: argparse.Namespace,
    data_dir: Path,
    database_url: str,
    ids: Sequence[str],
    proxy_runs: list[tuple[EndpointResult, EndpointResult]] | None,
) -> list[tuple[EndpointResult, EndpointResult]]:
    """Every worker count on one seeded database; proxy mode after each when ``proxy_runs``
    is given (PostgreSQL: a SQLite file is for one process tree on one machine)."""
    common = CommonSettings(data_dir=data_dir)
    issuer = DevIssuer.load_or_create(
        common.dev_signing_key_path, common.auth_issuer, common.auth_audience
    )
    token = issuer.issue(sub="bench-cms", school=SCHOOL, roles=[Role.cms], ttl_seconds=4 * 3600)
    env = server_env(data_dir, database_url)
    if args.no_background:
        env["HALLPASS_RUN_BACKGROUND"] = "false"
    runs: list[tuple[EndpointResult, EndpointResult]] = []
    for workers in args.workers:
        runs.append(
            measure_server(
                args,
                workers=workers,
                token=token,
                ids=ids,
                env=env,
                database_url=database_url,
                log_path=data_dir / f"server-{workers}w.log",
            )
        )
        if proxy_runs is not None and not args.no_proxy:
            # Right after the all-in-one run with as many workers: the same database, data dir
            # and signing key, so only the processes differ.
            proxy_runs.append(
                measure_server(
                    args,
                    workers=workers,
                    token=token,
                    ids=ids,
                    env=env,
                    database_url=database_url,
                    log_path=data_dir / f"proxy-{workers}w" / "stack.log",
                    mode="proxy",
                )
            )
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")

    runs: list[tuple[EndpointResult, EndpointResult]] = []
    proxy_runs: list[tuple[EndpointResult, EndpointResult]] = []
    versions: dict[str, str] = {}
    seeded: dict[str, SeedSummary] = {}
    with tempfile.TemporaryDirectory(prefix="hallpass-bench-") as tmp:
        for backend in args.backend:
            # Each backend in a data dir of its own (the other services' SQLite files too).
            data_dir = Path(tmp) / backend
            data_dir.mkdir()
            name = BACKEND_NAMES[backend]
            try:
                database_url, seeded[name], ids, versions[name] = prepare_database(
                    args, data_dir, backend
                )
                runs += measure_backend(
                    args,
                    data_dir,
                    database_url,
                    ids,
                    proxy_runs if backend == "postgres" else None,
                )
            finally:
                if backend == "postgres" and not args.keep_db:
                    drop_database(args.admin_url, args.database)
    summary = next(iter(seeded.values()))

    print(f"\ntiming decide() over {args.pupils:,} pupils …", flush=True)
    pure = bench_pure(pupils_total=args.pupils, rounds=args.pure_rounds, seed=args.seed)

    tables = render_tables(runs, pure, args.batch)
    machine = machine_description()
    how_seeded = ", ".join(
        f"{name} in {seed.seconds:.0f} s"
        for name, seed in seeded.items()
        if not math.isnan(seed.seconds)
    )
    databases = " and ".join(
        f"PostgreSQL {version}" if name == "PostgreSQL" else f"SQLite {version} (a file, WAL)"
        for name, version in versions.items()
    )
    configuration = (
        f"{summary.pupils:,} pupils in {summary.classes} classes, {summary.guardians:,} carers, "
        f"{summary.consent_records:,} consent records over {len(SEEDED_PURPOSES)} purposes, "
        f"{summary.restricted} restricted pupils"
        f"{' (seeded: ' + how_seeded + ')' if how_seeded else ''}"
        f"{', then `VACUUM (ANALYZE)` on PostgreSQL' if 'PostgreSQL' in versions else ''}. "
        f"`hallpass serve --workers N` (uvicorn, httptools, uvloop, access log on) on "
        f"{databases}, measured once the seed's outbox events were dispatched; "
        f"{args.concurrency} keep-alive HTTP/1.1 connections from one asyncio client on the "
        f"same machine, kept open for both endpoints; per endpoint {args.warmup:g} s warm-up "
        f"then {args.duration:g} s measured in {args.rounds} rounds alternating with the other "
        "endpoint, so each decisions row has its no-op baseline from the same server in the "
        f"same minutes; each decision request asks `{PURPOSE}` for {args.batch} random pupils."
    )
    print()
    print(tables)
    print()
    print(f"Configuration: {configuration}")

    section = "\n".join(
        [
            f"Run {started_at:%Y-%m-%d %H:%M} UTC on {machine['nproc']} CPUs ({machine['cpu']}), "
            f"{machine['os']}, Python {machine['python']}, uvicorn {machine['uvicorn']}, "
            f"FastAPI {machine['fastapi']}, SQLAlchemy {machine['sqlalchemy']}, "
            f"psycopg {machine['psycopg']}.",
            "",
            f"Configuration: {configuration}",
            "",
            "The load client shares the machine's CPUs with the server and the database. In the "
            "last table, CPU ms/request is the CPU time of the server's process tree (or of all "
            "PostgreSQL processes) during the measured seconds divided by the requests answered "
            "(SQLite runs inside the server's process, so its CPU is the server's), "
            "with each busy process's share of one core in brackets (with several workers the "
            "kernel may hand the client's connections to them unevenly; both endpoints use the "
            "same connections); new DB connections/s counts connections "
            "the server opened to its database (pool overflow), from pg_stat_database. Numbers "
            "measured while other processes kept the machine busy are slower than the code. "
            "Reproduce with `make bench` (`.venv/bin/python bench/decisions.py`).",
            "",
            tables,
        ]
    )
    if proxy_runs:
        proxy_table = render_proxy_table(runs, proxy_runs)
        print()
        print(proxy_table)
    if not args.no_docs:
        if not args.proxy_docs_only:
            write_docs(section)
        if proxy_runs:
            replace_docs_section(
                PROXY_SECTION,
                "\n".join(
                    [
                        f"Run {started_at:%Y-%m-%d %H:%M} UTC on {machine['nproc']} CPUs "
                        f"({machine['cpu']}), Python {machine['python']}, uvicorn "
                        f"{machine['uvicorn']}, httpx {machine['httpx']}.",
                        "",
                        f"Configuration: {configuration}",
                        "",
                        "Each mode in turn on the same database with the same client, as many "
                        "workers per process in both. All-in-one: `hallpass serve --workers N`, "
                        "every service in one process. Proxy: `bench/proxy_stack.py`, each "
                        "service as its own `hallpass serve <service> --workers N` process and "
                        "`hallpass serve gateway --workers N` in proxy mode in front (pooled "
                        "keep-alive connections, rate limits on with limits no client reaches, so "
                        "their cost is in the numbers). Server CPU is the whole process tree's."
                        + (
                            " Background work off in both modes (`HALLPASS_RUN_BACKGROUND="
                            "false`): the API processes alone, as beside `hallpass worker`."
                            if args.no_background
                            else ""
                        ),
                        "",
                        proxy_table,
                        "",
                        "Other processes' share of the CPU just before each run: "
                        + ", ".join(
                            f"{result.background_cpu_percent:.0f} %"
                            for pair in (*runs, *proxy_runs)
                            for result in pair[:1]
                        )
                        + " (all-in-one runs first, then proxy); a busy machine slows both "
                        "modes, the one with more processes to schedule the more.",
                    ]
                ),
            )
        print(f"\nwrote {DOCS_FILE.relative_to(ROOT)}")

    raw = {
        "started_at": started_at.isoformat(),
        "machine": machine,
        "databases": versions,
        "arguments": {k: v for k, v in vars(args).items() if k != "admin_url"},
        "seed": asdict(summary),
        "runs": [[asdict(ping), asdict(decisions)] for ping, decisions in runs],
        "proxy_runs": [[asdict(ping), asdict(decisions)] for ping, decisions in proxy_runs],
        "pure": asdict(pure),
    }
    raw_path = RUNS_DIR / f"decisions-{stamp}.json"
    raw_path.write_text(json.dumps(raw, indent=2) + "\n")
    print(f"raw numbers in {raw_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
