"""Overload benchmark: the all-in-one server past its capacity sheds load instead of collapsing.

Starts ``hallpass serve`` (1 worker) on 127.0.0.1, seeds it like bench/publish_check.py (a school
of 2,000 pupils, four consented pupils in four scanned photos) and sets the school's mail rules;
then ramps clients (10 -> 400 by default), each on its own keep-alive connection, over a mix of
consent decisions (30 pupils), publish checks (4 media ids, 500 characters of text, website
channel) and urgent sends to one pupil's family. A client that is shed (503 or 429) honours
Retry-After (0.5-1.5 x its value, so retries spread); with --impatient it waits only 50-150 ms,
as a badly written app would, which keeps the offered load far higher.
A request unanswered after 5 s is a timeout: the client drops the
connection and opens a new one. A separate prober asks ``/healthz`` every 100 ms on its own
connection throughout each step.

    .venv/bin/python bench/overload.py [--steps 10 25 50 100 200 400] [--duration 8]
        [--max-concurrent 32] [--only sqlite|postgres] [--no-docs]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Runs on SQLite (embedded), then on PostgreSQL when ``--postgres-url`` is given (default: the
HALLPASS_TEST_POSTGRES_URL environment variable), with fresh databases for consent, media and
comms. Mail goes to the ``.eml`` outbox under the bench's temporary data dir, never to SMTP.

Targets (issue 8, "Shed, don't collapse"): served/s at the last step >= 0.80 x the peak of the
same run; no request over 5 s; no 5xx but 503; ``/healthz`` <= 1 s at every step. Reported,
never asserted; the tables go to docs/benchmarks.md ("Overload") unless --no-docs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import http.client
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import decisions as kit
from bench import publish_check
from hallpass_kit.auth import DevIssuer
from hallpass_kit.settings import CommonSettings

ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = ROOT / "bench" / ".runs"
SECTION = "## Overload (bench/overload.py)"
SCHOOL = publish_check.SCHOOL
DOMAIN = "bench.sch.uk"
SENDER = f"teacher@{DOMAIN}"

DEFAULT_STEPS = (10, 25, 50, 100, 200, 400)
CLIENT_TIMEOUT_S = 5.0
HEALTH_EVERY_S = 0.1
HEALTH_TARGET_MS = 1000.0
RATIO_TARGET = 0.80
BATCH = 30
KINDS = ("decisions", "check", "send")
SHED_STATUSES = frozenset({429, 503})

# A server log line that is not uvicorn's access log (those name the request line and status).
_ACCESS_LINE = re.compile(r'"[A-Z]+ \S+ HTTP/1\.[01]" \d{3}')


# --------------------------------------------------------------------------------------------
# Setup through the API


def mail_settings() -> dict[str, Any]:
    # README's tour, step 10, for the bench school's domain.
    return {
        "domains": [DOMAIN],
        "head_address": f"head@{DOMAIN}",
        "deputy_address": f"deputy@{DOMAIN}",
        "dsl_address": f"dsl@{DOMAIN}",
        "office_address": f"office@{DOMAIN}",
        "cc_policy": "both",
        "school_day_start": "08:30",
        "school_day_end": "16:00",
        "morning_send_time": "08:00",
    }


@dataclass(frozen=True)
class Workload:
    requests: dict[str, list[bytes]]
    health: bytes


def prepare(port: int, issuer: DevIssuer, *, seed: int) -> Workload:
    """Seed the school, set its mail rules and build every request the clients will send."""
    print("  seeding 2,000 pupils and four scanned photos…", flush=True)
    media = publish_check.seed(port, issuer)
    head = issuer.issue(sub="bench-head", school=SCHOOL, roles=["head"])
    office = issuer.issue(sub="bench-office", school=SCHOOL, roles=["office"])
    publish_check._call(port, head, "PUT", "/comms/v1/settings", mail_settings())
    # The first 500 pupils by family name, enough to draw batches of 30 from.
    page = publish_check._call(port, office, "GET", "/consent/v1/pupils?limit=500")
    ids: list[str] = [item["id"] for item in page["items"]]

    ttl = 4 * 3600
    cms = issuer.issue(sub="bench-cms", school=SCHOOL, roles=["cms"], ttl_seconds=ttl)
    staff = issuer.issue(
        sub="bench-teacher", school=SCHOOL, roles=["staff"], email=SENDER, ttl_seconds=ttl
    )
    rng = random.Random(seed)

    def post(path: str, token: str, body: dict[str, Any]) -> bytes:
        raw = json.dumps(body, separators=(",", ":")).encode()
        return kit.build_request("POST", path, port, token, raw)

    decisions = [
        post(
            kit.DECISIONS_PATH,
            cms,
            {"purpose": kit.PURPOSE, "pupil_ids": rng.sample(ids, min(BATCH, len(ids)))},
        )
        for _ in range(256)
    ]
    text = publish_check.TEXT
    check = [
        post(
            "/media/v1/publications:check",
            cms,
            {
                "channel": "website",
                "media_ids": media,
                "caption": text[:150],
                "post_body": text[150:450],
                "alt_text": text[450:500],
            },
        )
    ]
    # One family (a pupil from the MIS import, whose carers have email addresses); no
    # Idempotency-Key, so every send is a new message and a new .eml in the outbox.
    send = [
        post(
            "/comms/v1/messages",
            staff,
            {
                "recipients": {"pupil_ids": [ids[len(ids) // 2]]},
                "subject": "Sports day on Friday",
                "body_text": text[:300],
                "urgent": True,
            },
        )
    ]
    health = f"GET /healthz HTTP/1.1\r\nHost: {kit.HOST}:{port}\r\n\r\n".encode("ascii")
    return Workload({"decisions": decisions, "check": check, "send": send}, health)


def check_each(port: int, workload: Workload) -> None:
    """One request of each kind before the load: a wrong route or token fails loudly here."""

    async def once(request: bytes) -> tuple[int, bytes]:
        connection = kit.Connection(port)
        try:
            status, body, _ = await connection.exchange(request)
            return status, body
        finally:
            connection.close()

    for kind in KINDS:
        status, body = kit.run_async(functools.partial(once, workload.requests[kind][0]))
        if not 200 <= status < 300:
            raise RuntimeError(f"{kind} answered {status}: {body[:500]!r}")


# --------------------------------------------------------------------------------------------
# One step of the ramp


@dataclass
class Tally:
    served_ns: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})
    shed: int = 0
    shed_database: int = 0  # 503 database_unavailable (a bounded wait that ran out)
    timeouts: int = 0
    other_5xx: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)  # 4xx but 429, connection errors
    samples: list[str] = field(default_factory=list)

    def note(self, label: str, body: bytes) -> None:
        if len(self.samples) < 5:
            self.samples.append(f"{label}: {body[:300]!r}")


@dataclass(frozen=True)
class StepResult:
    clients: int
    seconds: float
    attempts: int
    served: int
    served_per_s: float
    shed: int
    shed_database: int
    timeouts: int
    other_5xx: dict[str, int]
    other: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    by_kind: dict[str, dict[str, float]]
    health_probes: int
    health_failures: int
    health_worst_ms: float
    server_cpu_percent: float
    generator_cpu_percent: float
    samples: list[str]


class HealthProber(threading.Thread):
    """``GET /healthz`` every 100 ms on its own keep-alive connection, in its own thread so the
    load generator's busy event loop does not delay its reading (beyond the GIL's switch)."""

    def __init__(self, port: int) -> None:
        super().__init__(name="healthz-prober", daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.latencies_ms: list[float] = []
        self.failures = 0

    def run(self) -> None:
        connection = http.client.HTTPConnection(kit.HOST, self.port, timeout=10)
        try:
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    connection.request("GET", "/healthz")
                    response = connection.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    connection.close()
                    ok = False
                elapsed = time.perf_counter() - started
                self.latencies_ms.append(elapsed * 1e3)
                self.failures += not ok
                self.stopping.wait(max(0.0, HEALTH_EVERY_S - elapsed))
        finally:
            connection.close()


async def drive_step(
    port: int,
    workload: Workload,
    *,
    clients: int,
    warmup: float,
    duration: float,
    seed: int,
    impatient: bool,
) -> tuple[Tally, int]:
    """``clients`` clients for ``warmup + duration`` s; requests started in the last
    ``duration`` s are counted, each with its outcome (at most 5 s later)."""
    tally = Tally()
    attempts = 0
    loop_start = time.perf_counter_ns()
    measure_from = loop_start + int(warmup * 1e9)
    stop_at = measure_from + int(duration * 1e9)
    timeout_ns = int(CLIENT_TIMEOUT_S * 1e9)
    requests = workload.requests

    async def client(index: int) -> None:
        nonlocal attempts
        rng = random.Random(seed * 100_003 + index)
        connection = kit.Connection(port)
        # Start spread over 100 ms rather than as one burst of connects.
        await asyncio.sleep(rng.random() * 0.1)
        try:
            while True:
                started = time.perf_counter_ns()
                if started >= stop_at:
                    return
                counted = started >= measure_from
                kind = KINDS[rng.randrange(3)]
                pool = requests[kind]
                request = pool[rng.randrange(len(pool))] if len(pool) > 1 else pool[0]
                pause = False
                try:
                    async with asyncio.timeout(CLIENT_TIMEOUT_S):
                        status, body, keep_alive = await connection.exchange(request)
                except TimeoutError:
                    connection.close()
                    attempts += counted
                    tally.timeouts += counted
                    continue
                except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as error:
                    connection.close()
                    if counted:
                        attempts += 1
                        tally.other[type(error).__name__] += 1
                    await asyncio.sleep(rng.uniform(0.05, 0.15))
                    continue
                elapsed = time.perf_counter_ns() - started
                if not keep_alive:
                    connection.close()
                if status in SHED_STATUSES:
                    pause = True
                    # A client that honours Retry-After (1 s when shed, 2 s when the database
                    # could not answer) comes back after it, spread by jitter; an impatient one
                    # (--impatient) after 50-150 ms whatever the server said.
                    retry_after = 2.0 if b"database_unavailable" in body else 1.0
                if counted:
                    attempts += 1
                    if elapsed > timeout_ns:
                        tally.timeouts += 1
                    elif 200 <= status < 300:
                        tally.served_ns[kind].append(elapsed)
                    elif status in SHED_STATUSES:
                        tally.shed += 1
                        if b"database_unavailable" in body:
                            tally.shed_database += 1
                    elif status >= 500:
                        tally.other_5xx[f"{status}"] += 1
                        tally.note(f"{kind} {status}", body)
                    else:
                        tally.other[f"HTTP {status}"] += 1
                        tally.note(f"{kind} {status}", body)
                if pause:
                    if impatient:
                        await asyncio.sleep(rng.uniform(0.05, 0.15))
                    else:
                        await asyncio.sleep(retry_after * rng.uniform(0.5, 1.5))
        finally:
            connection.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return tally, attempts


def run_step(
    port: int,
    server_pid: int,
    workload: Workload,
    *,
    clients: int,
    warmup: float,
    duration: float,
    seed: int,
    impatient: bool,
) -> StepResult:
    prober = HealthProber(port)
    cpu_before = kit.process_cpu(server_pid)
    own_before, wall_before = time.process_time(), time.perf_counter()
    prober.start()
    try:
        tally, attempts = kit.run_async(
            functools.partial(
                drive_step,
                port,
                workload,
                clients=clients,
                warmup=warmup,
                duration=duration,
                seed=seed,
                impatient=impatient,
            )
        )
    finally:
        prober.stopping.set()
        prober.join(timeout=15)
    wall = time.perf_counter() - wall_before
    own = time.process_time() - own_before
    cpu_after = kit.process_cpu(server_pid)
    server_cpu = sum(cpu_after.server.values()) - sum(cpu_before.server.values())

    everything = sorted(ns for kind in KINDS for ns in tally.served_ns[kind])
    by_kind: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        ordered = sorted(tally.served_ns[kind])
        by_kind[kind] = {
            "served_per_s": len(ordered) / duration,
            "p50_ms": kit.percentile_ms(ordered, 50),
            "p99_ms": kit.percentile_ms(ordered, 99),
        }
    return StepResult(
        clients=clients,
        seconds=duration,
        attempts=attempts,
        served=len(everything),
        served_per_s=len(everything) / duration,
        shed=tally.shed,
        shed_database=tally.shed_database,
        timeouts=tally.timeouts,
        other_5xx=dict(tally.other_5xx),
        other=dict(tally.other),
        p50_ms=kit.percentile_ms(everything, 50),
        p99_ms=kit.percentile_ms(everything, 99),
        max_ms=everything[-1] / 1e6 if everything else float("nan"),
        by_kind=by_kind,
        health_probes=len(prober.latencies_ms),
        health_failures=prober.failures,
        health_worst_ms=max(prober.latencies_ms, default=float("nan")),
        server_cpu_percent=100 * server_cpu / wall,
        generator_cpu_percent=100 * own / wall,
        samples=tally.samples,
    )


def step_line(step: StepResult) -> str:
    other = sum(step.other.values())
    return (
        f"  {step.clients:>4} clients: {step.served_per_s:8,.1f} served/s, "
        f"shed {step.shed:,} ({step.shed_database} db), timeouts {step.timeouts}, "
        f"5xx not 503 {sum(step.other_5xx.values())}, other {other}, "
        f"p50 {step.p50_ms:,.1f} ms, p99 {step.p99_ms:,.1f} ms, "
        f"worst /healthz {step.health_worst_ms:,.1f} ms, CPU server {step.server_cpu_percent:.0f}%"
        f" / bench {step.generator_cpu_percent:.0f}%"
    )


# --------------------------------------------------------------------------------------------
# One backend


@dataclass(frozen=True)
class BackendRun:
    backend: str
    steps: list[StepResult]
    log_errors: list[str]


def log_problems(log_path: Path, limit: int = 30) -> list[str]:
    """The server log's lines that are not access-log lines and look like trouble."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    kept = [
        line
        for line in lines
        if not _ACCESS_LINE.search(line)
        and any(word in line for word in ("Traceback", "ERROR", "Error", "CRITICAL", "WARNING"))
    ]
    return kept[-limit:]


