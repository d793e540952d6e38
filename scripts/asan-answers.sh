#!/usr/bin/env bash
# Run the answer fuzzer (benchmarks/fuzz_answers.py) against seedgrpo._C built with AddressSanitizer +
# UndefinedBehaviorSanitizer. The instrumented module is built into a temporary directory, next to links to
# the package's Python files, and put first on PYTHONPATH; the working tree's own build is left alone.
#
#   scripts/asan-answers.sh [SECONDS]        # default 120
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
SECONDS_TO_RUN=${1:-120}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/pkg/seedgrpo"
for item in "$ROOT"/seedgrpo/*; do
  case "$item" in *.so) ;; *) ln -s "$item" "$WORK/pkg/seedgrpo/" ;; esac
done
cmake -S "$ROOT" -B "$WORK/build" -DSEEDGRPO_ASAN=ON -DCMAKE_BUILD_TYPE=Debug \
  -DPython_EXECUTABLE="$PY" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$WORK/pkg/seedgrpo" >/dev/null
cmake --build "$WORK/build" --parallel 2 >/dev/null

# Python itself is not instrumented: preload the runtime, and do not report its (intentional) leaks.
# PYTHONMALLOC=malloc gives every str its own malloc block, so that reading past one is caught (inside
# pymalloc's arenas it would not be).
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
cd "$WORK"  # not the repo root, so `import seedgrpo` finds the instrumented copy
"$PY" -c "import seedgrpo._C as C; assert '$WORK' in C.__file__, C.__file__"
"$PY" "$ROOT/benchmarks/fuzz_answers.py" --seconds "$SECONDS_TO_RUN" --seed "${SEED:-$RANDOM}"
echo "AddressSanitizer + UBSan: no error in ${SECONDS_TO_RUN} s"
