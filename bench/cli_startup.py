# ruff: noqa: RUF001
"""How long the ``hallpass`` command takes to start: short commands against ``python -c pass``.

Runs ``python -c pass``, ``hallpass --help`` and ``hallpass token --role head`` N times each,
interleaved (one of each per round, so a busy moment of the machine falls on all three alike),
in a fresh data dir whose dev key is made before timing. Prints median and p90 wall time and
each command's ratio to ``python -c pass`` measured in the same run (target: <= 5x).

    .venv/bin/python bench/cli_startup.py [--runs 30] [--docs]

Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = ROOT / "docs" / "benchmarks.md"
SECTION = "## CLI start-up (bench/cli_startup.py)"
TARGET_RATIO = 5.0


def hallpass_script() -> str:
    # The console script the virtualenv installs: what a person types.
    script = Path(sys.executable).with_name("hallpass")
    if not script.is_file():
        raise SystemExit(f"{script} is missing: run `uv sync --frozen` first")
    return str(script)


def command_environment(scratch: Path) -> dict[str, str]:
    # The shell's HALLPASS_* settings would make the run measure someone's configuration.
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("HALLPASS")
    }
    environment["HALLPASS_DATA_DIR"] = str(scratch / "data")
    # An installed Hallpass runs from compiled bytecode; a shell with PYTHONDONTWRITEBYTECODE
    # would make every run compile every module again. The cache goes to the run's own scratch
    # directory, filled by the untimed first round, so the checkout is left as it was.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    return environment


class Timing(NamedTuple):
    wall: float
    # User + system CPU seconds of the process: on a machine busy with other work the wall time
    # also counts the waits for a CPU, the CPU time does not.
    cpu: float


def time_once(argv: Sequence[str], environment: dict[str, str]) -> Timing:
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=environment, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
    return Timing(wall, usage.ru_utime + usage.ru_stime)


def p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def measure(runs: int) -> tuple[list[tuple[str, list[Timing]]], str]:
    script = hallpass_script()
    commands: list[tuple[str, list[str]]] = [
        ("`python -c pass`", [sys.executable, "-c", "pass"]),
        ("`hallpass --help`", [script, "--help"]),
        ("`hallpass token --role head`", [script, "token", "--role", "head"]),
    ]
    with tempfile.TemporaryDirectory(prefix="hallpass-cli-bench-") as tmp:
        environment = command_environment(Path(tmp))
        # The first round makes the dev key (a 2,048-bit RSA key, once per data dir) and the
        # bytecode cache: not timed.
        for _, argv in commands:
            time_once(argv, environment)
        timings: list[tuple[str, list[Timing]]] = [(name, []) for name, _ in commands]
        for _ in range(runs):
            for (_, argv), (_, times) in zip(commands, timings, strict=True):
                times.append(time_once(argv, environment))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return timings, f"load average {load:.1f} on {os.cpu_count()} CPUs"


def render(timings: list[tuple[str, list[Timing]]], runs: int, conditions: str) -> str:
    baseline = statistics.median(timing.wall for timing in timings[0][1])
    baseline_cpu = statistics.median(timing.cpu for timing in timings[0][1])
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {runs} runs of each command "
        f"interleaved (bytecode compiled beforehand, as an installed copy has it), {conditions} "
        f"when the run began; Python {sys.version.split()[0]}. Ratio: the command's median ÷ "
        f"`python -c pass`'s median in the same run (target ≤ {TARGET_RATIO:g}×); CPU: user + "
        "system time of the process, which a busy machine inflates less than the wall time.",
        "",
        "| command | median ms | p90 ms | ratio | met? | CPU median ms | CPU ratio |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for index, (name, times) in enumerate(timings):
        walls = [timing.wall for timing in times]
        median = statistics.median(walls)
        cpu = statistics.median(timing.cpu for timing in times)
        ratio = median / baseline
        met = "—" if index == 0 else ("yes" if ratio <= TARGET_RATIO else "**no**")
        lines.append(
            f"| {name} | {median * 1000:.1f} | {p90(walls) * 1000:.1f} | {ratio:.1f}× | {met} "
            f"| {cpu * 1000:.1f} | {cpu / baseline_cpu:.1f}× |"
        )
    return "\n".join(lines) + "\n"


def replace_docs_section(body: str) -> None:
    text = DOCS_FILE.read_text(encoding="utf-8")
    start = text.find(SECTION)
    block = f"{SECTION}\n\n{body}"
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        after = text.find("\n## ", start + len(SECTION))
        rest = "" if after < 0 else text[after:]
        text = text[:start] + block + rest
    DOCS_FILE.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--docs", action="store_true", help=f"rewrite '{SECTION}' in docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    runs: int = args.runs
    timings, conditions = measure(runs)
    body = render(timings, runs, conditions)
    print(body)
    if args.docs:
        replace_docs_section(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
