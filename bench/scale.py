"""Scale benchmark: a school's decisions and publish checks in a database of 50 schools.

Seeds one school of 2,000 pupils on PostgreSQL (bench/decisions.py's ``seed_school``: importer,
consents, withdrawals, restrictions; then four scanned photos through the media service), then
copies it in SQL (bench/seeding.py) into a second pair of databases holding N schools, 100,000
pupils at the default 50. The same load then goes to ``hallpass serve`` (1 worker) on each:

* ``one school``: the 1-school databases;
* ``1 of N``: the N-school databases, every request for one school (a copy, not the template);
* ``all N``: the N-school databases, each request for a school picked at random.

Both servers run at once and the loads take turns, endpoint by endpoint, round after round, so a
busy moment of the machine falls on every row alike. Each load is the authenticated no-op,
``POST /consent/v1/decisions`` (30 random pupils of the school, 16 connections) and
``POST /media/v1/publications:check`` (the school's 4 photos and 500 characters, 4
connections). Prints the tables (per-request CPU of the server and of
PostgreSQL, throughput, latency; the ratio to the 1-school run, target within 20 %) and the
rows and bytes per table of the N-school database, which docs/scale.md sizes deployments from.

    .venv/bin/python bench/scale.py [--schools 50] [--pupils 2000] [--duration 6] [--docs]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import decisions as kit
from bench import seeding
from hallpass_consent.migrations import upgrade
from hallpass_consent.models import Base as ConsentBase
from hallpass_kit.auth import DevIssuer
from hallpass_kit.db import Database
from hallpass_media.models import Base as MediaBase

ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = ROOT / "docs" / "benchmarks.md"
SECTION = "## Scale: 50 schools (bench/scale.py)"
TEMPLATE = kit.SCHOOL
RATIO_TARGET = 0.2  # within 20 % of the 1-school run
CHECK_CONNECTIONS = 4
TEXT = (
    "What a wonderful sports day we had on the school field this afternoon! Every class took "
    "part in the relay, the sack race and the egg and spoon race, and the sun shone for all of "
    "it. Thank you to the parents and carers who came to cheer, to the PTA for the ice lollies "
    "and to our Year 6 helpers who ran the stalls so well. The house cup went to Kestrels by "
    "just two points. Photos of the day are below; more follow in the newsletter next week. "
)


@dataclass(frozen=True)
class School:
    """What the load needs of one school: its pupils, its photos and tokens."""

    name: str
    pupil_ids: list[str]
    media_ids: list[str]
    head: str
    cms: str


@dataclass(frozen=True)
class Result:
    name: str
    sample: kit.Sample

    @property
    def rate(self) -> float:
        return self.sample.ok / self.sample.seconds

    @property
    def server_ms(self) -> float:
        return 1000 * self.sample.server_cpu_seconds / max(1, self.sample.ok)

    @property
    def postgres_ms(self) -> float:
        return 1000 * self.sample.postgres_cpu_seconds / max(1, self.sample.ok)

    def percentile(self, q: float) -> float:
        return kit.percentile_ms(sorted(self.sample.latencies_ns), q)


def school_names(count: int) -> list[str]:
    return [TEMPLATE] + [f"{TEMPLATE}-{n:02d}" for n in range(2, count + 1)]


def copy_database(admin_url: str, template: str, name: str) -> str:
    """``name`` as a file-level copy of ``template`` (nobody may be connected to it)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def pupils_of(database_url: str, school: str) -> list[str]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id FROM pupil WHERE school_id = :school ORDER BY mis_id"),
                {"school": school},
            ).scalars()
            return [str(row) for row in rows]
    finally:
        engine.dispose()


def tokens(issuer: DevIssuer, school: str) -> tuple[str, str]:
    head = issuer.issue(sub="bench-head", school=school, roles=["head"], ttl_seconds=4 * 3600)
    cms = issuer.issue(sub="bench-cms", school=school, roles=["cms"], ttl_seconds=4 * 3600)
    return head, cms


