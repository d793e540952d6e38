"""Answer equivalence with a hard time budget: value rules in this process, then worker processes.

    from seedgrpo.grader import is_equivalent, check_answer_pairs
    is_equivalent("Thus the total is $36$ apples.", "36")               # True (prose read, no process)
    is_equivalent("\\frac{\\sqrt3}{3}", "\\frac{1}{\\sqrt{3}}")        # True (sympy in a worker)
    check_answer_pairs([("25\\%", "0.25"), ("11:00", "2:00")])          # [True, False]

Rules (docs/answers.md §4): both sides are read as a grader reads them (seedgrpo.answer_reading: boxes,
answer phrase, prose, repairs), rewritten into forms (labels, chains, lists, inequalities), and settled here
when the value rules can (equal canonical forms, exact rationals, percent, rounded decimals, times) or when
seedgrpo.quick_values shows them certainly different. Only the rest reach a worker
(seedgrpo/grader_worker.py: sympy, plain-text math, math-verify where our parser gives up), which is killed
when the pair runs past `timeout_s`; the budget therefore holds from any thread and needs no signals.
Results are cached by the pair of answer hashes. The pool starts on first use, one batch at a time (calls
from several threads queue on a lock), and is shut down at exit.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Sequence

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))
STARTUP_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core machine can take several seconds
CACHE_SIZE = 200_000  # pairs; ~100 bytes each
# One pair checked on its own gets math-verify's default budget; a reward batch (math_reward) keeps 1 s a pair.
IS_EQUIVALENT_TIMEOUT_S = 5.0
_RATIONAL = re.compile(r"-?\d+(?:/\d+)?\Z")
_HERE = Path(__file__).resolve().parent

__all__ = ["is_equivalent", "check_answer_pairs", "check_final_answer_pairs", "check_canonical_pairs", "grading_answer",
           "answer_to_canonical", "symbolic_equal", "grade_pair", "shutdown", "SympyPool"]


# ------------------------------------------------------------------------------------ caller side
def _answer_text(answer: object, name: str) -> str:
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise ValueError(f"{name} must be a str or a number, got {type(answer).__name__} {answer!r}")
    return answer if isinstance(answer, str) else repr(answer)


def answer_to_canonical(answer: object, name: str = "answer") -> str:
    """Canonical form of a reference or predicted answer: numbers via repr (27.0 -> '27'), a string with
    \\boxed in it is extracted first."""
    from seedgrpo import answers

    text = _answer_text(answer, name)
    if "\\boxed" in text or "\\fbox" in text:
        text = answers.extract_answer(text) or text
    return answers.canonicalize(text)


def grading_answer(answer: object, name: str = "answer") -> str:
    """The final answer a grader reads in a prediction or gold (seedgrpo.answer_reading.final_answer):
    numbers via repr, boxes (several boxes joined), answer tag or phrase, the cued value of prose."""
    text = _answer_text(answer, name)
    try:
        return answer_reading.final_answer(text)
    except Exception:  # noqa: BLE001 - a policy's text must never stop training: read it as no answer
        return ""


def is_equivalent(pred: str | int | float, gold: str | int | float, *,
                  timeout_s: float = IS_EQUIVALENT_TIMEOUT_S) -> bool:
    """True when pred and gold are the same answer (docs/answers.md §4); False when unsure or out of time.
    `pred` may be a whole model output: its final answer is read first."""
    return check_answer_pairs([(pred, gold)], timeout_s=timeout_s)[0]


def check_answer_pairs(pairs: Sequence[tuple[object, object]], *, timeout_s: float = 1.0) -> list[bool]:
    """Equivalence of each (prediction, gold) pair of raw answers or outputs. Pairs that the value rules
    settle (equal canonical forms, exact rationals, times, percent, rounded decimals) cost no process;
    only distinct pairs left undecided and not cached reach the worker pool."""
    _check_timeout(timeout_s)
    final = [(grading_answer(p, "pred"), grading_answer(g, "gold")) for p, g in pairs]
    return _grade(final, timeout_s, canonical=False)


def check_final_answer_pairs(pairs: Sequence[tuple[str, str]], *, timeout_s: float = 1.0) -> list[bool]:
    """check_answer_pairs for pairs already read by grading_answer (what math_reward holds)."""
    _check_timeout(timeout_s)
    return _grade(list(pairs), timeout_s, canonical=False)


def check_canonical_pairs(pairs: Sequence[tuple[str, str]], *, timeout_s: float = 1.0) -> list[bool]:
    """Equivalence of each (canonical, canonical) pair (what math_reward holds after its C++ batch)."""
    _check_timeout(timeout_s)
    return _grade(list(pairs), timeout_s, canonical=True)


def _check_timeout(timeout_s: object) -> None:
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")


def _grade(pairs: list[tuple[str, str]], timeout_s: float, *, canonical: bool) -> list[bool]:
    from seedgrpo import answers

    results: list[bool | None] = [None] * len(pairs)
    todo: dict[tuple[int, int], list[int]] = {}
    if not canonical:  # an option with its text against a letter or a value (`(B) 12` / `B`)
        pairs = [_choice_pair(a, b) for a, b in pairs]
    for i, (a, b) in enumerate(pairs):
        if a == b:
            results[i] = True
            continue
        if canonical and _RATIONAL.match(a) and _RATIONAL.match(b):
            results[i] = False  # canonical rationals are unique (a canonical form has lost its decimals)
            continue
        verdict = None if canonical else _rules_verdict(a, b, answers.canonicalize)
        if verdict is not None:
            results[i] = verdict
            continue
        key = (canonical, *_pair_key(a, b))
        cached = _CACHE.get(key)
        if cached is not None:
            results[i] = cached
        else:
            todo.setdefault(key, []).append(i)
    if todo:
        keys = list(todo)
        verdicts = _pool().check([pairs[todo[key][0]] for key in keys], timeout_s)
        for key, verdict in zip(keys, verdicts):
            _CACHE.put(key, verdict)
            for i in todo[key]:
                results[i] = verdict
    return [bool(r) for r in results]


def _choice_pair(a: str, b: str) -> tuple[str, str]:
    try:
        return answer_reading.choice_pair(a, b)
    except Exception:  # noqa: BLE001 - hostile text: compare the pair as written
        return a, b


def _rules_verdict(a: str, b: str, canonicalize) -> bool | None:
    """The in-process value rules' verdict on one pair: True, False, or None (undecided: the worker pool
    decides). Whatever a policy writes, this never raises: a rule that fails on a hostile form (`9/0`, a tower
    of powers, malformed LaTeX) leaves the pair to the worker, which runs under the pair's budget and is killed
    past it."""
    try:
        undecided = False
        for fa, fb in grading_rules.pair_forms(a, b):
            form = grading_rules.form_verdict(fa, fb, canonicalize, _certainly_different)
            if form:
                return True
            undecided |= form is None
        return None if undecided else False
    except Exception:  # noqa: BLE001 - see above
        return None


def _certainly_different(a: str, b: str) -> bool:
    from seedgrpo.answers_reference import _split_top

    return quick_values.certainly_different(a, b, _split_top)


def _pair_key(a: str, b: str) -> tuple[int, int]:
    from seedgrpo import answers

    return answers.canonical_hash(a), answers.canonical_hash(b)


class _LRU:
    def __init__(self, size: int):
        self._size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_CACHE = _LRU(CACHE_SIZE)


# ------------------------------------------------------------------------------------------- pool
class _Worker:
    """One `grader_worker.py` process: JSON lines in on stdin, `ready` then JSON lines out on stdout."""

    def __init__(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(_HERE / "grader_worker.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.ready = False
        self.task: int | None = None
        self.deadline = 0.0
        self.started = time.monotonic()

    def send(self, task: int, a: str, b: str, timeout_s: float) -> None:
        self.proc.stdin.write((json.dumps([task, a, b]) + "\n").encode())
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

    def _run(self, pairs: Sequence[tuple[str, str]], timeout_s: float) -> list[bool]:
        results = [False] * len(pairs)
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
                    raise RuntimeError(f"a grader worker exited while starting; run `{sys.executable} "
                                       f"{_HERE / 'grader_worker.py'}` to see why")
                if lines is None:  # crashed (e.g. out of memory): its pair is not equivalent
                    if worker.task is not None:
                        results[worker.task] = False
                    self._replace(worker)
                    continue
                for line in lines:
                    if line == b"ready":
                        worker.ready = True
                    elif line and worker.task is not None:
                        task, verdict = json.loads(line)
                        if task == worker.task:
                            results[task], worker.task = bool(verdict), None
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.task is not None and now >= worker.deadline:
                    results[worker.task] = False  # out of budget: killed, replaced in the background
                    self._replace(worker)
                elif not worker.ready and now - worker.started > STARTUP_TIMEOUT_S:
                    self.close()
                    raise RuntimeError(
                        f"a sympy worker did not start within {STARTUP_TIMEOUT_S:.0f} s; run "
                        f"`{sys.executable} {_HERE / 'grader_worker.py'}` to see why")
        return results

    def close(self) -> None:
        self._workers += self._spares
        self._spares = []
        for worker in self._workers:
            try:
                worker.proc.stdin.close()  # the worker exits at end of input
            except Exception:  # noqa: BLE001
                pass
        deadline = time.monotonic() + 1.0
        for worker in self._workers:
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.kill()
        self._workers = []


_POOL: SympyPool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> SympyPool:
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




from seedgrpo import answer_reading, grading_rules, quick_values  # noqa: E402  (pure Python; after the pool so the module reads top-down)
from seedgrpo.grader_worker import grade_pair, symbolic_equal  # noqa: E402,F401  (the worker's comparison)
