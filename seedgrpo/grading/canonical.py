"""The compiled answer pipeline: extraction, canonical form, hashing and per-group clustering.

SEED-GRPO clusters the G completions of a prompt by meaning; for math, by final answer. Raw string
comparison counts `1/2`, `\\frac12` and `0.5` as three answers and inflates the semantic entropy; here they
share one canonical form and one hash, while `(1,2)` and `1,2` (or `1,000` and `1,0`) stay apart.
docs/answers.md is the spec. `backend="c"` (default) runs the C++ core seedgrpo._C (batch calls release
the GIL and split the batch over threads); `backend="python"` runs the readable reference
seedgrpo.grading.reference; both give identical output (tests/test_answers_equivalence.py). The public
facade is seedgrpo.answers (seedgrpo.grading.answers), which adds is_equivalent.

    from seedgrpo import answers
    answers.extract_answer("... so the answer is $\\boxed{\\frac12}$.")   # '\\frac12'
    answers.canonicalize("0.5")                                           # '1/2'
    hashes = answers.answer_hashes(completions)                           # LongTensor, < 0: no answer
    ids = answers.cluster_ids(hashes, group_size=8)                       # 0..k-1 within each group
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Sequence

from . import reference as _reference
from .reference import MAX_ANSWER_BYTES, MAX_DIGITS, MAX_EXPONENT, MAX_NESTING  # noqa: F401

if TYPE_CHECKING:
    import torch

__all__ = [
    "extract_answer", "canonicalize", "extract_and_canonicalize", "answer_hashes", "cluster_ids",
    "canonical_hash", "MAX_ANSWER_BYTES", "MAX_NESTING", "MAX_DIGITS", "MAX_EXPONENT",
]

_BACKENDS = ("c", "python")


def _compiled():
    try:
        from .. import _C
    except ImportError as err:  # pragma: no cover - depends on the build
        raise ImportError(
            "seedgrpo._C is not built: run `.venv/bin/python setup.py build_ext --inplace` "
            "(or pass backend='python' for the pure-Python reference)"
        ) from err
    return _C


def canonical_hash(canonical: str) -> int:
    """The answer hash of a canonical form: FNV-1a 64 of its UTF-8 bytes, top bit cleared (docs §3)."""
    try:
        return _compiled().fnv1a64(canonical.encode("utf-8", "surrogatepass")) & 0x7FFFFFFFFFFFFFFF
    except ImportError:  # pragma: no cover - depends on the build
        return _reference.canonical_hash(canonical)


def _check_backend(backend: str) -> str:
    """The backend to run: `backend`, or "python" when "c" is asked for and seedgrpo._C was not built (an
    install with SEEDGRPO_SKIP_EXTENSION=1): same answers, serial and slower, said once."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "c" and not _extension_built():
        return "python"
    return backend


_extension_state: list = []  # [bool] once probed


def _extension_built() -> bool:
    if not _extension_state:
        try:
            _compiled()
            _extension_state.append(True)
        except ImportError:
            warnings.warn("seedgrpo._C is not built (installed with SEEDGRPO_SKIP_EXTENSION=1?): answers use the "
                          "Python reference, same results, slower; build it with `python setup.py build_ext "
                          "--inplace`", stacklevel=3)
            _extension_state.append(False)
    return _extension_state[0]


def _flags(units: bool, degrees: bool, percent: bool) -> int:
    return (_reference.UNITS if units else 0) | (_reference.DEGREES if degrees else 0) | (
        _reference.PERCENT if percent else 0)


def _check_threads(threads: int) -> None:
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0 = all cores), got {threads!r}")