def requests_for(
    schools: Sequence[School], port: int, batch: int, rng: random.Random
) -> dict[str, list[bytes]]:
    """1,024 requests of each kind, each for a school picked from ``schools``."""
    check_body = {
        "channel": "website",
        "caption": TEXT[:150],
        "post_body": TEXT[150:450],
        "alt_text": TEXT[450:500],
    }
    built: dict[str, list[bytes]] = {"no-op": [], "decisions": [], "publish check": []}
    for _ in range(1024):
        school = rng.choice(schools)
        built["no-op"].append(kit.build_request("GET", kit.PING_PATH, port, school.head))
        decisions = {"purpose": kit.PURPOSE, "pupil_ids": rng.sample(school.pupil_ids, batch)}
        built["decisions"].append(
            kit.build_request(
                "POST", kit.DECISIONS_PATH, port, school.cms, json.dumps(decisions).encode()
            )
        )
        check = {**check_body, "media_ids": school.media_ids}
        built["publish check"].append(
            kit.build_request(
                "POST", "/media/v1/publications:check", port, school.cms, json.dumps(check).encode()
            )
        )
    return built


@dataclass(frozen=True)
class Load:
    """One row group of the table: a server (by its port and pid) and the requests it gets."""

    label: str
    port: int
    server_pid: int
    requests: dict[str, list[bytes]]


async def alternate(loads: Sequence[Load], args: argparse.Namespace) -> dict[str, kit.Sample]:
    """Every endpoint of every load in turn, round after round, so that a busy moment of the
    machine (other work, autovacuum) falls on all of them alike."""
    connections = {
        load.label: [kit.Connection(load.port) for _ in range(args.concurrency)] for load in loads
    }
    for opened in connections.values():
        for connection in opened:
            await connection.open()
    totals = {f"{load.label}/{name}": kit.Sample() for load in loads for name in load.requests}
    segment = args.duration / args.rounds
    try:
        for round_index in range(args.rounds):
            for name in loads[0].requests:
                for load in loads:
                    used = connections[load.label]
                    if name == "publish check":
                        used = used[:CHECK_CONNECTIONS]
                    sample = await kit.drive(
                        used,
                        load.requests[name],
                        warmup=args.warmup if round_index == 0 else 0.5,
                        duration=segment,
                        seed=args.seed + round_index,
                        server_pid=load.server_pid,
                    )
                    totals[f"{load.label}/{name}"].add(sample)
                    print(
                        f"  {load.label:<22} {name:<13} round {round_index + 1}: "
                        f"{sample.ok / segment:7,.0f} req/s, errors {sum(sample.errors.values())}",
                        flush=True,
                    )
    finally:
        for opened in connections.values():
            for connection in opened:
                connection.close()
    return totals


def measure(
    args: argparse.Namespace,
    data_dir: Path,
    servers: Sequence[tuple[str, dict[str, str], str]],
    loads: Sequence[tuple[str, str, Sequence[School]]],
) -> dict[str, list[Result]]:
    """``servers``: (name, environment, consent URL); ``loads``: (label, server name, schools).
    Every server runs at once (idle but for its own background work while another is measured);
    the loads take turns."""
    with ExitStack() as stack:
        running: dict[str, tuple[int, int]] = {}
        for name, env, consent_url in servers:
            port = kit.free_port()
            server = stack.enter_context(
                kit.running_server(
                    port=port, workers=1, env=env, log_path=data_dir / f"server-{name}.log"
                )
            )
            kit.wait_for_outbox(consent_url)
            running[name] = (port, server.pid)
            print(f"{name}: hallpass serve on {kit.HOST}:{port}", flush=True)
        built: list[Load] = []
        for label, server_name, schools in loads:
            port, pid = running[server_name]
            requests = requests_for(schools, port, args.batch, random.Random(args.seed))
            # One request of each kind per school before the clock: the media service compiles a
            # school's roster into its name matcher on the school's first check and keeps it, so
            # the measured checks are the steady state, not 50 first checks.
            for school in schools:
                for batch in requests_for([school], port, args.batch, random.Random(0)).values():
                    kit.check_once(port, batch[0], None)
            built.append(Load(label, port, pid, requests))
        samples = kit.run_async(lambda: alternate(built, args))
    return {
        load.label: [Result(name, samples[f"{load.label}/{name}"]) for name in load.requests]
        for load in built
    }


