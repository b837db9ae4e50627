"""Bulk send benchmark: one message to 1,000 families through the gateway to a real SMTP server.

Seeds a school of 1,000 pupils, each with their own family of one or two carers, in the consent
service; starts ``hallpass serve`` (all-in-one gateway under uvicorn) with its comms service
pointed at an aiosmtpd server running in this process on loopback; then, as a member of staff,
sends one message to years 1-6 with ``POST /comms/v1/messages``. It measures the time to the 202,
the time until the SMTP server has every envelope, the time until every delivery row says
``sent``, and envelopes per second. A second run stops the SMTP server for 10 s once half the
envelopes have arrived. A third run restarts the server with a provider sending limit (30
messages a "minute", the minute shortened to 10 s so the run takes a minute) and sends to year 1:
the 202 forecasts when the last envelope leaves, and the benchmark compares that with when the
last one reached the SMTP server (target: within 10 %). Lost and duplicated envelopes are counted
at the SMTP server by Message-ID. The baseline, measured in the same run against the same server,
is the same number of messages sent by ``smtplib`` over one connection, without Hallpass.

    uv run --frozen python bench/bulk_send.py [--families 1000] [--outage 10]
        [--limit 30] [--limit-window 10] [--backend postgresql sqlite] [--no-docs]

Targets (from the issue): accepted <= 1 s, all delivered <= 30 s, 0 lost, 0 duplicated. Numbers
are reported, never asserted: the script exits 0 whenever it could measure.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import platform
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hallpass_comms.models import Delivery, DeliveryStatus
from hallpass_consent.migrations import upgrade as upgrade_consent
from hallpass_consent.pupils.importer import CARER_FIELDS, import_csv_file
from hallpass_consent.schools import service as schools
from hallpass_consent.schools.schemas import SchoolSettings
from hallpass_kit.auth import DevIssuer, Principal, Role
from hallpass_kit.db import Database, utcnow
from hallpass_kit.settings import CommonSettings

ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = ROOT / "bench" / ".runs"
DOCS_FILE = ROOT / "docs" / "benchmarks.md"
SECTION = "## Bulk send (bench/bulk_send.py)"

HOST = "127.0.0.1"
SCHOOL = "bench"
DOMAIN = "bench.sch.uk"
SENDER = f"teacher@{DOMAIN}"
HEAD = f"head@{DOMAIN}"
YEAR_GROUPS = (1, 2, 3, 4, 5, 6)
SUBJECT = "Sports day on Friday"
BODY = (
    "Dear families,\n\nSports day is on Friday from 1:30 pm on the school field. Please send "
    "your child in PE kit with a named water bottle and sun cream.\n\nThank you,\nMrs Patel\n"
)

ACCEPTED_TARGET_S = 1.0
DELIVERED_TARGET_S = 30.0
FORECAST_TOLERANCE = 0.10


# --------------------------------------------------------------------------------------------
# The SMTP server the comms service sends to


class CountingHandler:
    """Accepts everything; notes each message's Message-ID, delivery id and arrival time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.message_ids: Counter[str] = Counter()
        self.first_arrival: dict[str, float] = {}

    def reset(self) -> None:
        with self._lock:
            self.message_ids.clear()
            self.first_arrival.clear()

    def snapshot(self) -> tuple[Counter[str], dict[str, float]]:
        with self._lock:
            return Counter(self.message_ids), dict(self.first_arrival)

    def arrived(self) -> int:
        with self._lock:
            return len(self.first_arrival)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        headers = BytesHeaderParser(policy=default_policy).parsebytes(envelope.content)
        now = time.perf_counter()
        message_id = str(headers.get("Message-ID", ""))
        delivery = str(headers.get("X-Hallpass-Delivery", message_id))
        with self._lock:
            self.message_ids[message_id] += 1
            self.first_arrival.setdefault(delivery, now)
        return "250 Message accepted for delivery"


