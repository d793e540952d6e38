"""The grading package's layout (issue 25): one direction of imports, no cycle, no torch in the worker."""
import ast
import re
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
GRADING = REPO / "seedgrpo" / "grading"
# The modules that moved into seedgrpo/grading/: no alias may stay behind at the old paths.
OLD_PATHS = ["answers", "answers_reference", "answer_reading", "grader", "grader_worker", "grading_rules",
             "grading_sets", "grading_shapes", "grading_units", "quick_values", "rewards"]


def _grading_imports(path: Path) -> set[str]:
    """Every grading module that `path` imports, by any import statement (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from . import x / from .x import y
                base = node.module.split(".")[0] if node.module else None
                found |= {base} if base else {alias.name for alias in node.names}
            elif node.level == 0 and node.module and node.module.startswith("seedgrpo.grading"):
                rest = node.module.split(".")[2:]
                found |= {rest[0]} if rest else {alias.name for alias in node.names}
            elif node.level == 0 and node.module == "seedgrpo":
                found |= {a.name for a in node.names if a.name in OLD_PATHS}  # old flat names
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["seedgrpo", "grading"] and len(parts) > 2:
                    found.add(parts[2])
    return found


def test_no_import_cycle_in_grading():
    graph = {p.stem: _grading_imports(p) for p in GRADING.glob("*.py") if p.stem != "__init__"}
    assert set().union(*graph.values()) <= set(graph), graph  # only modules that exist
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(path + [module])}"
        state[module] = "open"
        for child in sorted(graph[module]):
            visit(child, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    # The public facade depends on the work, never the other way round.
    assert all("answers" not in deps for name, deps in graph.items() if name != "answers"), graph
    leaves = {"reference", "rules", "second_opinion", "shapes", "units", "sets"}
    assert graph["worker"] <= leaves, graph["worker"]


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