def seed_template(
    args: argparse.Namespace, data_dir: Path, issuer: DevIssuer
) -> tuple[str, str, kit.SeedSummary, list[str]]:
    """The 1-school databases: (consent URL, media URL, what was seeded, the photos' ids)."""
    consent_url = kit.recreate_database(args.postgres_url, "hallpass_scale_consent_1")
    media_url = kit.recreate_database(args.postgres_url, "hallpass_scale_media_1")
    database = Database(consent_url)
    try:
        upgrade(database)
        print(f"seeding one school of {args.pupils:,} pupils …", flush=True)
        summary = kit.seed_school(
            database,
            pupils_total=args.pupils,
            classes=args.classes,
            seed=args.seed,
            data_dir=data_dir,
        )
    finally:
        database.dispose()
    pupils = pupils_of(consent_url, TEMPLATE)
    env = kit.server_env(data_dir, consent_url) | {"HALLPASS_MEDIA_DATABASE_URL": media_url}
    port = kit.free_port()
    print("four scanned photos through the media service …", flush=True)
    with kit.running_server(port=port, workers=1, env=env, log_path=data_dir / "seed.log"):
        kit.wait_for_outbox(consent_url)
        office = issuer.issue(sub="bench-office", school=TEMPLATE, roles=["office"])
        staff = issuer.issue(sub="bench-staff", school=TEMPLATE, roles=["staff"])
        media = seeding.seed_scanned_photos(port, office=office, staff=staff, pupil_ids=pupils[:4])
    for url in (consent_url, media_url):
        kit.vacuum_analyze(url)
    return consent_url, media_url, summary, media