def _check_texts(texts: Sequence[str]) -> Sequence[str]:
    """Python-backend twin of the C++ input check (same messages)."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(
            f"texts must be a list of str, got a single {type(texts).__name__}: wrap it in a list")
    texts = tuple(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"texts[{i}] must be str, got {type(text).__name__}: pass completions as a list of str")
    return texts


def _check_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be str, got {type(value).__name__}")


def extract_answer(text: str, *, backend: str = "c") -> str | None:
    """The final answer of a completion, unchanged: the last non-empty `\\boxed{…}` / `\\fbox{…}` with
    balanced braces (or `\\boxed 5`), else the last `<answer>…</answer>`, else the text after the last
    "answer:" / "answer is" (as in "The final answer is $5$."); None if there is none."""
    backend = _check_backend(backend)
    _check_str(text, "text")
    return _compiled().extract_answer(text) if backend == "c" else _reference.extract_answer(text)


def canonicalize(answer: str, *, units: bool = True, degrees: bool = True, percent: bool = True,
                 backend: str = "c") -> str:
    """The canonical form of an extracted answer (docs/answers.md): `0.5`, `\\frac{1}{2}`, `\\dfrac12`,
    `2/4` -> `1/2`; `x = 5` -> `5`; `\\text{(B)}` -> `B`; `\\{3,1\\}` -> `\\{1,3\\}`. `units`, `degrees`,
    `percent` strip trailing unit words / `^\\circ` / `%` (all on by default)."""
    backend = _check_backend(backend)
    _check_str(answer, "answer")
    flags = _flags(units, degrees, percent)
    if backend == "c":
        return _compiled().canonicalize(answer, flags)
    return _reference.canonicalize(answer, flags)


def extract_and_canonicalize(texts: Sequence[str], *, threads: int = 0, backend: str = "c",
                             units: bool = True, degrees: bool = True,
                             percent: bool = True) -> list[str | None]:
    """Canonical final answer of every completion; None where there is no answer (or it is empty once
    canonical). This is what answer_hashes hashes; trainers log and compare it."""
    backend = _check_backend(backend)
    _check_threads(threads)
    flags = _flags(units, degrees, percent)
    if backend == "c":
        return _compiled().extract_and_canonicalize(texts, threads, flags)
    out = []
    for text in _check_texts(texts):
        answer = _reference.extract_answer(text)
        canonical = _reference.canonicalize(answer, flags) if answer is not None else ""
        out.append(canonical or None)
    return out


def answer_hashes(texts: Sequence[str], *, threads: int = 0, backend: str = "c", units: bool = True,
                  degrees: bool = True, percent: bool = True) -> torch.LongTensor:
    """int64 answer hash of every completion: FNV-1a 64 of the canonical answer's UTF-8 bytes with the top
    bit cleared (>= 0, the same on every platform); `-1 - i` for completion i without an answer, so it
    forms a singleton cluster. `threads=0` uses all cores (C backend; the Python reference is serial)."""
    import torch  # here, not at the top: the worker processes and the value rules need no torch

    backend = _check_backend(backend)
    _check_threads(threads)
    flags = _flags(units, degrees, percent)
    if backend == "c":
        if not isinstance(texts, (list, tuple, str, bytes)):
            texts = list(texts)
        out = torch.empty(len(texts), dtype=torch.int64)
        _compiled().answer_hashes(texts, out.numpy(), threads, flags)  # rejects a bare str before using out
        return out
    canonical = extract_and_canonicalize(texts, backend="python", units=units, degrees=degrees,
                                         percent=percent)
    hashes = [_reference.canonical_hash(c) if c is not None else -1 - i for i, c in enumerate(canonical)]
    return torch.tensor(hashes, dtype=torch.int64)


def cluster_ids(hashes: torch.Tensor, group_size: int) -> torch.LongTensor:
    """Dense cluster id of every row within its group of `group_size` consecutive rows: 0..k-1 in order of
    first appearance; rows with equal non-negative hashes share an id, a negative hash (no answer) is a
    cluster of its own. Example (group_size=4): [7, -2, 7, 9] -> [0, 1, 0, 2]."""
    import torch

    is_tensor = isinstance(hashes, torch.Tensor)
    if not is_tensor or hashes.dim() != 1 or hashes.dtype not in (torch.int64, torch.int32):
        got = f"{hashes.dtype} of shape {tuple(hashes.shape)}" if is_tensor else type(hashes).__name__
        raise ValueError(f"hashes must be a 1-D int64 tensor (from answer_hashes), got {got}")
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if hashes.numel() % group_size:
        raise ValueError(f"group_size={group_size} must divide len(hashes)={hashes.numel()}: "
                         "pass whole groups of num_generations rows")
    groups = hashes.reshape(-1, group_size)
    same = (groups[:, :, None] == groups[:, None, :]) & (groups[:, :, None] >= 0)
    same |= torch.eye(group_size, dtype=torch.bool, device=hashes.device)
    first = same.to(torch.int8).argmax(dim=2)  # first row of each row's cluster (argmax takes the first max)
    is_first = first == torch.arange(group_size, device=hashes.device)
    rank = is_first.cumsum(dim=1) - 1
    return rank.gather(1, first).reshape(-1).to(torch.int64)
