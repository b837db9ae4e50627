"""Scan workers: every decode of an uploaded picture happens in a separate, bounded process.

A decoder's memory and time are set by the file, and a file can be built to exhaust either. So
pictures are decoded and scanned in worker processes, never in the API process: each worker caps
its own address space (``RLIMIT_AS``) before it loads anything, and the API process kills a
worker that has not answered within the time limit. A worker that runs out of memory, crashes or
overruns costs only itself: the file is reported unscannable, the worker is replaced by a new one
for the next file, and the API process goes on.

Workers are long-lived, so the OCR and face models are loaded once per worker, not per file. They
start on first use (an idle service loads no models) and stop with the app, or with the API
process: a worker whose parent is gone reads the end of its request pipe and exits.

A request that scans a file it is given (``POST /v1/publications:check-file``) waits for the
worker on the event loop (``scan_async``): the pipes are watched by the loop, so no thread is held
while a picture is read, and the request's own time limit is shorter than the worker's. Past it
the request answers 503 ``scan_too_slow``; the worker is left to finish that file (its own limit
still applies) and then serves the next, so a slow picture costs no reload of the models.

A worker is ``python -m hallpass_media.scanning.scan_worker``, started by ``ScanWorkers`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from hallpass_kit.errors import ServiceUnavailable
from hallpass_media.scanning.images import CheckedImage, ImageLimits, ImageRefused
from hallpass_media.scanning.results import ScanResult

logger = logging.getLogger("hallpass.media.scan")

# Loading the OCR models takes a few seconds; a worker not ready after this long never will be.
STARTUP_SECONDS = 120.0
# Seconds a client told "every worker is busy" should wait before trying again.
BUSY_RETRY_AFTER = 5
LENGTH = struct.Struct(">Q")
SCAN, CHECK = b"s", b"c"


class ImageUnscannable(ImageRefused):
    """The picture exhausted, crashed or outlasted its scan worker; it is never tried again."""

    def __init__(self, detail: str) -> None:
        super().__init__("image_unscannable", detail)


class ScanWorkersBusy(ServiceUnavailable):
    """Every worker stayed busy for the whole wait; the client should try again shortly."""

    code = "scanner_busy"


class ScanTooSlow(ServiceUnavailable):
    """A request's scan did not finish within the request's time limit: nothing was decided."""

    code = "scan_too_slow"


class ScanWorkersUnavailable(ServiceUnavailable):
    """No worker could be started (the memory cap is too small to load the models, say)."""

    code = "scanner_unavailable"


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to know; passed to it on its command line."""

    limits: ImageLimits
    ocr: bool = True
    memory_bytes: int = 3 * 1024 * 1024 * 1024
    seconds: float = 60.0

    def to_argument(self) -> str:
        return json.dumps(
            {"limits": asdict(self.limits), "ocr": self.ocr, "memory_bytes": self.memory_bytes}
        )


