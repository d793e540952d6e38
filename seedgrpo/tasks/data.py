"""Math problems: loading (jsonl / json / parquet files, or a Hugging Face dataset id) and prompt formatting.

    from seedgrpo.tasks.data import load_problems, format_prompt
    problems = load_problems("data/math500/test.jsonl")                     # fields detected
    problems = load_problems("my.jsonl", problem_field="q", answer_field="meta.gold", limit=100)
    problems = load_problems("HuggingFaceH4/MATH-500", split="test")        # through `datasets`
    text = format_prompt(problems[0], "chat", tokenizer, system_prompt="Answer briefly.")

Field detection knows the layouts of the five evaluation benchmarks and the usual training parquets:
plain `problem`/`answer` records (MATH-500, AIME24, AMC23), OlympiadBench (`question`, `final_answer`
list), Minerva (no answer field: the last `\\boxed{}` of `solution`) and verl-style parquets
(`prompt[0].content`, `reward_model.ground_truth[.target]`). Explicit fields take dotted paths into nested
records (`reward_model.ground_truth`, `prompt.0.content`). A path that is not a file but reads as a dataset
id ("org/name") is loaded with `datasets.load_dataset(path, name, split=split)` (the `datasets` package:
pinned in requirements.txt); its rows go through the same field detection.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# verl-style training parquets append this instruction to every problem; prompt templates add their own.
_VERL_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."

_PROBLEM_FIELDS = ("problem", "question", "query", "input", "prompt")
_ANSWER_FIELDS = ("answer", "final_answer", "gold", "target", "ground_truth", "expected_answer")
_ID_FIELDS = ("id", "unique_id", "idx", "index")
_SKIP_IN_META = {"solution", "prompt", "question", "problem", "reward_model", "url"}

QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
_TEMPLATES = {
    # Qwen2.5-Math's ChatML prompt, as used by Dr. GRPO / SEED-GRPO for the Qwen2.5-Math base models.
    "qwen_math": (
        "<|im_start|>system\n" + QWEN_MATH_SYSTEM + "<|im_end|>\n"
        "<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"
    ),
    # DeepSeek-R1-Zero's plain-text prompt for base models.
    "r1": (
        "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
        "The Assistant first thinks about the reasoning process in the mind and then provides the User with "
        "the answer. The reasoning process is enclosed within <think> </think> and answer is enclosed within "
        "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
        "<answer> answer here </answer>.\nUser: {problem}\nAssistant: <think>"
    ),
    "none": "{problem}",
}
# "chat": the tokenizer's own chat template renders [system (optional), user] turns.
TEMPLATES = tuple(_TEMPLATES) + ("chat",)
# A Hugging Face dataset id: "name" or "org/name" (what `datasets.load_dataset` resolves on the Hub).
_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*|[A-Za-z0-9][\w-]*")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def is_dataset_id(path: str) -> bool:
    """Whether `path` reads as a Hub dataset id rather than a file: no file suffix, at most one slash."""
    return isinstance(path, str) and not path.lower().endswith(_FILE_SUFFIXES) and path != "toy" \
        and bool(_DATASET_ID.fullmatch(path))


@dataclass
class Problem:
    """One math problem: its text, the reference answer(s), a stable id and whatever else the file held.

    `columns` is the file's record as read (every column, nested ones included): what TRL-style reward
    functions receive as keyword arguments (seedgrpo/training/reward_funcs.py)."""

    problem: str
    answer: str | list[str]
    id: str
    meta: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict, repr=False, compare=False)  # the raw record, not compared


# ----------------------------------------------------------------------------------------------- loading
def load_problems(path, *, problem_field: str | None = None, answer_field: str | None = None,
                  limit: int | None = None, split: str = "train", name: str | None = None) -> list[Problem]:
    """Read problems from a .jsonl, .json (a list, or {"data": [...]}) or .parquet file, or from the
    `split` of a Hugging Face dataset id (config `name`)."""
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} must be a non-negative int or None")
    if not Path(path).is_file() and is_dataset_id(str(path)):
        records = load_dataset_records(str(path), split=split, name=name, limit=limit)
        path = Path(str(path).replace("/", "__")) / split  # names the source in errors and meta
    else:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path={str(path)!r} is not a file; give a .jsonl, .json or .parquet file or a "
                             "Hugging Face dataset id ('org/name')")
        records = _read_records(path, limit)
    problems = []
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: record {row} is {type(record).__name__}, expected a JSON object")
        problems.append(_to_problem(record, row, path, problem_field, answer_field))
    return problems


def _read_records(path: Path, limit: int | None) -> list[dict]:
    """The file's records; a line or file that is not valid JSON/UTF-8/parquet is one error naming where."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = []
        with path.open("rb") as f:
            for line_number, raw in enumerate(f, start=1):
                if limit is not None and len(records) >= limit:
                    break
                try:
                    line = raw.decode("utf-8")
                    if line.strip():
                        records.append(json.loads(line))
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    raise ValueError(f"{path} line {line_number} is not a valid JSON line "
                                     f"({_json_error(error)}): fix or delete that line") from None
        return _non_empty(records, path, limit)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON ({_json_error(error)})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: a .json file must hold a list of records (or {{'data': [...]}})")
        return _non_empty(data[:limit] if limit is not None else data, path, limit)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as error:
            raise ValueError(f"{path} cannot be read as parquet ({error})") from None
        if limit is not None:
            table = table.slice(0, limit)
        return _non_empty(table.to_pylist(), path, limit)
    raise ValueError(f"path={str(path)!r} has suffix {suffix!r}; expected .jsonl, .json or .parquet")