class LoopbackSmtp:
    """aiosmtpd on one port for the whole run, across stops and starts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = CountingHandler()
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(self.handler, hostname=HOST, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# Databases and seed data


def recreate_database(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def families_csv(families: int) -> tuple[bytes, list[list[str]]]:
    """An MIS export: one pupil per family in years 1-6, one or two carers with an address each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    carer_columns = [f"carer{n}_{f}" for n in (1, 2) for f in CARER_FIELDS]
    writer.writerow(["mis_id", "given_name", "family_name", "year_group", "class", *carer_columns])
    addresses: list[list[str]] = []
    for number in range(1, families + 1):
        year = YEAR_GROUPS[(number - 1) % len(YEAR_GROUPS)]
        family_name = f"Family{number:05d}"
        carers: list[str] = []
        emails = []
        for index in range(2 if number % 3 else 1):
            email = f"carer.{number:05d}.{index}@parents.example.org"
            emails.append(email)
            carers += [f"Carer{index}", family_name, email, "", "parent", "yes"]
        carers += [""] * (len(carer_columns) - len(carers))
        writer.writerow(
            [f"BULK{number:05d}", f"Pupil{number}", family_name, year, f"Year {year}", *carers]
        )
        addresses.append(emails)
    return out.getvalue().encode(), addresses


def seed_consent(database_url: str, data_dir: Path, families: int) -> None:
    database = Database(database_url)
    try:
        upgrade_consent(database)
        head = Principal(sub="bench-seed", school=SCHOOL, roles=frozenset({Role.head}))
        with database.session() as session:
            schools.put_school(
                session, head, SchoolSettings(name="Hallpass Bulk Send Primary"), now=utcnow()
            )
        export, _addresses = families_csv(families)
        path = data_dir / "mis-export.csv"
        path.write_bytes(export)
        import_csv_file(
            database, SCHOOL, path, actor="bench-seed", dry_run=False, max_rows=families
        )
    finally:
        database.dispose()


def delivery_statuses(comms_url: str, message_id: str) -> dict[str, int]:
    """How many of the message's envelopes are in each status, from the comms database."""
    database = Database(comms_url)
    try:
        with database.session() as session:
            counted = session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.message_id == uuid.UUID(message_id))
                .group_by(Delivery.status)
            ).all()
    finally:
        database.dispose()
    return {str(status): int(count) for status, count in counted}


def unsent_examples(comms_url: str, message_id: str, limit: int = 3) -> list[str]:
    """A few envelopes of the message that are not sent, for the report of a failed run."""
    database = Database(comms_url)
    try:
        with database.session() as session:
            unsent = session.scalars(
                select(Delivery)
                .where(
                    Delivery.message_id == uuid.UUID(message_id),
                    Delivery.status != DeliveryStatus.sent,
                )
                .order_by(Delivery.due_at)
                .limit(limit)
            ).all()
    finally:
        database.dispose()
    now = dt.datetime.now(dt.UTC)
    return [
        f"{d.status} attempts={d.attempts} due in {(d.due_at - now).total_seconds():.0f} s "
        f"claimed_by={d.claimed_by} last_error={d.last_error}"
        for d in unsent
    ]


# --------------------------------------------------------------------------------------------
# The server under test


@contextmanager
def running_server(*, port: int, env: dict[str, str], log_path: Path) -> Iterator[None]:
    """``hallpass serve`` in its own process group; stopped on the way out, whatever happened."""
    hallpass = Path(sys.executable).with_name("hallpass")
    command = [str(hallpass), "serve", "--host", HOST, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {process.returncode}:\n{tail(log_path)}"
                    )
                with suppress(httpx.HTTPError):
                    if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy after 120 s:\n{tail(log_path)}")
                time.sleep(0.2)
            yield
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)
            # The group is the one this script created for the server.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def mail_settings() -> dict[str, Any]:
    # School hours around the clock, every day: the benchmark measures sending, not the E8 hold.
    return {
        "domains": [DOMAIN],
        "head_address": HEAD,
        "deputy_address": f"deputy@{DOMAIN}",
        "dsl_address": f"dsl@{DOMAIN}",
        "office_address": f"office@{DOMAIN}",
        "cc_policy": "head",
        "timezone": "Europe/London",
        "school_day_start": "00:00",
        "school_day_end": "23:59",
        "morning_send_time": "00:00",
        "school_days": [1, 2, 3, 4, 5, 6, 7],
        "term_dates": [],
        "external_needs_approval": True,
    }