def render(
    args: argparse.Namespace,
    summary: kit.SeedSummary,
    runs: dict[str, list[Result]],
    sizes: dict[str, list[seeding.TableSize]],
    seconds: dict[str, float],
) -> str:
    machine = kit.machine_description()
    n = args.schools
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine['nproc']} CPUs "
        f"({machine['cpu']}), Python {machine['python']}, PostgreSQL; load average "
        f"{os.getloadavg()[0]:.1f} when the run ended (other processes on the machine slow "
        "every row alike, and make the ratios noisy).",
        "",
        f"Template school: {summary.pupils:,} pupils, {summary.classes} classes, "
        f"{summary.guardians:,} carers, {summary.consent_records:,} consent records, "
        f"{summary.restricted} restricted, 4 scanned photos (seeded in "
        f"{seconds['seed']:.0f} s); copied in SQL into {n} schools, "
        f"{n * summary.pupils:,} pupils (copied in {seconds['clone']:.0f} s, "
        f"{'rows interleaved across schools' if args.interleave else 'each school together'}). "
        "`hallpass serve` "
        f"(1 worker); {args.concurrency} connections for the no-op and decisions (30 pupils), "
        f"{CHECK_CONNECTIONS} for the check; {args.duration:g} s per endpoint in "
        f"{args.rounds} rounds after {args.warmup:g} s of warm-up, each school asked once of each "
        "endpoint before. CPU ms/request: the "
        "server's process (or all PostgreSQL processes) over the measured seconds ÷ requests.",
        "",
        "| database | load | endpoint | req/s | p50 ms | p99 ms | server CPU ms/req "
        "| PostgreSQL CPU ms/req | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, results in runs.items():
        database, load = label.split(": ")
        for result in results:
            lines.append(
                f"| {database} | {load} | {result.name} | {result.rate:,.0f} "
                f"| {result.percentile(50):.1f} | {result.percentile(99):.1f} "
                f"| {result.server_ms:.2f} | {result.postgres_ms:.2f} "
                f"| {sum(result.sample.errors.values())} |"
            )
    baseline = {result.name: result for result in next(iter(runs.values()))}
    lines += [
        "",
        f"Ratio to the 1-school database (target: within {RATIO_TARGET:.0%}, "
        "i.e. req/s ≥ 0.8, server and PostgreSQL CPU per request ≤ 1.2):",
        "",
        "| run | endpoint | req/s ratio | server CPU/req ratio | PostgreSQL CPU/req ratio "
        "| within 20 %? |",
        "|---|---|---:|---:|---:|---|",
    ]
    for label, results in list(runs.items())[1:]:
        for result in results:
            if result.name == "no-op":
                continue
            base = baseline[result.name]
            rate = result.rate / base.rate
            server = result.server_ms / base.server_ms
            postgres = result.postgres_ms / base.postgres_ms if base.postgres_ms else float("nan")
            # The database's CPU is part of what a request costs: a school among 50 may not
            # make PostgreSQL work harder than a school alone either (NaN, no PostgreSQL CPU
            # measured for the 1-school run, judges nothing).
            met = (
                rate >= 1 - RATIO_TARGET
                and server <= 1 + RATIO_TARGET
                and not postgres > 1 + RATIO_TARGET
            )
            lines.append(
                f"| {label} | {result.name} | {rate:.2f} | {server:.2f} | {postgres:.2f} "
                f"| {'yes' if met else '**no**'} |"
            )
    for database, table_sizes in sizes.items():
        total = sum(size.bytes for size in table_sizes)
        lines += [
            "",
            f"{database}: {total / 2**20:,.0f} MiB in all (`pg_total_relation_size`: heap, "
            "indexes, TOAST).",
            "",
            "| table | rows | MiB | bytes per row |",
            "|---|---:|---:|---:|",
        ]
        for size in table_sizes:
            if size.rows == 0 and size.bytes < 65536:
                continue
            per_row = f"{size.bytes / size.rows:,.0f}" if size.rows else "—"
            lines.append(
                f"| {size.table} | {size.rows:,} | {size.bytes / 2**20:,.1f} | {per_row} |"
            )
    lines += [
        "",
        "Reproduce with `.venv/bin/python bench/scale.py` (PostgreSQL at "
        "`--postgres-url`; four databases `hallpass_scale_*`, dropped at the end unless "
        "`--keep`).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--schools", type=int, default=50)
    parser.add_argument("--pupils", type=int, default=2000, help="pupils per school")
    parser.add_argument("--classes", type=int, default=70, help="classes per school")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per endpoint")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=30, help="pupils per decision request")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="copy the consent rows school after school within each template row, so every "
        "page holds rows of every school (default: each school's rows together)",
    )
    parser.add_argument("--docs", action="store_true", help=f"rewrite '{SECTION}'")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = school_names(args.schools)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hallpass-scale-") as tmp:
        data_dir = Path(tmp)
        issuer = DevIssuer.load_or_create(
            data_dir / "dev-signing-key.json", "hallpass-dev", "hallpass"
        )
        started = time.perf_counter()
        one_consent, one_media, summary, template_media = seed_template(args, data_dir, issuer)
        seconds["seed"] = time.perf_counter() - started

        print(f"copying the school into {args.schools} schools …", flush=True)
        many = f"{args.schools}"
        many_consent = copy_database(
            args.postgres_url, one_consent.rsplit("/", 1)[1], f"hallpass_scale_consent_{many}"
        )
        many_media = copy_database(
            args.postgres_url, one_media.rsplit("/", 1)[1], f"hallpass_scale_media_{many}"
        )
        seconds["clone"] = seeding.clone_school(
            many_consent, ConsentBase.metadata, names[1:], interleave=args.interleave
        ) + seeding.clone_school(many_media, MediaBase.metadata, names[1:])
        for url in (many_consent, many_media):
            kit.vacuum_analyze(url)
        print(f"copied in {seconds['clone']:.0f} s", flush=True)

        def school(name: str, consent_url: str) -> School:
            head, cms = tokens(issuer, name)
            media = (
                template_media
                if name == TEMPLATE
                else [seeding.cloned_id(name, media_id) for media_id in template_media]
            )
            return School(name, pupils_of(consent_url, name), media, head, cms)

        one = [school(TEMPLATE, one_consent)]
        many_schools = [school(name, many_consent) for name in names]
        env_one = kit.server_env(data_dir, one_consent) | {"HALLPASS_MEDIA_DATABASE_URL": one_media}
        env_many = kit.server_env(data_dir, many_consent) | {
            "HALLPASS_MEDIA_DATABASE_URL": many_media
        }
        runs = measure(
            args,
            data_dir,
            servers=[
                ("1 school", env_one, one_consent),
                (f"{many} schools", env_many, many_consent),
            ],
            loads=[
                ("1 school: one school", "1 school", one),
                (f"{many} schools: 1 of {many}", f"{many} schools", [many_schools[-1]]),
                (f"{many} schools: all {many}", f"{many} schools", many_schools),
            ],
        )
        sizes = {
            f"{many}-school consent database": seeding.table_sizes(many_consent),
            f"{many}-school media database": seeding.table_sizes(many_media),
            "1-school consent database (the services' own bookkeeping per school)": (
                seeding.table_sizes(one_consent)
            ),
        }
        if not args.keep:
            for url in (one_consent, one_media, many_consent, many_media):
                kit.drop_database(args.postgres_url, url.rsplit("/", 1)[1])
    body = render(args, summary, runs, sizes, seconds)
    print()
    print(body)
    if args.docs:
        kit.replace_docs_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
