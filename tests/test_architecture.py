"""The layout of docs/architecture.md holds: no import cycle anywhere in seedgrpo/ or kernels/ (every import
statement is read, those inside functions included; a package's __init__ importing its own children does not
count), at most 15 top-level modules beside the packages, and `import seedgrpo` / `import seedgrpo.grading`
load no torch (PEP 562: everything on first use)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_TOP_LEVEL_MODULES = 15


def _module_files() -> dict[str, Path]:
    files = {}
    for base, prefix in ((ROOT / "seedgrpo", "seedgrpo"), (ROOT / "kernels", "seedgrpo.kernels")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join([prefix, *parts])] = path
    return files


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The project modules that `name` imports, as absolute names (submodules resolved when imported by
    `from package import submodule`), with the packages whose __init__ each import runs."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in found:
            target = target.replace("kernels.", "seedgrpo.kernels.", 1) if target.startswith("kernels.") else target
            if target not in modules:
                continue
            targets.add(target)
            parts = target.split(".")  # the package __init__s this import runs, outside the importer's own
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and not (name == parent or name.startswith(parent + ".")):
                    targets.add(parent)
    if is_package:  # a package's __init__ importing its own children is how packages export
        targets = {t for t in targets if not t.startswith(name + ".")}
    targets.discard(name)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    files = _module_files()
    graph = {name: _imports(name, path, set(files)) for name, path in files.items()}
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_kernels_are_a_leaf():
    files = _module_files()
    for name, path in files.items():
        if name.startswith("seedgrpo.kernels"):
            outside = {t for t in _imports(name, path, set(files)) if not t.startswith("seedgrpo.kernels")}
            assert outside <= {"seedgrpo"} - {"seedgrpo"}, (name, outside)


def test_top_level_modules_are_few():
    modules = [p.stem for p in (ROOT / "seedgrpo").glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, sorted(modules)


def test_package_import_is_lazy():
    code = ("import sys, seedgrpo, seedgrpo.grading; "
            "from seedgrpo import answers; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_registry_loads_builtins_on_first_use():
    code = ("import sys, seedgrpo; assert 'seedgrpo.uncertainty' not in sys.modules; "
            "from seedgrpo import registry; assert 'seedgrpo.uncertainty' not in sys.modules; "
            "print(registry.list_uncertainties())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "se_rao" in out.stdout and "gcpo_cd" in out.stdout, out.stdout + out.stderr