# --------------------------------------------------------------------------------------------
# Measurements


@dataclass
class SendRun:
    name: str
    envelopes: int = 0
    accepted_s: float = 0.0
    delivered_s: float | None = None
    recorded_s: float | None = None
    lost: int = 0
    duplicated: int = 0
    outage_s: float = 0.0
    outage_at: int | None = None
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    unsent: list[str] = field(default_factory=list)
    received: int = 0
    # Limited runs: the limit, and the 202's forecast of the last envelope (from the POST).
    limit: str | None = None
    predicted_s: float | None = None

    @property
    def forecast_error(self) -> float | None:
        """How far the measured last arrival is from the forecast, as a share of the forecast."""
        if self.predicted_s is None or self.delivered_s is None or self.predicted_s <= 0:
            return None
        return (self.delivered_s - self.predicted_s) / self.predicted_s

    @property
    def per_second(self) -> float | None:
        if self.delivered_s is None or self.delivered_s <= self.accepted_s:
            return None
        return self.envelopes / (self.delivered_s - self.accepted_s)


def send_to_all(
    client: httpx.Client,
    smtp: LoopbackSmtp,
    *,
    name: str,
    comms_url: str,
    staff_token: str,
    expected: int | None,
    outage: float,
    timeout: float,
    year_groups: Sequence[int] = YEAR_GROUPS,
) -> SendRun:
    """One message to every family; with ``outage``, SMTP stops for that long halfway through."""
    run = SendRun(name)
    smtp.handler.reset()
    body = {
        "recipients": {"year_groups": list(year_groups)},
        "subject": f"{SUBJECT} ({name})",
        "body_text": BODY,
    }
    headers = {"Authorization": f"Bearer {staff_token}", "Idempotency-Key": str(uuid.uuid4())}
    started = time.perf_counter()
    response = client.post("/comms/v1/messages", json=body, headers=headers)
    run.accepted_s = time.perf_counter() - started
    if response.status_code != 202:
        run.errors.append(f"POST answered {response.status_code}: {response.text[:500]}")
        return run
    receipt = response.json()
    if receipt.get("expected_last_at"):
        # The forecast is the server's moment; the 202's created_at is the same clock's "now".
        last_at = dt.datetime.fromisoformat(receipt["expected_last_at"])
        created = dt.datetime.fromisoformat(receipt["created_at"])
        run.predicted_s = (last_at - created).total_seconds()
    deliveries = {d["id"] for d in receipt["deliveries"]}
    run.envelopes = len(deliveries)
    if expected is not None and run.envelopes != expected:
        run.errors.append(f"{run.envelopes} envelopes for {expected} families")

    deadline = started + timeout
    if outage > 0:
        while smtp.handler.arrived() < run.envelopes // 2 and time.perf_counter() < deadline:
            time.sleep(0.002)
        run.outage_at = smtp.handler.arrived()
        down = time.perf_counter()
        smtp.stop()
        time.sleep(outage)
        smtp.start()
        run.outage_s = time.perf_counter() - down

    while time.perf_counter() < deadline:
        _counts, arrivals = smtp.handler.snapshot()
        if deliveries <= arrivals.keys():
            run.delivered_s = max(arrivals[d] for d in deliveries) - started
            break
        time.sleep(0.005)
    while time.perf_counter() < deadline:
        if delivery_statuses(comms_url, receipt["id"]).get(DeliveryStatus.sent) == run.envelopes:
            run.recorded_s = time.perf_counter() - started
            break
        time.sleep(0.05)
    time.sleep(1.0)  # a late second copy would arrive now

    run.statuses = delivery_statuses(comms_url, receipt["id"])
    run.unsent = unsent_examples(comms_url, receipt["id"])
    counts, arrivals = smtp.handler.snapshot()
    run.received = sum(counts.values())
    run.lost = len(deliveries - arrivals.keys())
    run.duplicated = sum(n - 1 for n in counts.values() if n > 1)
    return run


