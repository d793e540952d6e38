"""kernels/ (the repository's top-level Triton folder) installs as seedgrpo.kernels, never as `kernels`.

A wheel built from the repository is installed into a fresh venv (its dependencies reached through one .pth
line to this interpreter's site-packages) and imported from a directory outside the checkout; the editable
install of this environment is imported from outside the checkout too.
"""
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ("import importlib.util, seedgrpo, seedgrpo.kernels.dispatch as g, seedgrpo.kernels.reference;"
         "print(seedgrpo.__file__); print(g.__file__); print(importlib.util.find_spec('kernels'))")


def _probe(python: str, cwd: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    env["TRITON_INTERPRET"] = "1"  # importing the kernel modules must not need a GPU
    out = subprocess.run([python, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split("\n")


def test_editable_install_imports_kernels_from_anywhere(tmp_path):
    package_file, kernel_file, top_level = _probe(sys.executable, tmp_path)[:3]
    assert Path(kernel_file) == ROOT / "kernels" / "dispatch.py"
    assert Path(package_file) == ROOT / "seedgrpo" / "__init__.py"
    assert top_level == "None", f"a top-level `kernels` module is importable: {top_level}"


@pytest.mark.slow
def test_wheel_installs_kernels_as_seedgrpo_kernels(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("seedgrpo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "seedgrpo/kernels/dispatch.py" in names and "seedgrpo/kernels/reference.py" in names
    assert not [n for n in names if n.startswith("kernels/")], "the wheel ships a top-level kernels/"
    assert "seedgrpo/grading/worker.py" in names and "seedgrpo/grading/answers.py" in names  # the grader

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    fresh_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    # torch, triton, ... from this environment, appended after the fresh venv's own site-packages
    Path(fresh_site, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    package_file, kernel_file, top_level = _probe(python, outside)[:3]
    assert Path(kernel_file) == Path(fresh_site) / "seedgrpo" / "kernels" / "dispatch.py"
    assert Path(package_file).is_relative_to(fresh_site)
    assert top_level == "None", f"a top-level `kernels` module is importable: {top_level}"