def non_access_tail(log_path: Path, lines: int = 40) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join([line for line in text if not _ACCESS_LINE.search(line)][-lines:])


def run_backend(args: argparse.Namespace, backend: str, stamp: str) -> BackendRun:
    databases: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hallpass-bench-") as tmp:
        data_dir = Path(tmp)
        env = kit.server_env(data_dir, "")
        del env["HALLPASS_CONSENT_DATABASE_URL"]
        # server_env keeps no HALLPASS_* from the shell, so no SMTP host either: mail is written
        # as .eml files under the temporary data dir.
        assert "HALLPASS_COMMS_SMTP_HOST" not in env
        if args.max_concurrent is not None:
            env["HALLPASS_MAX_CONCURRENT_REQUESTS"] = str(args.max_concurrent)
        log_path = data_dir / "server.log"
        try:
            if backend == "PostgreSQL":
                for service in ("consent", "media", "comms"):
                    name = f"hallpass_bench_overload_{service}"
                    env[f"HALLPASS_{service.upper()}_DATABASE_URL"] = kit.recreate_database(
                        args.postgres_url, name
                    )
                    databases.append(name)
            issuer = DevIssuer.load_or_create(
                data_dir / "dev-signing-key.json", "hallpass-dev", "hallpass"
            )
            port = kit.free_port()
            steps: list[StepResult] = []
            with kit.running_server(port=port, workers=1, env=env, log_path=log_path) as server:
                workload = prepare(port, issuer, seed=args.seed)
                check_each(port, workload)
                print(f"  ramp {' → '.join(map(str, args.steps))} clients", flush=True)
                for index, clients in enumerate(args.steps):
                    step = run_step(
                        port,
                        server.pid,
                        workload,
                        clients=clients,
                        warmup=args.warmup,
                        duration=args.duration,
                        seed=args.seed + index,
                        impatient=args.impatient,
                    )
                    steps.append(step)
                    print(step_line(step), flush=True)
                    for sample in step.samples:
                        print(f"    e.g. {sample}", flush=True)
                    # Let requests the clients gave up on finish before the next step.
                    time.sleep(args.settle)
            problems = log_problems(log_path)
            trouble = any(s.other_5xx or s.other or s.timeouts for s in steps)
            if problems or trouble:
                RUNS_DIR.mkdir(parents=True, exist_ok=True)
                kept = RUNS_DIR / f"overload-{backend.lower()}-{stamp}.log"
                shutil.copyfile(log_path, kept)
                print(
                    f"  server log (non-access lines, tail); kept in {kept.relative_to(ROOT)}:\n"
                    + "\n".join(f"    {line}" for line in non_access_tail(log_path).splitlines()),
                    flush=True,
                )
            return BackendRun(backend, steps, problems)
        except BaseException:
            print(f"  server log tail:\n{non_access_tail(log_path)}", file=sys.stderr, flush=True)
            raise
        finally:
            for name in databases:
                kit.drop_database(args.postgres_url, name)


