"""The grading package's layout (issue 25): one direction of imports, no cycle, no torch in the worker."""
import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.test_architecture import _cycles, _imports, _module_files

REPO = Path(__file__).resolve().parents[1]
GRADING = REPO / "seedgrpo" / "grading"
# The modules that moved into seedgrpo/grading/: no alias may stay behind at the old paths.
OLD_PATHS = ["answers", "answers_reference", "answer_reading", "grader", "grader_worker", "grading_rules",
             "grading_sets", "grading_shapes", "grading_units", "quick_values", "rewards"]


def _grading_graph() -> dict[str, set[str]]:
    """grading module -> the grading modules it imports, read by the package-wide reader of
    tests/test_architecture.py (every import statement, functions included)."""
    files = _module_files()
    prefix = "seedgrpo.grading."
    return {name[len(prefix):]: {t[len(prefix):] for t in _imports(name, path, set(files)) if t.startswith(prefix)}
            for name, path in files.items() if name.startswith(prefix)}


def test_grading_imports_flow_one_way():
    graph = _grading_graph()
    assert {"answers", "canonical", "reading", "worker", "rules"} <= set(graph), graph  # the reader sees them
    assert graph["answers"], graph  # the facade imports the work
    assert _cycles(graph) == []
    # The public facade depends on the work, never the other way round.
    assert all("answers" not in deps for name, deps in graph.items() if name != "answers"), graph
    leaves = {"reference", "rules", "second_opinion", "shapes", "units", "sets"}
    assert graph["worker"] <= leaves, graph["worker"]


def test_grading_modules_import_each_other_by_their_grading_names():
    """Not through the top-level package's names (`from seedgrpo import answers`: the public facade, which the
    graph above would not see as an edge)."""
    for path in GRADING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if (node.level, node.module) in ((0, "seedgrpo"), (2, None)):  # from seedgrpo / from .. import x
                assert not {a.name for a in node.names} & set(OLD_PATHS), path


def test_no_by_file_loader_and_no_alias_at_old_paths():
    for path in GRADING.glob("*.py"):
        text = path.read_text()
        assert "spec_from_file_location" not in text and "module_from_spec" not in text, path
        assert not re.search(r"def _(reference|rules|units|shapes|sets|module)\(", text), path  # no getters
    assert not [name for name in OLD_PATHS if (REPO / "seedgrpo" / f"{name}.py").exists()]


def test_public_modules_are_the_grading_ones():
    import seedgrpo
    from seedgrpo import answers, rewards
    from seedgrpo.grading import answers as grading_answers, rewards as grading_rewards

    assert answers is grading_answers and rewards is grading_rewards
    assert seedgrpo.answers is grading_answers and seedgrpo.rewards is grading_rewards
    assert callable(answers.is_equivalent) and callable(rewards.math_reward)


# The grading modules without the top-level package's __init__: what grading itself imports.
_BARE_PACKAGE = """
import sys, types
package = types.ModuleType("seedgrpo"); package.__path__ = [{root!r}]; sys.modules["seedgrpo"] = package
import seedgrpo.grading, seedgrpo.grading.worker, seedgrpo.grading.rules, seedgrpo.grading.reading
assert seedgrpo.grading.worker.grade_pair("\\\\frac{{1}}{{2}}", "0.5")
print("torch" in sys.modules)
"""


def test_grading_worker_imports_no_torch():
    code = _BARE_PACKAGE.format(root=str(REPO / "seedgrpo"))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "False"


def test_import_seedgrpo_grading_imports_no_torch():
    probe = "import sys, seedgrpo.grading, seedgrpo.grading.worker; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and result.stdout.split()[-1] == "False", result.stderr[-2000:]