@dataclass
class Baseline:
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


def smtplib_baseline(smtp: LoopbackSmtp, addresses: list[list[str]]) -> Baseline:
    """The same messages (one family each, head copied) over one smtplib connection."""
    messages = []
    for family in addresses:
        email = EmailMessage()
        email["From"] = SENDER
        email["To"] = ", ".join(family)
        email["Cc"] = HEAD
        email["Subject"] = f"{SUBJECT} (baseline)"
        email["Message-ID"] = f"<{uuid.uuid4()}@{DOMAIN}>"
        email.set_content(BODY, cte="quoted-printable")
        messages.append(email)
    smtp.handler.reset()
    started = time.perf_counter()
    with smtplib.SMTP(HOST, smtp.port, timeout=30) as connection:
        for email in messages:
            connection.send_message(email)
    seconds = time.perf_counter() - started
    smtp.handler.reset()
    return Baseline(len(messages), seconds)


# --------------------------------------------------------------------------------------------
# Report


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def render_limited(runs: Sequence[SendRun]) -> str:
    rows = [
        "| run | envelopes | limit | forecast in the 202 | last at the SMTP server "
        "| difference | within 10 % | lost | duplicated |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for run in runs:
        error = run.forecast_error
        rows.append(
            f"| {run.name} | {run.envelopes:,} | {run.limit} | {_s(run.predicted_s)} "
            f"| {_s(run.delivered_s)} | {'—' if error is None else f'{error:+.1%}'} "
            f"| {_yes(error is not None and abs(error) <= FORECAST_TOLERANCE)} "
            f"| {run.lost} | {run.duplicated} |"
        )
    return "\n".join(rows)


def render_tables(baseline: Baseline, runs: Sequence[SendRun]) -> str:
    rows = [
        "| run | envelopes | time to 202 | all at the SMTP server | all recorded `sent` "
        "| envelopes/s (202 → last) | vs baseline | lost | duplicated |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| baseline: `smtplib`, one connection, no Hallpass | {baseline.messages:,} | — "
        f"| {_s(baseline.seconds)} | — | {baseline.per_second:,.0f} | 1.00 | — | — |",
    ]
    for run in runs:
        rate = run.per_second
        rows.append(
            f"| {run.name} | {run.envelopes:,} | {_s(run.accepted_s)} | {_s(run.delivered_s)} "
            f"| {_s(run.recorded_s)} | {'—' if rate is None else f'{rate:,.0f}'} "
            f"| {'—' if rate is None else f'{rate / baseline.per_second:.2f}'} "
            f"| {run.lost} | {run.duplicated} |"
        )
    targets = [
        "",
        "| target | " + " | ".join(run.name for run in runs) + " |",
        "|---|" + "---|" * len(runs),
        "| accepted (202) ≤ 1 s | "
        + " | ".join(_yes(run.accepted_s <= ACCEPTED_TARGET_S) for run in runs)
        + " |",
        "| all delivered ≤ 30 s | "
        + " | ".join(
            _yes(run.delivered_s is not None and run.delivered_s <= DELIVERED_TARGET_S)
            for run in runs
        )
        + " |",
        "| 0 lost | "
        + " | ".join(_yes(run.lost == 0 and run.envelopes > 0) for run in runs)
        + " |",
        "| 0 duplicated | " + " | ".join(_yes(run.duplicated == 0) for run in runs) + " |",
    ]
    return "\n".join(rows + targets)


def machine_description() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "?"

    cpu = platform.processor() or platform.machine()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "fastapi_mail": version("fastapi-mail"),
        "aiosmtpd": version("aiosmtpd"),
    }