class _WorkerLost(Exception):
    """The worker stopped answering: it died, or it was killed for overrunning."""


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, config: WorkerConfig) -> None:
        to_worker_read, self._requests = os.pipe()
        self._replies, from_worker_write = os.pipe()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "hallpass_media.scanning.scan_worker",
                    config.to_argument(),
                    str(to_worker_read),
                    str(from_worker_write),
                ],
                pass_fds=(to_worker_read, from_worker_write),
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C meant for the server is the server's to pass on.
                start_new_session=True,
            )
        finally:
            os.close(to_worker_read)
            os.close(from_worker_write)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        reply = self._receive(time.monotonic() + STARTUP_SECONDS)
        if reply.get("reply") != "ready":
            raise _WorkerLost(f"the worker did not start: {reply}")

    def ask(self, kind: bytes, data: bytes, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        self._send(kind + LENGTH.pack(len(data)) + data, deadline)
        return self._receive(deadline)

    async def send_async(self, kind: bytes, data: bytes, deadline: float) -> None:
        """Send a request with the event loop watching the pipe (no thread waits)."""
        view = memoryview(kind + LENGTH.pack(len(data)) + data)
        os.set_blocking(self._requests, False)
        while view:
            try:
                view = view[os.write(self._requests, view) :]
            except BlockingIOError:
                await _ready(self._requests, writing=True, deadline=deadline)
            except BrokenPipeError as error:
                raise _WorkerLost(self._how_it_ended()) from error

    async def receive_async(self, deadline: float) -> dict[str, Any]:
        """The worker's reply, read as the event loop sees it arrive (no thread waits)."""
        os.set_blocking(self._replies, False)
        header = await self._read_async(LENGTH.size, deadline)
        body = await self._read_async(LENGTH.unpack(header)[0], deadline)
        reply: dict[str, Any] = json.loads(body)
        return reply

    async def _read_async(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        wanted = size
        while wanted:
            try:
                chunk = os.read(self._replies, min(wanted, 1 << 20))
            except BlockingIOError:
                await _ready(self._replies, writing=False, deadline=deadline)
                continue
            if not chunk:
                raise _WorkerLost(self._how_it_ended())
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def stop(self) -> None:
        """Kill the process and reap it; safe to call more than once."""
        for descriptor in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._requests = self._replies = -1
        stop_process(self.process)

    def _send(self, message: bytes, deadline: float) -> None:
        view = memoryview(message)
        os.set_blocking(self._requests, False)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            _, writable, _ = select.select([], [self._requests], [], remaining)
            if not writable:
                continue
            try:
                view = view[os.write(self._requests, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError as error:
                raise _WorkerLost(self._how_it_ended()) from error

    def _receive(self, deadline: float) -> dict[str, Any]:
        header = self._read(LENGTH.size, deadline)
        body = self._read(LENGTH.unpack(header)[0], deadline)
        reply: dict[str, Any] = json.loads(body)
        return reply

    def _read(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        wanted = size
        while wanted:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self._replies], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._replies, min(wanted, 1 << 20))
            if not chunk:
                raise _WorkerLost(self._how_it_ended())
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def _how_it_ended(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            return f"it was killed by signal {signal.Signals(-code).name}"
        return f"it exited with status {code}"


async def _ready(descriptor: int, *, writing: bool, deadline: float) -> None:
    """Wait on the event loop until ``descriptor`` can be written or read; TimeoutError past
    ``deadline`` (``time.monotonic``)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writing:
        loop.add_writer(descriptor, wake)
    else:
        loop.add_reader(descriptor, wake)
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        await asyncio.wait_for(ready, remaining)
    finally:
        if writing:
            loop.remove_writer(descriptor)
        else:
            loop.remove_reader(descriptor)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def _stop_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.stop()
    workers.clear()


class ScanWorkers:
    """A small supervised pool of scan workers, shared by the scan job and the requests.

    ``scan`` and ``check`` wait up to ``wait_seconds`` for a free worker and then answer
    ``ScanWorkersBusy`` (503 with Retry-After): a request never queues without bound. A worker
    that fails a file is stopped and replaced; the file gets ``ImageUnscannable``.
    """

    def __init__(self, config: WorkerConfig, *, size: int = 2, wait_seconds: float = 30.0) -> None:
        self.config = config
        self.size = size
        self.wait_seconds = wait_seconds
        self._free = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}
        self._workers: set[_Worker] = set()
        self._closed = False
        # Scans whose request stopped waiting (time limit, client gone), still being read so the
        # worker can serve again; held here so the loop does not drop them.
        self._finishing: set[asyncio.Task[None]] = set()
        # Workers are stopped with the pool even if nobody calls ``close`` (a test's app simply
        # dropped, or the interpreter exiting).
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)

    def scan(self, data: bytes) -> ScanResult:
        """Scan ``data`` in a worker (raises ``ImageRefused``, ``ImageUnscannable`` included)."""
        return ScanResult.from_json(self._run(SCAN, data)["result"])

    def check(self, data: bytes) -> CheckedImage:
        """Check the header and decode the whole picture in a worker, as an upload is."""
        return CheckedImage(**self._run(CHECK, data)["result"])

    async def scan_async(self, data: bytes, *, seconds: float) -> ScanResult:
        """``scan`` from a coroutine, holding no thread while it waits, within ``seconds`` in all
        (for a free worker and for its answer): past that ``ScanTooSlow`` (503).

        Waiting for a free worker is also bounded by ``wait_seconds`` (``ScanWorkersBusy``).
        """
        started = time.monotonic()
        deadline = started + seconds
        await self._acquire_async(min(deadline, started + self.wait_seconds), deadline)
        handed_over = False
        try:
            worker = await self._take_async()
            stage = "taken"
            try:
                if time.monotonic() >= deadline:
                    raise TimeoutError
                stage = "sending"
                await worker.send_async(SCAN, data, deadline)
                stage = "sent"
                reply = await worker.receive_async(deadline)
            except (TimeoutError, asyncio.CancelledError) as stopped:
                if stage == "sent":
                    # The worker is busy with the file: let it finish (within its own limit) in
                    # the background and serve again, rather than kill it and reload its models.
                    self._finish_later(worker, started + self.config.seconds)
                    handed_over = True
                elif stage == "taken":
                    self._give_back(worker)  # it never saw the file
                else:
                    self._discard(worker)  # half a request in its pipe: it cannot go on
                if isinstance(stopped, asyncio.CancelledError):
                    raise
                raise ScanTooSlow(
                    f"The picture was not scanned within {seconds:g} seconds; nothing was "
                    "decided. Try again later, or check a smaller copy.",
                    retry_after=BUSY_RETRY_AFTER,
                ) from None
            except _WorkerLost as lost:
                self._discard(worker)
                logger.warning("scan worker %s lost during a file: %s", worker.pid, lost)
                raise ImageUnscannable(
                    f"The picture could not be scanned: its scan worker failed ({lost})."
                ) from None
            except BaseException:
                self._discard(worker)
                raise
            self._settle(worker, reply)
        finally:
            if not handed_over:
                self._free.release()
        return ScanResult.from_json(self._answer(reply)["result"])

    async def _acquire_async(self, busy_at: float, deadline: float) -> None:
        # The pool's slots are shared with threads (the scan job), so a slot is polled for
        # rather than awaited: a short sleep on the loop between tries holds no thread.
        pause = 0.005
        while not self._free.acquire(blocking=False):
            now = time.monotonic()
            if now >= deadline:
                raise ScanTooSlow(
                    "Every scan worker stayed busy past this request's time limit; nothing was "
                    "decided. Try again shortly.",
                    retry_after=BUSY_RETRY_AFTER,
                )
            if now >= busy_at:
                raise ScanWorkersBusy(
                    "Every scan worker is busy; try again shortly.",
                    retry_after=BUSY_RETRY_AFTER,
                )
            await asyncio.sleep(min(pause, max(0.0, min(busy_at, deadline) - now)))
            pause = min(pause * 2, 0.05)

    async def _take_async(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ScanWorkersUnavailable("The scan workers are shutting down.")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy[worker.pid] = worker
                    return worker
                self._workers.discard(worker)
                worker.stop()
        # Only a new worker is started in a thread: it blocks while it loads its models.
        return await asyncio.to_thread(self._take)

    def _finish_later(self, worker: _Worker, deadline: float) -> None:
        async def finish() -> None:
            try:
                reply = await worker.receive_async(deadline)
            except BaseException:
                self._discard(worker)
                raise
            finally:
                self._free.release()
            if reply.get("reply") == "exhausted":
                self._discard(worker)
            else:
                self._give_back(worker)

        task = asyncio.get_running_loop().create_task(finish())
        self._finishing.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a scan worker was stopped after a late file: %r", task.exception())

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers, busy ones included (for operators and tests)."""
        with self._lock:
            return sorted(worker.pid for worker in self._workers)

    def busy_pids(self) -> list[int]:
        """Process ids of the workers scanning a file at this moment."""
        with self._lock:
            return sorted(self._busy)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._finalizer()

    def _run(self, kind: bytes, data: bytes) -> dict[str, Any]:
        if not self._free.acquire(timeout=self.wait_seconds):
            raise ScanWorkersBusy(
                "Every scan worker is busy; try again shortly.",
                retry_after=BUSY_RETRY_AFTER,
            )
        try:
            worker = self._take()
            try:
                reply = worker.ask(kind, data, self.config.seconds)
            except TimeoutError:
                self._discard(worker)
                raise ImageUnscannable(
                    f"The picture could not be scanned within {self.config.seconds:g} seconds."
                ) from None
            except _WorkerLost as lost:
                self._discard(worker)
                logger.warning("scan worker %s lost during a file: %s", worker.pid, lost)
                raise ImageUnscannable(
                    f"The picture could not be scanned: its scan worker failed ({lost})."
                ) from None
            self._settle(worker, reply)
        finally:
            self._free.release()
        return self._answer(reply)

    def _settle(self, worker: _Worker, reply: dict[str, Any]) -> None:
        """Give the worker back after a reply, unless it ran out of memory (then it goes)."""
        if reply["reply"] == "exhausted":
            self._discard(worker)
            raise ImageUnscannable(
                "The picture could not be scanned: it needs more memory than a scan worker "
                f"has ({self.config.memory_bytes // (1024 * 1024):,} MiB)."
            )
        self._give_back(worker)

    @staticmethod
    def _answer(reply: dict[str, Any]) -> dict[str, Any]:
        if reply["reply"] == "refused":
            raise ImageRefused(reply["code"], reply["detail"])
        if reply["reply"] == "failed":
            raise ImageUnscannable(
                f"The picture could not be scanned: the scanner failed ({reply['error']})."
            )
        return reply

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ScanWorkersUnavailable("The scan workers are shutting down.")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy[worker.pid] = worker
                    return worker
                self._workers.discard(worker)
                worker.stop()
        worker = self._start()
        with self._lock:
            self._busy[worker.pid] = worker
        return worker

    def _start(self) -> _Worker:
        worker = _Worker(self.config)
        with self._lock:
            self._workers.add(worker)
        try:
            worker.wait_ready()
        except (TimeoutError, _WorkerLost, ValueError) as error:
            self._discard(worker)
            logger.error("a scan worker could not start: %s", error)
            raise ScanWorkersUnavailable(
                "The scanner could not be started; nothing was stored.", retry_after=30
            ) from error
        logger.info("scan worker %s started", worker.pid)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.pop(worker.pid, None)
            if self._closed:
                self._workers.discard(worker)
            else:
                self._idle.append(worker)
                return
        worker.stop()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.pop(worker.pid, None)
            self._workers.discard(worker)
        worker.stop()