def load_dataset_records(dataset_id: str, *, split: str = "train", name: str | None = None,
                         limit: int | None = None, data_files=None) -> list[dict]:
    """The rows of `datasets.load_dataset(dataset_id, name, split=split)` as dicts (first `limit` rows).

    `data_files` passes through (a loader name such as "json" with local files: how the tests run this
    path without the Hub). Errors (no such dataset, split or config; no network) are one line."""
    try:
        import datasets
    except ImportError:
        raise ImportError(f"data.path={dataset_id!r} is a Hugging Face dataset id, read with the datasets "
                          "package: pip install datasets (pinned in requirements.txt)") from None
    where = f"dataset {dataset_id!r}" + (f" (config {name!r})" if name else "") + f" split {split!r}"
    try:
        dataset = datasets.load_dataset(dataset_id, name, split=split, data_files=data_files)
    except Exception as error:  # datasets raises many types (DatasetNotFoundError, ValueError, OSError, ...)
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ValueError(f"{where} could not be loaded ({type(error).__name__}: {first[:300]}); check the "
                         "id, data.name (config) and data.split, and that the Hub is reachable (offline: "
                         "in the datasets cache)") from None
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    records = dataset.to_list()
    if not records and limit != 0:
        raise ValueError(f"{where} holds no rows")
    return records


def _json_error(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return f"not UTF-8: {error.reason} at byte {error.start}"


def _non_empty(records: list, path: Path, limit: int | None) -> list:
    if not records and limit != 0:
        raise ValueError(f"{path} holds no records: give a file with one problem per line (.jsonl), a "
                         "list of records (.json) or rows (.parquet)")
    return records


# A reference answer longer than this is skipped (and counted) for training: no completion of a sane
# length writes it, and every row of its group would spend the grader's time budget on it.
MAX_ANSWER_CHARS = 10_000


def training_problems(problems: list[Problem]) -> tuple[list[Problem], str | None]:
    """The problems that can be trained on, and a one-line note counting the skipped ones (None: none)."""
    def size(answer):
        return sum(map(len, answer)) if isinstance(answer, list) else len(answer)

    usable = [p for p in problems if p.answer not in ("", []) and size(p.answer) <= MAX_ANSWER_CHARS]
    empty = sum(p.answer in ("", []) for p in problems)
    long = len(problems) - len(usable) - empty
    if len(usable) == len(problems):
        return usable, None
    parts = [f"{empty} without a reference answer"] if empty else []
    parts += [f"{long} whose reference answer is over {MAX_ANSWER_CHARS} characters"] if long else []
    return usable, f"skipping {len(problems) - len(usable)} of {len(problems)} problems: {', '.join(parts)}"


def _get(record: Any, dotted: str) -> Any:
    """`record["a"]["b"][0]` for dotted="a.b.0"; KeyError when any step is missing."""
    value = record
    for key in dotted.split("."):
        if isinstance(value, list) and key.lstrip("-").isdigit():
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise KeyError(dotted)
    return value


def _named_field(record: dict, option: str, field, where: str):
    """`record[field]` (dotted paths and list indices as `_get` reads them) for the user's `option`."""
    try:
        return _get(record, field)
    except (KeyError, IndexError):
        raise ValueError(f"{option}={field!r} not found in {where} (keys: {sorted(record)})") from None


def _to_problem(record: dict, row: int, path: Path, problem_field, answer_field) -> Problem:
    where = f"{path.name} record {row}"
    # Problem text.
    if problem_field is not None:
        text = _named_field(record, "problem_field", problem_field, where)
    else:
        key = next((k for k in _PROBLEM_FIELDS if record.get(k) is not None), None)
        if key is None:
            raise ValueError(f"no problem field in {where} (keys: {sorted(record)}); pass problem_field=")
        text = record[key]
    if isinstance(text, list):  # verl-style chat prompt: the last user message
        users = [m.get("content", "") for m in text
                 if isinstance(m, dict) and m.get("role", "user") == "user"]
        if not users:
            raise ValueError(f"{where}: the prompt list holds no user message")
        text = users[-1]
    if not isinstance(text, str):
        raise ValueError(f"{where}: problem text is {type(text).__name__}, expected str; pass problem_field=")
    text = text.strip()
    if text.endswith(_VERL_INSTRUCTION):
        text = text[: -len(_VERL_INSTRUCTION)].rstrip()

    # Reference answer.
    if answer_field is not None:
        answer = _named_field(record, "answer_field", answer_field, where)
    else:
        answer = _detect_answer(record)
        if answer is None:
            raise ValueError(f"no answer field in {where} (keys: {sorted(record)}); pass answer_field=")
    answer = _normalize_answer(answer, where)

    ident = next((record[k] for k in _ID_FIELDS if record.get(k) is not None), None)
    extra = record.get("extra_info") if isinstance(record.get("extra_info"), dict) else {}
    if ident is None:
        ident = extra.get("index", row)
    used = _SKIP_IN_META | {"extra_info", *_ANSWER_FIELDS, *_ID_FIELDS}
    meta = {k: v for k, v in record.items() if k not in used and isinstance(v, (str, int, float, bool))}
    meta.update({k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool))})
    meta["source"] = path.parent.name if path.stem in ("test", "train") else path.stem
    return Problem(problem=text, answer=answer, id=str(ident), meta=meta, columns=record)


