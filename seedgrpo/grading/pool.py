"""The grader's worker pool: processes that grade one pair each under a hard per-pair deadline.

    from seedgrpo.grading.pool import SympyPool
    SympyPool(workers=2).check([("\\frac{\\sqrt3}{3}", "\\frac{1}{\\sqrt{3}}")], timeout_s=5.0)   # [True]

Each worker is `python -m seedgrpo.grading.worker` (sympy, latex2sympy, math-verify; no torch). A worker
still busy when its pair's deadline passes is killed and replaced by a warm spare, so the budget holds from
any thread and needs no signals. seedgrpo.grading.equivalence sends here only the pairs its value rules left
open; the pool starts on first use, one batch at a time (calls from several threads queue on a lock), and
is shut down at exit.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Sequence

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))
STARTUP_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core machine can take several seconds
_WORKER_MODULE = f"{__package__}.worker"
_WORKER_COMMAND = [sys.executable, "-m", _WORKER_MODULE]
_WORKER_HINT = " ".join(_WORKER_COMMAND)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding seedgrpo/

__all__ = ["SympyPool", "pool", "pool_started", "shutdown", "DEFAULT_WORKERS", "STARTUP_TIMEOUT_S"]


class _Worker:
    """One `python -m seedgrpo.grading.worker` process: JSON lines in on stdin; `ready`, then replies."""

    def __init__(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        # Started from the directory that holds this seedgrpo package, so that the worker imports the same
        # copy as its parent (an uninstalled checkout, or another seedgrpo earlier on the path).
        self.proc = subprocess.Popen(
            _WORKER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=_PACKAGE_ROOT, close_fds=True)
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.ready = False
        self.task: int | None = None
        self.deadline = 0.0
        self.started = time.monotonic()

    def send(self, task: int, a: str, b: str, timeout_s: float) -> None:
        self.proc.stdin.write((json.dumps([task, a, b, timeout_s]) + "\n").encode())
        self.proc.stdin.flush()
        self.task, self.deadline = task, time.monotonic() + timeout_s

    def read_lines(self) -> list[bytes] | None:
        """Complete lines now available, or None when the process has gone."""
        data = os.read(self.fd, 1 << 16)
        if not data:
            return None
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return lines

    def kill(self) -> None:
        try:
            self.proc.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
        # Reaped in the background: a worker killed inside a huge allocation can take seconds to exit (the
        # kernel frees its memory), and the batch must not wait for that.
        threading.Thread(target=self.proc.wait, daemon=True).start()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass


class SympyPool:
    """Worker processes with a per-request deadline; usable from any thread (one batch at a time)."""

    def __init__(self, workers: int = DEFAULT_WORKERS):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.size = workers
        self._workers: list[_Worker] = []
        self._spares: list[_Worker] = []  # one spare, started with the pool and after each kill
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def started(self) -> bool:
        return bool(self._workers)

    def check(self, pairs: Sequence[tuple[str, str]], timeout_s: float) -> list[bool]:
        """The worker's verdict on each pair (False past `timeout_s` seconds)."""
        return [verdict for verdict, _ in self.check_tiers(pairs, timeout_s)]

    def check_tiers(self, pairs: Sequence[tuple[str, str]], timeout_s: float) -> list[tuple[bool, str]]:
        """(verdict, tier) of each pair: the tier the worker reports (worker.grade_pair_tier), "timeout" for
        a pair killed at its deadline, "crash" for a worker that died on it."""
        with self._lock:
            if self._pid != os.getpid():  # forked child: the pipes belong to the parent's workers
                self._workers, self._spares, self._pid = [], [], os.getpid()
            while len(self._workers) < min(self.size, max(1, len(pairs))):
                self._workers.append(_Worker())
            if not self._spares:  # warm before it is needed: a kill then costs no interpreter start
                self._spares.append(_Worker())
            return self._run(pairs, timeout_s)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker and put the spare in its place (already importing, often ready: a hostile answer
        then costs its budget, not a fresh interpreter's start-up); a new spare starts in the background."""
        worker.kill()
        self._workers[self._workers.index(worker)] = self._spares.pop(0) if self._spares else _Worker()
        self._spares.append(_Worker())

    def _run(self, pairs: Sequence[tuple[str, str]], timeout_s: float) -> list[tuple[bool, str]]:
        results = [(False, "timeout")] * len(pairs)
        pending = deque(range(len(pairs)))
        while pending or any(w.task is not None for w in self._workers):
            for worker in list(self._workers):
                if pending and worker.ready and worker.task is None:
                    task = pending.popleft()
                    try:
                        worker.send(task, *pairs[task], timeout_s)
                    except OSError:  # the process died between requests
                        pending.appendleft(task)
                        self._replace(worker)
            waiting = [w for w in self._workers if w.task is not None or not w.ready]
            deadlines = [w.deadline if w.task is not None else w.started + STARTUP_TIMEOUT_S for w in waiting]
            readable, _, _ = select.select([w.fd for w in waiting], [], [],
                                           max(0.0, min(deadlines) - time.monotonic()))
            for worker in [w for w in waiting if w.fd in readable]:
                lines = worker.read_lines()
                if lines is None and not worker.ready:  # failed to start: replacing it would loop forever
                    self.close()
                    raise RuntimeError(f"a grader worker exited while starting; run `{_WORKER_HINT}` in "
                                       f"{_PACKAGE_ROOT} to see why")
                if lines is None:  # crashed (e.g. out of memory): its pair is not equivalent
                    if worker.task is not None:
                        results[worker.task] = (False, "crash")
                    self._replace(worker)
                    continue
                for line in lines:
                    if line == b"ready":
                        worker.ready = True
                    elif line and worker.task is not None:
                        task, verdict, tier = json.loads(line)
                        if task == worker.task:
                            results[task], worker.task = (bool(verdict), str(tier)), None
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.task is not None and now >= worker.deadline:
                    # out of budget: killed, replaced in the background
                    results[worker.task] = (False, "timeout")
                    self._replace(worker)
                elif not worker.ready and now - worker.started > STARTUP_TIMEOUT_S:
                    self.close()
                    raise RuntimeError(
                        f"a sympy worker did not start within {STARTUP_TIMEOUT_S:.0f} s; run "
                        f"`{_WORKER_HINT}` in {_PACKAGE_ROOT} to see why")
        return results

    def close(self) -> None:
        self._workers += self._spares
        self._spares = []
        for worker in self._workers:
            try:
                worker.proc.stdin.close()  # the worker exits at end of input
            except Exception:  # noqa: BLE001
                pass
        _wait_all(self._workers, 1.0)
        for worker in self._workers:
            worker.kill()
        # A killed process is gone within milliseconds unless it was inside a huge allocation: wait a little,
        # so that shutdown() returns with its workers stopped (a slow exit, e.g. with torch loaded, then
        # still ends here), never for long.
        _wait_all(self._workers, 2.0)
        self._workers = []


def _wait_all(workers: list[_Worker], seconds: float) -> None:
    """Wait for the workers' processes to exit, `seconds` at most for all of them together."""
    deadline = time.monotonic() + seconds
    for worker in workers:
        try:
            worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


_POOL: SympyPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> SympyPool:
    """The process-wide pool (created on first use; its processes start on the first check)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = SympyPool()
        return _POOL


def pool_started() -> bool:
    """Whether any sympy worker process is running (False until something needed sympy)."""
    return _POOL is not None and _POOL.started


def shutdown() -> None:
    """Stop the worker processes (registered with atexit; the next check starts a new pool)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL._pid == os.getpid():
            _POOL.close()
        _POOL = None


atexit.register(shutdown)
