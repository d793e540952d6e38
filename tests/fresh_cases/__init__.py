"""Answer-equivalence cases written in this project by four independent writers, each from one brief (how
answers are written; mathematical forms; competition LaTeX; word problems and science), as
(prediction, gold, equal?, family). The competition and science sets were written without reading the
grader; all four were first graded before any rule below was written for them (benchmarks/RESULTS-answers.md
has those first figures). tests/test_grader_fresh.py and `benchmarks/bench_answers.py --grading-only` grade
them."""
import importlib

SETS = ("reading", "math_forms", "competition", "science")


def cases(name: str) -> list[tuple[str, str, bool, str]]:
    return importlib.import_module(f"fresh_cases.{name}").CASES