# --------------------------------------------------------------------------------------------
# Report


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:,.1f}"  # NaN: nothing served


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def render(run: BackendRun) -> str:
    steps = run.steps
    rows = [
        "| clients | offered/s | served/s (2xx) | shed (503/429) | of which database | "
        "timeouts (> 5 s) | 5xx not 503 | other errors | p50 ms | p99 ms | worst /healthz ms | "
        "server CPU | bench CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        rows.append(
            f"| {s.clients} | {s.attempts / s.seconds:,.0f} | {s.served_per_s:,.1f} | "
            f"{s.shed:,} | {s.shed_database:,} | {s.timeouts} | {sum(s.other_5xx.values())} | "
            f"{sum(s.other.values())} | {_ms(s.p50_ms)} | {_ms(s.p99_ms)} | "
            f"{_ms(s.health_worst_ms)} | {s.server_cpu_percent:.0f}% | "
            f"{s.generator_cpu_percent:.0f}% |"
        )
    rows += [
        "",
        "| clients | decisions/s | p99 ms | publish checks/s | p99 ms | sends/s | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        cells = " | ".join(
            f"{s.by_kind[k]['served_per_s']:,.1f} | {_ms(s.by_kind[k]['p99_ms'])}" for k in KINDS
        )
        rows.append(f"| {s.clients} | {cells} |")

    if not steps:
        return "\n".join(rows)
    peak = max(steps, key=lambda s: s.served_per_s)
    last = steps[-1]
    ratio = last.served_per_s / peak.served_per_s if peak.served_per_s else float("nan")
    timeouts = sum(s.timeouts for s in steps)
    other_5xx = sum(sum(s.other_5xx.values()) for s in steps)
    worst_health = max(s.health_worst_ms for s in steps)
    health_failures = sum(s.health_failures for s in steps)
    targets = [
        f"- Peak {peak.served_per_s:,.1f} served/s at {peak.clients} clients; "
        f"{last.served_per_s:,.1f} served/s at {last.clients} clients = {ratio:.2f} of the peak "
        f"(target >= {RATIO_TARGET:.2f}): {_verdict(ratio >= RATIO_TARGET)}.",
        f"- No request over {CLIENT_TIMEOUT_S:g} s: {_verdict(timeouts == 0)} "
        f"({timeouts} timeouts).",
        f"- No 5xx but 503: {_verdict(other_5xx == 0)} ({other_5xx}).",
        f"- /healthz <= {HEALTH_TARGET_MS:,.0f} ms at every step: "
        f"{_verdict(worst_health <= HEALTH_TARGET_MS and health_failures == 0)} "
        f"(worst {_ms(worst_health)} ms, {health_failures} failed probes).",
    ]
    if run.log_errors:
        targets.append(
            f"- The server logged {len(run.log_errors)} error or warning line(s) (last: "
            f"`{run.log_errors[-1][:160]}`)."
        )
    return "\n".join([*rows, "", *targets])


