"""The C++ core (backend="c") and the Python reference (backend="python") give identical output: on every
answer and solution of the benchmark files in ../shared/data, on the MATH training parquets, and on
hypothesis-generated strings (LaTeX-shaped and arbitrary, lone surrogates and NUL included)."""
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedgrpo import _C
from seedgrpo.grading import answers
from seedgrpo.grading import reference

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BENCHMARKS = ["aime24", "amc23", "math500", "minerva_math", "olympiadbench"]
ALL_FLAGS = range(8)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return [repr(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def benchmark_strings(name: str) -> list[str]:
    out = []
    with open(DATA / name / "test.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            for key in ("answer", "final_answer", "solution"):
                out += _strings(record.get(key))
    return out


def parquet_strings(name: str) -> list[str]:
    pq = pytest.importorskip("pyarrow.parquet")
    truth = pq.read_table(DATA / name / "train.parquet", columns=["reward_model"]).column(0).to_pylist()
    out = []
    for record in truth:
        ground_truth = record["ground_truth"]
        values = [ground_truth] if isinstance(ground_truth, str) else list(ground_truth.values())
        out += _strings(values)
    return out


def assert_same(texts: list[str], flags_list=(7, 0)) -> None:
    for text in texts:
        extracted = reference.extract_answer(text)
        assert _C.extract_answer(text) == extracted, text
        for flags in flags_list:
            for item in (text, extracted) if extracted is not None else (text,):
                assert _C.canonicalize(item, flags) == reference.canonicalize(item, flags), (flags, item)


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_files_give_identical_output(name):
    texts = benchmark_strings(name)
    assert len(texts) >= 30  # aime24 has 30 records (answer + solution each), amc23 40 answers
    assert_same(texts)
    assert answers.extract_and_canonicalize(texts) == answers.extract_and_canonicalize(texts,
                                                                                      backend="python")
    assert torch.equal(answers.answer_hashes(texts), answers.answer_hashes(texts, backend="python"))


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data is not present")
@pytest.mark.parametrize("name", ["math_train", "math_lvl3to5_train"])
def test_training_parquets_give_identical_output(name):
    texts = parquet_strings(name)
    assert len(texts) > 8000
    assert answers.extract_and_canonicalize(texts) == answers.extract_and_canonicalize(texts,
                                                                                      backend="python")


# Pieces that exercise every rule of docs/answers.md, glued at random.
PIECES = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "\\{", "\\}", "(", ")", "[", "]", ",", " ", "  ", "\n", "\t",
    "0", "1", "2", "5", "9", "000", "123", ".", "-", "+", "/", "e", "E", "x", "y", "=", "^", "_", "\\frac",
    "\\dfrac", "\\sqrt", "\\times", "\\cdot", "10^{", "\\text{", "\\mbox{", "\\mathrm{", "\\textbf{", " cm",
    "inches", "degrees", " per ", "km/h", "^2", "\\circ", "^\\circ", "\\degree", "%", "\\%", "$", "\\$",
    "\\!", "\\,", "\\;", "~", "\\ ", "\\quad", "\\left", "\\right", "\\left.", "\\begin{pmatrix}",
    "\\end{pmatrix}", "\\begin{bmatrix}", "\\\\", "&", "answer", "Answer:", "answer is", "<answer>",
    "</answer>", "**", "\\", "A", "B", "(B)", "\\in", "\\pi", "\\infty", "\\cup", "{,}", "1\\frac{1}{2}",
    "x_{1}", "f(x)", "\\le", "\\cot", "\u2212", "\u00b0", "\u00d7", "\u03c0", "\u221a", "\u00a0", "\u00e9",
    "\ud800", "\udfff", "\x00", "\U0001f600",
]
latex_like = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=60)
numbers = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-", "+"]), st.text("0123456789", max_size=40),
    st.sampled_from(["", ".", ".5", ".000125"]),
    st.sampled_from(["", "e3", "e-300", "E+301", "\\times10^{-7}", "\\cdot10^{12}"]))
number_forms = ["\\frac{{{}}}{{{}}}", "{}/{}", "({},{})", "\\{{{},{}\\}}", "{}\\frac{{{}}}{{7}}"]
fractions = st.builds(lambda a, b, form: form.format(a, b), numbers, numbers, st.sampled_from(number_forms))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(latex_like, any_text, numbers, fractions), flags=st.sampled_from(list(ALL_FLAGS)))
def test_generated_strings_give_identical_output(text, flags):
    assert_same([text], flags_list=(flags,))
    batch = [text, "\\boxed{" + text + "}", "The answer is " + text]
    assert answers.extract_and_canonicalize(batch) == answers.extract_and_canonicalize(batch,
                                                                                      backend="python")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_fail(data):
    # Bytes that are not UTF-8 cannot come from a str; the C++ core must still stay inside its buffers.
    extracted = _C.extract_answer_bytes(data)
    assert extracted is None or isinstance(extracted, bytes)
    for flags in (0, 7):
        assert isinstance(_C.canonicalize_bytes(data, flags), bytes)


def test_every_table_entry_agrees():
    # Each word of the reference's tables, in the context that uses it, through both implementations.
    texts = [f"5 {w}" for w in reference._UNIT_WORDS] + [f"5\\text{{ {w}}}" for w in reference._UNIT_WORDS]
    texts += [f"\\{w}{{x}}" for w in reference._UNWRAP] + [f"\\{w}12" for w in reference._RENAME]
    texts += [f"\\{w}(1,2\\{w})" for w in reference._DROP_WORDS] + list(reference._UNICODE)
    texts += [f"1 km/{u}" for u in reference._SHORT_UNITS]
    assert_same(texts, flags_list=ALL_FLAGS)
    assert all(answers.canonicalize(f"5 {w}") == "5" for w in reference._UNIT_WORDS)
