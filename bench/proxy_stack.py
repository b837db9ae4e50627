"""Services apart on one machine, for the benchmarks: consent, media and comms each as its own
``hallpass serve <service>`` process, and ``hallpass serve gateway`` in proxy mode in front.

    .venv/bin/python bench/proxy_stack.py --port 8000 [--workers 1]

Every process gets this process's environment (the benchmark sets the data dir and database
URLs, as for an all-in-one run) plus each service's address. The services start one after another
(each makes or reads the shared dev and service keys), each once healthy; the gateway last, so its
/healthz answering means the whole stack is up. On SIGTERM or SIGINT every child is stopped and
this process exits; the benchmark runs it as one process tree, so the CPU of all of them counts.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from types import FrameType

HOST = "127.0.0.1"
SERVICES = ("consent", "media", "comms")
# Generous enough that one load client on one token is never refused: the limiter's cost is
# measured, not its limits.
UNLIMITED = "1000000000"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"the bench only talks to {HOST}: {url}")
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start(
    what: str, port: int, workers: int, env: dict[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    hallpass = Path(sys.executable).with_name("hallpass")
    command = [str(hallpass), "serve", what, "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers)]
    log = (log_dir / f"{what}.log").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(process: subprocess.Popen[bytes], url: str, what: str, log_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not healthy(url):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log_dir}/{what}.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not healthy after 120 s; see {log_dir}/{what}.log")
        time.sleep(0.2)


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            process.kill()
            process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True, help="the gateway's port")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per process")
    parser.add_argument("--log-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)

    ports = {service: free_port() for service in SERVICES}
    env = dict(os.environ)
    for service, port in ports.items():
        env[f"HALLPASS_{service.upper()}_URL"] = f"http://{HOST}:{port}"
    env.update(
        HALLPASS_GATEWAY_RATE_LIMIT_IP_PER_SECOND=UNLIMITED,
        HALLPASS_GATEWAY_RATE_LIMIT_IP_BURST=UNLIMITED,
        HALLPASS_GATEWAY_RATE_LIMIT_CLIENT_PER_SECOND=UNLIMITED,
        HALLPASS_GATEWAY_RATE_LIMIT_CLIENT_BURST=UNLIMITED,
    )

    processes: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for service, port in ports.items():
            process = start(service, port, args.workers, env, args.log_dir)
            processes.append(process)
            wait_healthy(process, f"http://{HOST}:{port}", service, args.log_dir)
        gateway = start("gateway", args.port, args.workers, env, args.log_dir)
        processes.append(gateway)
        print(f"proxy stack up: gateway on {HOST}:{args.port}, services {ports}", flush=True)
        while not stopping:
            for process in processes:
                if process.poll() is not None:
                    print(f"a child exited with {process.returncode}", flush=True)
                    return 1
            time.sleep(0.2)
    finally:
        stop(processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