def _detect_answer(record: dict) -> Any:
    for key in _ANSWER_FIELDS:
        if record.get(key) is not None:
            return record[key]
    reward_model = record.get("reward_model")
    if isinstance(reward_model, dict) and reward_model.get("ground_truth") is not None:
        truth = reward_model["ground_truth"]
        return truth.get("target") if isinstance(truth, dict) else truth
    solution = record.get("solution")
    if isinstance(solution, str):  # Minerva: the reference is the last \boxed{} of the worked solution
        return last_boxed(solution)
    return None


def _normalize_answer(answer: Any, where: str) -> str | list[str]:
    if isinstance(answer, bool):
        raise ValueError(f"{where}: answer is a bool ({answer}); pass answer_field= naming the answer")
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))  # amc23 stores 27.0
    if isinstance(answer, (int, float)):
        return str(answer)
    if isinstance(answer, list):
        answers = [_normalize_answer(a, where) for a in answer]
        if any(isinstance(a, list) for a in answers):
            raise ValueError(f"{where}: nested answer lists are not supported")
        return answers[0] if len(answers) == 1 else answers
    if isinstance(answer, str):
        return answer.strip()
    raise ValueError(f"{where}: answer is {type(answer).__name__}; pass answer_field= naming a string field")


def last_boxed(text: str) -> str | None:
    """The brace-balanced content of the last `\\boxed{...}` (or `\\fbox{...}`) in `text`, or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None


# --------------------------------------------------------------------------------------------- prompting
def format_prompt(problem: Problem | str, template: str = "qwen_math", tokenizer=None,
                  system_prompt: str | None = None) -> str:
    """The prompt text for one problem.

    `template` is "qwen_math" (Qwen2.5-Math's system + user turn), "r1" (R1-Zero's plain-text prompt),
    "chat" (the tokenizer's own chat template on a user turn, after a `system_prompt` turn when given;
    without one the template's default system turn, if it has one, applies), "none" (the bare problem) or
    any string containing "{problem}". With "qwen_math" and a tokenizer that has a chat template, the
    tokenizer's own template renders the same two messages.
    """
    text = problem.problem if isinstance(problem, Problem) else problem
    if not isinstance(text, str):
        raise ValueError(f"problem={problem!r} must be a Problem or a str")
    if template == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_template='chat' needs a tokenizer with a chat template, and this one "
                             "has none; use qwen_math, r1, none or a string holding '{problem}'")
        messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
        messages.append({"role": "user", "content": text})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template == "qwen_math" and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": QWEN_MATH_SYSTEM}, {"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template in _TEMPLATES:
        return _TEMPLATES[template].replace("{problem}", text)
    if isinstance(template, str) and "{problem}" in template:
        return template.replace("{problem}", text)
    raise ValueError(f"template={template!r} is unknown; use one of {TEMPLATES} "
                     "or a string containing '{problem}'")


# ---------------------------------------------------------------------------------------------- sampling
class PromptSampler:
    """An endless, seeded order over `n` problems: a fresh permutation every epoch (identity without shuffle).

    The order is a pure function of (seed, epoch), so the state to checkpoint is two integers, and every rank
    computes the same global batch and takes its own slice of it.
    """

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True):
        if n < 1:
            raise ValueError(f"n={n}: there are no problems to sample from; check data.path and data.limit")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch = self.position = 0
        self._order_epoch, self._order = None, None

    def _epoch_order(self) -> list[int]:
        if self._order_epoch != self.epoch:
            if self.shuffle:
                import torch

                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
                self._order = torch.randperm(self.n, generator=generator).tolist()
            else:
                self._order = list(range(self.n))
            self._order_epoch = self.epoch
        return self._order

    def next(self, k: int) -> list[int]:
        """The next `k` problem indices (crossing into the next epoch when this one runs out)."""
        out: list[int] = []
        while len(out) < k:
            order = self._epoch_order()
            take = min(k - len(out), self.n - self.position)
            out += order[self.position:self.position + take]
            self.position += take
            if self.position == self.n:
                self.epoch, self.position = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "n": self.n, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n or state["seed"] != self.seed:
            raise ValueError(f"the checkpoint's sampler covered {state['n']} problems with seed "
                             f"{state['seed']}, this run has {self.n} with seed {self.seed}: resume with the "
                             "same data and seed")
        self.epoch, self.position = state["epoch"], state["position"]
