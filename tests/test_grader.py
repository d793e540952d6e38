"""seedgrpo.grading.equivalence and .pool: canonical fast paths, the sympy worker pool, its time budget, cache and
shutdown."""
import threading
import time

import pytest

from seedgrpo.grading import equivalence, pool


@pytest.fixture
def fresh_pool():
    pool.shutdown()
    equivalence._CACHE.clear()
    yield
    pool.shutdown()


def test_fast_paths_start_no_process(fresh_pool):
    assert equivalence.is_equivalent("0.5", "\\frac12")
    assert equivalence.is_equivalent(27.0, "27")
    assert equivalence.is_equivalent("x = 5", "\\boxed{5}")
    assert not equivalence.is_equivalent("1/3", "0.333")  # two different exact rationals
    assert not equivalence.is_equivalent("-2", 2)
    assert not pool.pool_started()


def test_symbolic_comparison_in_process():
    # The worker's comparison, called directly (no pool, no budget): structure first, then sympy.
    equal = [
        ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"), ("x+1", "1+x"), ("1,2", "2,1"),
        ("\\{1,2\\}", "\\{2,1\\}"), ("2n", "n+n"), ("\\frac{1}{10}x", "0.1x"),
        ("5x-7y+11z+4=0", "-10x+14y-22z-8=0"), ("k\\geq2", "2\\leq k"),
        ("(0,9)\\cup(9,36)", "(9,36)\\cup(0,9)"), ("2^{1009}", "2\\cdot2^{1008}"), ("(1,\\sqrt{4})", "(1,2)"),
    ]
    different = [
        ("(1,2)", "(2,1)"), ("[1,2)", "(1,2)"), ("Evelyn", "Evenly"), ("\\pi", "3.14159265"), ("B", "C"),
        ("\\sqrt{2}", "1.41421356"), ("x+1", "y+1"), ("\\frac{100!}{2^{50}}", "\\frac{100!}{2^{49}}"),
        ("1,2", "1,2,3"), ("(1,2)", "1,2"),
        ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}"),
    ]
    for a, b in equal:
        assert equivalence.symbolic_equal(a, b) and equivalence.symbolic_equal(b, a), (a, b)
    for a, b in different:
        assert not equivalence.symbolic_equal(a, b) and not equivalence.symbolic_equal(b, a), (a, b)


@pytest.mark.slow
def test_pool_grades_and_caches(fresh_pool):
    assert equivalence.is_equivalent("\\frac{\\sqrt3}{3}", "\\dfrac{1}{\\sqrt{3}}")
    assert pool.pool_started()
    assert not equivalence.is_equivalent("x^2", "x^3")  # settled in the caller (quick_values): not cached
    assert not equivalence.is_equivalent("\\lfloor x\\rfloor", "x")  # the worker's verdict, cached
    # raw final answers (not canonical forms) are the key
    key = (False, *equivalence._pair_key("\\lfloor x\\rfloor", "x"))
    assert equivalence._CACHE.get(key) is False
    pairs = [("x+1", "1+x"), ("2x", "x+x"), ("x", "y"), ("x+1", "1+x")]
    assert equivalence.check_canonical_pairs(pairs) == [True, True, False, True]


@pytest.mark.slow
def test_time_budget_holds_from_any_thread(fresh_pool):
    assert equivalence.is_equivalent("x+1", "1+x")  # pool started and warm
    slow = ("10^{10^{10^{10}}}", "3")  # sympy evaluates this for far longer than the budget
    verdicts = {}

    def grade():
        start = time.monotonic()
        verdicts["value"] = equivalence.is_equivalent(*slow, timeout_s=0.5)
        verdicts["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=grade)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert verdicts["value"] is False
    assert verdicts["seconds"] < 5.0, verdicts  # the 0.5 s budget plus process overhead, not sympy's minutes
    assert equivalence.is_equivalent("2x", "x+x")  # the killed worker was replaced


@pytest.mark.slow
def test_shutdown_stops_the_workers(fresh_pool):
    assert equivalence.is_equivalent("x+1", "1+x")
    processes = [w.proc for w in pool._POOL._workers]
    pool.shutdown()
    assert not pool.pool_started()
    assert all(p.poll() is not None for p in processes)


@pytest.mark.slow
def test_workers_outlive_a_sigterm_to_the_process_group(fresh_pool):
    """SLURM/Kubernetes signal every process of a job: the trainer's last step must still be graded."""
    import os
    import signal

    assert equivalence.is_equivalent("x+1", "1+x")
    processes = [w.proc for w in pool._POOL._workers]
    for process in processes:
        os.kill(process.pid, signal.SIGTERM)
        os.kill(process.pid, signal.SIGINT)
    time.sleep(0.5)
    assert all(p.poll() is None for p in processes)
    equivalence._CACHE.clear()
    assert equivalence.check_canonical_pairs([("2x", "x+x"), ("x", "y")]) == [True, False]
    current = [w.proc for w in pool._POOL._workers]
    assert all(p in current for p in processes)  # none was replaced


def test_bad_arguments():
    with pytest.raises(ValueError, match="pred must be a str or a number"):
        equivalence.is_equivalent(None, "1")
    with pytest.raises(ValueError, match="timeout_s"):
        equivalence.check_canonical_pairs([("x", "y")], timeout_s=0)
