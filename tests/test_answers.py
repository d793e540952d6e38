"""seedgrpo.answers: extraction, canonicalization (docs/answers.md), hashing, cluster ids, robustness.

Every case runs on both backends (the C++ core and the Python reference)."""
import pytest
import torch

from seedgrpo import answers
from seedgrpo.grading import reference

BACKENDS = ["c", "python"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text, expected", [
    ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{ 2 }", "2"),  # the last box, stripped
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the box
    ("\\fbox{7}", "7"),
    ("so \\boxed 5 apples", "5"),
    ("first \\boxed{3}, then put it in \\boxed{}", "3"),  # empty boxes are skipped
    ("\\boxed{4} and an unclosed \\boxed{5", "4"),
    ("\\boxedanswer{9}", None),  # another command
    ("<answer> 42 </answer>", "42"),
    ("<answer>1</answer> <answer>2</answer>", "2"),
    ("The final answer is $5$. I hope it is correct.", "5"),
    ("Final Answer: The final answer is 3.5. I hope", "3.5"),
    ("**Answer:**\n\n  x = 3\nmore text", "x = 3"),
    ("the ANSWER IS \\(\\frac{3}{4}\\)", "\\frac{3}{4}"),
    ("The answer is: 12.", "12"),
    ("no answer here", None),
    ("my answers are many", None),
    ("", None),
])
def test_extract_answer(backend, text, expected):
    assert answers.extract_answer(text, backend=backend) == expected


# Groups of answers that must share one canonical form (and one hash).
SAME = [
    ["0.5", "1/2", "\\frac{1}{2}", "\\frac12", "\\dfrac12", "\\tfrac{1}{2}", "2/4", "5e-1", "$\\frac{1}{2}$",
     ".5"],
    ["1000", "1000.0", "1,000", "1 000", "1{,}000", "1e3", "10^{3}", "10^3", "1\\times10^{3}", "\\$1,\\!000",
     "+1000"],
    ["1500", "1.5\\times10^{3}", "1.5e3", "1.5 \\times 10^{3}", "1.5\\cdot10^3"],
    ["-\\frac{35}{9}", "\\frac{-35}{9}", "-35/9", "\\frac{35}{-9}"],
    ["\\frac{9}{5}", "1\\frac{4}{5}", "1.8", "9/5"],
    ["5", "x=5", "x = 5", "5.", "\\text{5}", "5^\\circ", "5^{\\circ}", "5\\%", "5 \\text{ cm}", "5 degrees",
     "+5"],
    ["25", "025"],
    ["7425000", "7,425,000", "7 425 000"],
    ["11111111100", "11,\\! 111,\\! 111,\\! 100"],
    ["B", "(B)", "\\text{(B)}", "\\textbf{(B)}", "\\mathrm{(B)}"],
    ["\\sqrt{2}", "\\sqrt2", "\\sqrt 2"],
    ["(1,2)", "\\left( 1, 2 \\right)", "(1, 2)", "(1,2.0)"],
    ["\\{1,2,3\\}", "\\{3,1,2\\}", "\\{2, 3, 1, 1\\}"],
    ["[-2,7]", "x \\in [-2,7]", "[-2, 7]"],
    ["\\frac{270}{7}", "\\frac{270}7\\text{ degrees}"],
    ["864", "864 \\mbox{ inches}^2"],
    ["60", "60 miles per hour", "60 km/h"],
    ["\\frac{\\pi}{2}", "\\frac\\pi2", "\\dfrac{\\pi}{2}", "\\frac{\\pi}{2}\\,"],
    ["x^{2}+1", "x^2 + 1", "x^2+1"],
    ["\\cot x", "\\cot  x"],
    ["1,3,5", "1, 3, 5", "$1$,$3$,$5$", "x=1,3,5"],
    ["a^{2}", "a^{2}."],
    ["\\begin{pmatrix}-1/3\\\\2/3\\end{pmatrix}",
     "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac{2}{3} \\end{pmatrix}",
     "\\begin{bmatrix}-1/3\\\\2/3\\\\\\end{bmatrix}"],
    ["(-\\infty,0)\\cup\\{1\\}", "$(-\\infty, 0) \\cup\\{1\\}$."],
    ["\\frac{1}{2}x", "\\frac12x"],
]

