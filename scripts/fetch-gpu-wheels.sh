#!/usr/bin/env bash
# Fetch, where PyPI is reachable, the wheels that scripts/gpu-check.sh installs on the device machine (no network
# there; its image has torch, triton, transformers, accelerate, peft and pytest, not these):
#
#     bash scripts/fetch-gpu-wheels.sh            # -> ./wheels (git-ignored), then run gpu-check with carry ["wheels"]
#
# The versions are the ones installed in this environment (tested together). Compiled wheels (pydantic-core,
# msgpack) are fetched for CPython 3.10-3.13, since the device image's Python version is not known beforehand.
# DeepSpeed is published as an sdist whose build imports torch: its pure-Python wheel (no ops compiled,
# DS_BUILD_OPS=0; ZeRO-3 with torch's AdamW needs none) is built here. vLLM is not fetched: its wheel (336 MB for
# 0.33) exceeds the 64 MiB the device tool carries, and it pins its own torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
DEST="${WHEELS:-wheels}"
LIMIT_MB=64
mkdir -p "$DEST"

version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
pin() { local name; for name in "$@"; do echo "$name==$(version "$name")"; done; }

# Pure-Python (or py3-none) wheels: deepspeed's and liger-kernel's dependencies, the grader's second opinion
# (math-verify, a core dependency, with its LaTeX parser latex2sympy2_extended and antlr4-python3-runtime; sympy
# comes with torch), pybind11 for the C++ extension (gpu-check installs without it when CMake is missing).
PURE=(liger-kernel pybind11 hjson py-cpuinfo einops ninja pydantic annotated-types typing-inspection
      typing-extensions math-verify latex2sympy2_extended antlr4-python3-runtime)
# shellcheck disable=SC2046
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" $(pin "${PURE[@]}")

COMPILED=(pydantic-core msgpack)
for python in 3.10 3.11 3.12 3.13; do
    # shellcheck disable=SC2046
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$python" \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$DEST" $(pin "${COMPILED[@]}") || echo "note: no ${COMPILED[*]} wheels for CPython $python"
done

if ! compgen -G "$DEST/deepspeed-*.whl" > /dev/null; then
    DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$(pin deepspeed)"
fi

ls -la "$DEST"/*.whl | awk '{printf "%8.2f MB  %s\n", $5 / 1048576, $9}'
total_kb=$(du -sk "$DEST" | cut -f1)
echo "total: $(( total_kb / 1024 )) MB in $DEST (the device tool carries at most ${LIMIT_MB} MiB in all)"
[ "$total_kb" -le $(( LIMIT_MB * 1024 )) ] || { echo "error: $DEST is over ${LIMIT_MB} MiB" >&2; exit 1; }