def write_docs(section_body: str) -> None:
    """Replace this benchmark's section in docs/benchmarks.md, keeping every other section."""
    section = f"{SECTION}\n\n{section_body.strip()}\n"
    current = DOCS_FILE.read_text() if DOCS_FILE.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        updated = current.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        after = "".join(lines[end:])
        updated = "".join(lines[:start]) + section + ("\n" + after if after else "")
    DOCS_FILE.write_text(updated)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--families", type=int, default=1000)
    parser.add_argument("--outage", type=float, default=10.0, help="SMTP down, seconds")
    parser.add_argument("--timeout", type=float, default=180.0, help="per run, seconds")
    parser.add_argument(
        "--backend",
        choices=["postgresql", "sqlite"],
        nargs="+",
        default=["postgresql", "sqlite"],
        help="databases to measure on, one after the other",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "HALLPASS_BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a database on the PostgreSQL server to run DROP/CREATE DATABASE from",
    )
    parser.add_argument("--limit", type=int, default=30, help="limited run: messages a minute")
    parser.add_argument(
        "--limit-window", type=int, default=10, help="limited run: the minute, shortened, seconds"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--keep-db", action="store_true", help="leave the PostgreSQL databases")
    return parser.parse_args(argv)


def server_env(data_dir: Path, consent_url: str, comms_url: str, smtp_port: int) -> dict[str, str]:
    # Only the bench's own HALLPASS_* settings reach the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLPASS_")}
    env.update(
        HALLPASS_ENV="development",
        HALLPASS_DATA_DIR=str(data_dir),
        HALLPASS_CONSENT_DATABASE_URL=consent_url,
        HALLPASS_COMMS_DATABASE_URL=comms_url,
        HALLPASS_COMMS_SMTP_HOST=HOST,
        HALLPASS_COMMS_SMTP_PORT=str(smtp_port),
        HALLPASS_COMMS_SMTP_STARTTLS="false",
        HALLPASS_COMMS_SMTP_TIMEOUT_SECONDS="5",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class BackendResult:
    backend: str
    seed_seconds: float
    runs: list[SendRun]
    limited: list[SendRun] = field(default_factory=list)


def measure_backend(
    args: argparse.Namespace, backend: str, smtp: LoopbackSmtp, data_dir: Path
) -> BackendResult:
    """Seed, start ``hallpass serve`` on ``backend``, warm up, then the two measured runs."""
    # Names of this run's own: two runs at once on one server must not share (or drop) a database.
    run_tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    databases = (f"hallpass_bench_bulk_{run_tag}_consent", f"hallpass_bench_bulk_{run_tag}_comms")
    runs: list[SendRun] = []
    limited: list[SendRun] = []
    try:
        if backend == "postgresql":
            consent_url, comms_url = (recreate_database(args.admin_url, n) for n in databases)
        else:
            consent_url = f"sqlite:///{data_dir / 'consent.db'}"
            comms_url = f"sqlite:///{data_dir / 'comms.db'}"
        print(f"{backend}: seeding {args.families:,} families …", flush=True)
        seed_started = time.perf_counter()
        seed_consent(consent_url, data_dir, args.families)
        seed_seconds = time.perf_counter() - seed_started

        common = CommonSettings(data_dir=data_dir)
        issuer = DevIssuer.load_or_create(
            common.dev_signing_key_path, common.auth_issuer, common.auth_audience
        )
        head_token = issuer.issue(sub="head", school=SCHOOL, roles=[Role.head], email=HEAD)
        staff_token = issuer.issue(sub="teacher", school=SCHOOL, roles=[Role.staff], email=SENDER)
        port = free_port()
        env = server_env(data_dir, consent_url, comms_url, smtp.port)
        log_path = data_dir / "server.log"
        with (
            running_server(port=port, env=env, log_path=log_path),
            httpx.Client(base_url=f"http://{HOST}:{port}", timeout=60) as client,
        ):
            answer = client.put(
                "/comms/v1/settings",
                json=mail_settings(),
                headers={"Authorization": f"Bearer {head_token}"},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"mail settings: {answer.status_code} {answer.text}")
            print(f"{backend}: warm-up, one message to year 1 …", flush=True)
            warm_up = send_to_all(
                client,
                smtp,
                name="warm-up",
                comms_url=comms_url,
                staff_token=staff_token,
                expected=None,
                outage=0.0,
                timeout=args.timeout,
                year_groups=YEAR_GROUPS[:1],
            )
            if warm_up.errors or warm_up.lost:
                print(f"  warm-up: {warm_up.errors} lost {warm_up.lost}", flush=True)
            for name, outage in (
                (f"Hallpass on {backend}, SMTP up", 0.0),
                (f"Hallpass on {backend}, SMTP down {args.outage:g} s halfway", args.outage),
            ):
                print(f"{name} …", flush=True)
                run = send_to_all(
                    client,
                    smtp,
                    name=name,
                    comms_url=comms_url,
                    staff_token=staff_token,
                    expected=args.families,
                    outage=outage,
                    timeout=args.timeout,
                )
                runs.append(run)
                for error in run.errors:
                    print(f"  error: {error}", flush=True)
            if any(run.errors or run.lost for run in runs):
                for run in runs:
                    print(
                        f"  {run.name}: statuses {run.statuses}, received {run.received}",
                        flush=True,
                    )
                    for example in run.unsent:
                        print(f"    {example}", flush=True)
                print(tail(log_path, 80), flush=True)
        # The same service restarted with a provider limit: the forecast against the clock.
        limited_env = {
            **env,
            "HALLPASS_COMMS_LIMIT_MESSAGES_PER_MINUTE": str(args.limit),
            "HALLPASS_COMMS_LIMIT_MINUTE_SECONDS": str(args.limit_window),
        }
        limited_log = data_dir / "server-limited.log"
        port = free_port()
        with (
            running_server(port=port, env=limited_env, log_path=limited_log),
            httpx.Client(base_url=f"http://{HOST}:{port}", timeout=60) as client,
        ):
            name = f"Hallpass on {backend}, limited"
            print(f"{name} …", flush=True)
            run = send_to_all(
                client,
                smtp,
                name=name,
                comms_url=comms_url,
                staff_token=staff_token,
                expected=None,
                outage=0.0,
                timeout=args.timeout,
                year_groups=YEAR_GROUPS[:1],
            )
            run.limit = f"{args.limit} a minute, the minute {args.limit_window} s"
            limited.append(run)
            for error in run.errors:
                print(f"  error: {error}", flush=True)
            if run.errors or run.lost:
                print(tail(limited_log, 80), flush=True)
    finally:
        if backend == "postgresql" and args.keep_db:
            print(f"kept databases {', '.join(databases)}", flush=True)
        elif backend == "postgresql":
            for name in databases:
                drop_database(args.admin_url, name)
    return BackendResult(backend, seed_seconds, runs, limited)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    smtp = LoopbackSmtp(free_port())
    smtp.start()
    results: list[BackendResult] = []
    try:
        print("baseline: smtplib …", flush=True)
        _csv, addresses = families_csv(args.families)
        baseline = smtplib_baseline(smtp, addresses)
        for backend in args.backend:
            with tempfile.TemporaryDirectory(prefix="hallpass-bulk-") as tmp:
                results.append(measure_backend(args, backend, smtp, Path(tmp)))
    finally:
        smtp.stop()

    runs = [run for result in results for run in result.runs]
    limited_runs = [run for result in results for run in result.limited]
    tables = render_tables(baseline, runs)
    limited_table = render_limited(limited_runs)
    machine = machine_description()
    outages = [run for run in runs if run.outage_at is not None]
    seeded = ", ".join(f"{r.seed_seconds:.0f} s on {r.backend}" for r in results)
    configuration = (
        f"{args.families:,} families (one pupil each in years 1-6, one or two carers; "
        f"seeded in {seeded}) in the consent service; `hallpass serve` (one uvicorn "
        "worker, all services in one process, the comms worker's four sending threads) on "
        f"each database; comms sends through fastapi-mail to aiosmtpd {machine['aiosmtpd']} on "
        "loopback in the benchmark process. After a warm-up message to year 1 (not measured), "
        "one `POST /comms/v1/messages` to years 1-6 as a member of staff (head copied, E1), one "
        "envelope per family (E9), per run. Times are from sending the POST. Envelopes/s "
        "counts from the 202 to the last envelope at the server. "
        + (
            "In the outage runs the SMTP server was stopped once "
            + " and ".join(f"{run.outage_at:,}" for run in outages)
            + f" envelopes had arrived and started again {args.outage:g} s later. "
            if outages
            else ""
        )
        + "Lost: envelopes of the message never seen by the server; duplicated: second and "
        "later copies of one Message-ID. Baseline: the same number of messages (same sizes, "
        "same recipients) sent by `smtplib` over one connection to the same server."
    )
    print()
    print(tables)
    print()
    print(limited_table)
    print()
    print(f"Configuration: {configuration}")
    section = "\n".join(
        [
            f"Run {started_at:%Y-%m-%d %H:%M} UTC on {machine['nproc']} CPUs ({machine['cpu']}), "
            f"{machine['os']}, Python {machine['python']}, uvicorn {machine['uvicorn']}, "
            f"fastapi-mail {machine['fastapi_mail']}.",
            "",
            f"Configuration: {configuration}",
            "",
            "The benchmark process (HTTP client and SMTP server) shares the machine's CPUs with "
            "the server and the database, and other jobs shared the machine (load average "
            f"{load_before:.1f} before the run). While the SMTP server is down the worker "
            "pauses 1, 2, 4, 8 … s (each 50-100 % of that, jittered) between probes, so mail "
            "resumes up to one pause after the server is back; the outage run's time includes "
            "the outage and that pause. Reproduce with `make bench` "
            "(`uv run --frozen python bench/bulk_send.py`); crash safety and the duplicate window "
            "are described in docs/mail-delivery.md.",
            "",
            tables,
            "",
            "### With a provider sending limit",
            "",
            "The same service restarted with "
            f"`HALLPASS_COMMS_LIMIT_MESSAGES_PER_MINUTE={args.limit}` and its minute shortened "
            f"to {args.limit_window} s (`HALLPASS_COMMS_LIMIT_MINUTE_SECONDS={args.limit_window}`, "
            "so the run takes about a minute, not several), one message to year 1. The fixed "
            "costs of each window (claiming, reserving and sending 30 envelopes) weigh six "
            "times more against a 10 s minute than against a real one. The forecast is "
            "`expected_last_at` in the 202 less its `created_at`; the last arrival is timed from "
            "sending the POST. Target: the forecast within 10 % of the measured time.",
            "",
            limited_table,
        ]
    )
    if not args.no_docs and runs:
        write_docs(section)
        print(f"\nwrote {DOCS_FILE.relative_to(ROOT)}")
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    raw_path = RUNS_DIR / f"bulk-send-{started_at:%Y%m%dT%H%M%SZ}.json"
    raw = {
        "started_at": started_at.isoformat(),
        "machine": machine,
        "arguments": {k: v for k, v in vars(args).items() if k != "admin_url"},
        "baseline": asdict(baseline),
        "results": [asdict(result) for result in results],
    }
    raw_path.write_text(json.dumps(raw, indent=2) + "\n")
    print(f"raw numbers in {raw_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