def settings_used(args: argparse.Namespace) -> dict[str, Any]:
    """The server's load settings: the bench's override or the shipped default (the server's
    environment carries no other HALLPASS_* setting)."""
    fields = CommonSettings.model_fields

    def default(name: str) -> Any:
        return fields[name].default

    return {
        "max_concurrent_requests": args.max_concurrent or default("max_concurrent_requests"),
        "db_pool_size": default("db_pool_size"),
        "db_max_overflow": default("db_max_overflow"),
        "db_pool_timeout_seconds": default("db_pool_timeout_seconds"),
        "db_lock_timeout_seconds": default("db_lock_timeout_seconds"),
        "db_statement_timeout_seconds": default("db_statement_timeout_seconds"),
    }


def write_docs(body: str) -> None:
    """Replace this benchmark's section in docs/benchmarks.md, keeping every other section."""
    kit.replace_docs_section(SECTION, body)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=list(DEFAULT_STEPS))
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per step")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds per step before measuring"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="pause between steps (abandoned requests end)"
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        help="HALLPASS_MAX_CONCURRENT_REQUESTS for the server (default: the server's own)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("HALLPASS_TEST_POSTGRES_URL") or None,
        help="PostgreSQL server to create the bench databases on (default: "
        "$HALLPASS_TEST_POSTGRES_URL); without it only SQLite runs",
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one backend")
    parser.add_argument("--seed", type=int, default=20261208)
    parser.add_argument(
        "--impatient",
        action="store_true",
        help="shed clients retry after 50-150 ms instead of honouring Retry-After",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.steps) or args.duration <= 0 or args.warmup < 0:
        parser.error("steps must be >= 1 and --duration > 0")
    if args.only == "postgres" and not args.postgres_url:
        parser.error("--only postgres needs --postgres-url")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    machine = kit.machine_description()
    settings = settings_used(args)
    backends = []
    if args.only in (None, "sqlite"):
        backends.append("SQLite")
    if args.postgres_url and args.only in (None, "postgres"):
        backends.append("PostgreSQL")

    configuration = (
        f"`hallpass serve` (1 worker, uvicorn with httptools and uvloop, access log on) on "
        f"{kit.HOST}; max concurrent requests {settings['max_concurrent_requests']}, "
        f"database pool {settings['db_pool_size']} + {settings['db_max_overflow']} overflow per "
        f"service, pool timeout {settings['db_pool_timeout_seconds']:g} s, lock timeout "
        f"{settings['db_lock_timeout_seconds']:g} s, statement timeout "
        f"{settings['db_statement_timeout_seconds']:g} s (PostgreSQL). Clients: "
        f"{', '.join(map(str, args.steps))}, each step {args.warmup:g} s warm-up then "
        f"{args.duration:g} s measured, {args.settle:g} s pause between steps. Each client keeps "
        f"one keep-alive connection and picks at random (one third each) a consent decision "
        f"({BATCH} pupils), a publish check (4 scanned media, 500 characters, website) or an "
        f"urgent send to one family (written to the .eml outbox); after a 503/429 it "
        + (
            "waits 50-150 ms (impatient) and asks again"
            if args.impatient
            else "honours Retry-After (0.5-1.5 x its value) and asks again"
        )
        + f"; after {CLIENT_TIMEOUT_S:g} s without an answer it drops the "
        f"connection (a timeout). /healthz is probed every {HEALTH_EVERY_S * 1e3:.0f} ms on its "
        f"own connection. {machine['nproc']} CPUs ({machine['cpu']}), shared by the server, "
        f"the database and the load generator; Python {machine['python']}."
    )
    print(f"Overload: {configuration}\n", flush=True)

    runs: list[BackendRun] = []
    for backend in backends:
        print(f"{backend}:", flush=True)
        runs.append(run_backend(args, backend, stamp))

    sections = [
        f"Run {started_at:%Y-%m-%d %H:%M} UTC. {configuration} Load average "
        f"{os.getloadavg()[0]:.1f} when the run ended. Offered/s counts every answered, shed or "
        "timed-out request; served/s, p50 and p99 only the 2xx. The targets compare the last "
        "step with the peak of the same run. Reproduce with `make bench` "
        "(`.venv/bin/python bench/overload.py [--postgres-url …]`).",
    ]
    for run in runs:
        sections += ["", f"### {run.backend}", "", render(run)]
    report = "\n".join(sections)
    print()
    print(report)

    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    raw_path = RUNS_DIR / f"overload-{stamp}.json"
    raw = {
        "started_at": started_at.isoformat(),
        "machine": machine,
        "settings": settings,
        "arguments": {k: v for k, v in vars(args).items() if k != "postgres_url"},
        "runs": [{"backend": r.backend, "steps": [asdict(s) for s in r.steps]} for r in runs],
    }
    raw_path.write_text(json.dumps(raw, indent=2) + "\n")
    print(f"\nraw numbers in {raw_path.relative_to(ROOT)}")
    if not args.no_docs:
        write_docs(report)
        print(f"wrote {kit.DOCS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
