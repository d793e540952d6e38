"""Build seedgrpo._C (csrc/, pybind11) through CMake.

Install with `pip install --no-build-isolation -e .` so that pip builds against the torch already in the
environment and never fetches another one. `python setup.py build_ext --inplace` rebuilds after an edit.
`SEEDGRPO_SKIP_EXTENSION=1` installs the package without the extension (answers fall back to Python).
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        config = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('SEEDGRPO_BUILD_TYPE', 'Release')}",
            f"-DSEEDGRPO_ASAN={'ON' if os.environ.get('SEEDGRPO_ASAN') == '1' else 'OFF'}",
        ]
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *config], check=True)
        jobs = str(os.cpu_count() or 2)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", jobs], check=True)


# SEEDGRPO_SKIP_EXTENSION=1 installs without seedgrpo._C (no CMake/pybind11 needed, e.g. on a lent GPU machine):
# seedgrpo.answers then runs its Python reference, with the same answers.
SKIP_EXTENSION = os.environ.get("SEEDGRPO_SKIP_EXTENSION") == "1"
setup(ext_modules=[] if SKIP_EXTENSION else [CMakeExtension("seedgrpo._C")], cmdclass={"build_ext": CMakeBuild})