# Pairs that must NOT share a canonical form: merging them would reward wrong answers.
DIFFERENT = [
    ("(1,2)", "1,2"), ("1,000", "1,0"), ("(1,000)", "(1,0)"), ("(1,000)", "1000"), ("1,2", "12"),
    ("1 2", "12"),
    ("2500,7500", "25007500"), ("1,2", "2,1"), ("(1,2)", "(2,1)"), ("[1,2)", "(1,2)"), ("x=1,y=2", "y=1,x=2"),
    ("1/3", "0.333"), ("0.625", "62.5\\%"), ("M", "m"), ("2\\frac{3}{2}", "\\frac{7}{2}"),
    ("2\\frac{3}{2}", "3"),
    ("n \\text{ even}", "n \\text{ odd}"), ("2\\mathrm{i}", "2"), ("5 m", "5"), ("0", "00,0"),
    ("\\frac{1}{2}", "\\frac{1}{3}"), ("52_8", "52"), ("\\{1,2\\}", "(1,2)"), ("x^23", "x^{23}"), ("A", "B"),
    ("1", "-1"), ("0.1", "0.10000000000000001"), ("1e300", "1e299"), ("\\sqrt{2}", "1.41421356"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group", SAME, ids=lambda g: g[0])
def test_equal_answers_share_a_canonical_form(backend, group):
    forms = {a: answers.canonicalize(a, backend=backend) for a in group}
    assert len(set(forms.values())) == 1, forms


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_answers_stay_apart(backend, a, b):
    assert answers.canonicalize(a, backend=backend) != answers.canonicalize(b, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("answer, expected", [
    ("0.5", "1/2"), ("-0.0", "0"), ("1.25", "5/4"), ("4.5e33", "45" + "0" * 32), ("1e-5", "1/100000"),
    ("\\frac{6}{4}", "3/2"), ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("\\text{Evelyn}", "Evelyn"),
    ("\\{3,1,2,1\\}", "\\{1,2,3\\}"), ("(3,4]", "(3,4]"), ("f(x)=x,f(x)=-x", "x,-x"), ("x=1,y=2", "x=1,y=2"),
    ("\\sqrt[3]4", "\\sqrt[3]{4}"), ("52_8", "52_{8}"), ("(1,000)", "(1,000)"), ("1" * 101, "1" * 101),
    ("1e301", "1e301"), ("\\frac{1}{0}", "\\frac{1}{0}"), ("\u22125", "-5"), ("90\u00b0", "90"),
    ("\u03c0", "\\pi"),
])
def test_canonical_forms(backend, answer, expected):
    assert answers.canonicalize(answer, backend=backend) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_options_turn_stripping_off(backend):
    assert answers.canonicalize("5\\%", percent=False, backend=backend) == "5%"
    assert answers.canonicalize("90^\\circ", degrees=False, backend=backend) == "90^{\\circ}"
    assert answers.canonicalize("5 \\text{ cm}", units=False, backend=backend) == "5cm"
    assert answers.canonicalize("5 \\text{ cm}", backend=backend) == "5"


def test_fnv1a64_is_the_standard_function():
    # Published FNV-1a 64 test vectors: the hash is fixed, whatever the platform.
    vectors = [(b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)]
    for data, expected in vectors:
        assert reference.fnv1a64(data) == expected
        from seedgrpo import _C
        assert _C.fnv1a64(data) == expected
    assert answers.canonical_hash("1/2") == reference.fnv1a64(b"1/2") & (2**63 - 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_answer_hashes(backend):
    texts = ["\\boxed{0.5}", "no answer", "so the answer is \\frac12", "\\boxed{1/3}", "\\boxed{\\$}",
             "\\boxed{2/4}"]
    h = answers.answer_hashes(texts, backend=backend)
    assert h.dtype == torch.int64 and h.shape == (6,)
    assert h[0] == h[2] == h[5] == answers.canonical_hash("1/2")
    assert h[3] == answers.canonical_hash("1/3") and h[3] != h[0]
    assert h[1] == -2 and h[4] == -5  # no answer / empty canonical answer: -1 - index
    assert answers.answer_hashes([], backend=backend).shape == (0,)


def test_answer_hashes_threads_give_the_same_result():
    texts = [f"step {i}: \\boxed{{{i % 7}/{1 + i % 3}}}" if i % 5 else "nothing" for i in range(1000)]
    one = answers.answer_hashes(texts, threads=1)
    assert torch.equal(one, answers.answer_hashes(texts, threads=0))
    assert torch.equal(one, answers.answer_hashes(texts, threads=3))
    assert torch.equal(one, answers.answer_hashes(tuple(texts)))
    assert torch.equal(one, answers.answer_hashes(t for t in texts))


@pytest.mark.parametrize("backend", BACKENDS)
def test_extract_and_canonicalize(backend):
    out = answers.extract_and_canonicalize(["\\boxed{x = 5}", "none", "\\boxed{\\text{ }}", "\\boxed{(B)}"],
                                          backend=backend)
    assert out == ["5", None, None, "B"]


def test_cluster_ids():
    hashes = torch.tensor([7, -2, 7, 9, 3, 3, 3, 3, -1, -2, -3, -4])
    assert answers.cluster_ids(hashes, 4).tolist() == [0, 1, 0, 2, 0, 0, 0, 0, 0, 1, 2, 3]
    same_negative = torch.tensor([-1, -1, 5, 5])  # a negative hash is a singleton even when repeated
    assert answers.cluster_ids(same_negative, 4).tolist() == [0, 1, 2, 2]
    ids = answers.cluster_ids(answers.answer_hashes(["\\boxed{1}", "\\boxed{1.0}", "x", "\\boxed{2}"]), 2)
    assert ids.tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("bad, match", [
    (dict(hashes=torch.zeros(6, dtype=torch.int64), group_size=4), "must divide"),
    (dict(hashes=torch.zeros(4, dtype=torch.int64), group_size=0), "group_size"),
    (dict(hashes=torch.zeros(4), group_size=2), "int64"),
    (dict(hashes=[1, 2], group_size=2), "1-D int64 tensor"),
])
def test_cluster_ids_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        answers.cluster_ids(**bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments_name_the_argument(backend):
    with pytest.raises(ValueError, match="wrap it in a list"):
        answers.answer_hashes("\\boxed{1}", backend=backend)
    with pytest.raises(ValueError, match=r"texts\[1\] must be str"):
        answers.answer_hashes(["a", 3], backend=backend)
    with pytest.raises(ValueError, match="backend"):
        answers.answer_hashes(["a"], backend="rust")
    with pytest.raises(ValueError, match="threads"):
        answers.answer_hashes(["a"], threads=-1, backend=backend)
    with pytest.raises(ValueError, match="answer must be str"):
        answers.canonicalize(5, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text", [
    "\\boxed{" * 20000 + "1",  # unbalanced, deep
    "{" * 5000 + "\\boxed{" + "}" * 5000,
    "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    "\\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}",
    "\\boxed{" + "\\frac" * 400 + "}",
    "a\x00b \\boxed{1\x002}\x00",
    "\\boxed{\ud800\udfff 1}",  # lone surrogates
    "answer: " + "9" * 5000,
    "\\boxed{" + "1," * 400 + "}",
    "\\boxed{\\" + "}" * 10 + "\\",
])
def test_hostile_inputs_do_not_crash(backend, text):
    answer = answers.extract_answer(text, backend=backend)
    canonical = answers.canonicalize(answer if answer is not None else text, backend=backend)
    assert isinstance(canonical, str)
    assert answers.answer_hashes([text], backend=backend).shape == (1,)


@pytest.mark.timeout(60)
def test_megabyte_inputs_are_linear_time():
    # Correctness on 1 MB inputs; a quadratic scan would take hours and hit the timeout.
    big = ["\\boxed{" * 200_000, "x" * 1_000_000 + "\\boxed{7}", "answer" * 200_000, "{" * 1_000_000]
    hashes = answers.answer_hashes(big)
    assert hashes[1] == answers.canonical_hash("7")
    assert hashes[0] < 0 and hashes[3] < 0
    long_answer = "\\boxed{" + "1 + " * 100_000 + "1}"  # over MAX_ANSWER_BYTES: whitespace-collapsed only
    assert answers.extract_and_canonicalize([long_answer]) == ["1 + " * 100_000 + "1"]


def test_concurrent_batches_from_python_threads():
    # The batch call releases the GIL: several Python threads may hash at once and must not interfere.
    import threading

    texts = [f"\\boxed{{{i % 11}.5}}" if i % 3 else f"answer: {i}" for i in range(3000)]
    expected = answers.answer_hashes(texts, threads=1)
    results = [None] * 4

    def run(k):
        results[k] = answers.answer_hashes(texts, threads=2)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(torch.equal(r, expected) for r in results)
